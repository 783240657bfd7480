//! [`Interactive`]: a remote command the client talks with while it runs (a CLI's own login).
//!
//! - **Output arrives as lines**, as it comes: a CLI prints a URL and a code, then polls for
//!   minutes; the caller must see them at once, not when the command ends. An unterminated tail
//!   (a prompt such as `Enter the authorization code: `) is reported too, as [`Chunk::Partial`].
//! - **Input is written later, and only as a secret**: what an operator pastes reaches the
//!   channel's stdin (the member's pty) and nothing else — no argv, no log line.
//! - **Ending it ends the remote process**: [`Interactive::close`], dropping the handle, or the
//!   deadline sends HUP and TERM, closes stdin and the channel. With a pty, sshd's closing of the
//!   pty hangs up its whole foreground process group as well.

use std::time::Duration;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty, Sig};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How to start an interactive command.
pub struct InteractiveOptions {
    /// Run it on a pseudo-terminal (echo off: a pasted code is never echoed back).
    pub pty: bool,
    /// Written to stdin right after the command starts (a script; never a secret).
    pub stdin: Vec<u8>,
    /// After this the command is ended and [`Ending::TimedOut`] reported.
    pub deadline: Duration,
}

/// Something the command printed, or its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// A complete line (without its `\n` or `\r`), from stderr when `stderr` is true.
    Line { stderr: bool, text: String },
    /// The unterminated tail of a stream so far (a prompt waiting for input).
    Partial { stderr: bool, text: String },
    /// The command is over; nothing follows.
    Ended(Ending),
}

/// How an interactive command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(u32),
    Signalled(String),
    /// The client ended it ([`Interactive::close`] or the handle dropped).
    Closed,
    TimedOut,
    /// The channel went away without an exit status.
    Lost,
}

enum Control {
    Write(SecretString),
    Close,
}

/// A running interactive command. Dropping it ends the command.
pub struct Interactive {
    output: mpsc::Receiver<Chunk>,
    control: mpsc::Sender<Control>,
}

impl Interactive {
    /// The next chunk of output; `None` once [`Chunk::Ended`] was taken.
    pub async fn next(&mut self) -> Option<Chunk> {
        self.output.recv().await
    }

    /// Write `secret` (then a newline) to the command's stdin. False when it is gone.
    pub async fn write_line(&self, secret: SecretString) -> bool {
        let line = SecretString::from(format!("{}\n", secret.expose_secret()));
        self.control.send(Control::Write(line)).await.is_ok()
    }

    /// End the command (HUP, TERM, EOF, channel close); [`Chunk::Ended`] follows.
    pub async fn close(&self) {
        let _ = self.control.send(Control::Close).await;
    }

    /// An [`Interactive`] fed by a test or another transport: chunks pushed by the returned
    /// sender, writes delivered to the returned receiver.
    pub fn scripted() -> (Interactive, mpsc::Sender<Chunk>, mpsc::Receiver<String>) {
        let (out_tx, out_rx) = mpsc::channel(64);
        let (ctl_tx, mut ctl_rx) = mpsc::channel::<Control>(8);
        let (w_tx, w_rx) = mpsc::channel(8);
        let ended = out_tx.clone();
        tokio::spawn(async move {
            while let Some(c) = ctl_rx.recv().await {
                match c {
                    Control::Write(s) => {
                        let _ = w_tx.send(s.expose_secret().to_string()).await;
                    }
                    Control::Close => {
                        let _ = ended.send(Chunk::Ended(Ending::Closed)).await;
                    }
                }
            }
        });
        (
            Interactive {
                output: out_rx,
                control: ctl_tx,
            },
            out_tx,
            w_rx,
        )
    }
}

/// Start the interactive command on an open, exec'd-not-yet channel's halves.
pub(super) async fn start(
    rx: ChannelReadHalf,
    tx: ChannelWriteHalf<Msg>,
    command: &str,
    opts: InteractiveOptions,
) -> Result<Interactive, russh::Error> {
    if opts.pty {
        // Echo off: what the operator pastes must not come back in the output.
        tx.request_pty(false, "xterm", 200, 50, 0, 0, &[(Pty::ECHO, 0)])
            .await?;
    }
    tx.exec(true, command).await?;
    if !opts.stdin.is_empty() {
        tx.data(&opts.stdin[..]).await?;
    }
    let (out_tx, out_rx) = mpsc::channel(256);
    let (ctl_tx, ctl_rx) = mpsc::channel(8);
    let until = Instant::now() + opts.deadline;
    tokio::spawn(drive(rx, tx, out_tx, ctl_rx, until));
    Ok(Interactive {
        output: out_rx,
        control: ctl_tx,
    })
}

/// Splits a stream into lines; keeps the unterminated tail.
#[derive(Default)]
pub(crate) struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Complete lines in `data` (with what was kept before), and the new tail if any.
    pub(crate) fn push(&mut self, data: &[u8]) -> (Vec<String>, Option<String>) {
        self.buf.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=at).collect();
            lines.push(clean(&line[..line.len() - 1]));
        }
        // A runaway line without a newline must not grow without bound.
        if self.buf.len() > 64 * 1024 {
            lines.push(clean(&std::mem::take(&mut self.buf)));
        }
        let tail = (!self.buf.is_empty()).then(|| clean(&self.buf));
        (lines, tail)
    }
}

fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\r')
        .to_string()
}

async fn drive(
    mut rx: ChannelReadHalf,
    tx: ChannelWriteHalf<Msg>,
    out: mpsc::Sender<Chunk>,
    mut control: mpsc::Receiver<Control>,
    until: Instant,
) {
    let mut streams = [Lines::default(), Lines::default()];
    let mut exit: Option<Ending> = None;
    let mut closing: Option<Ending> = None;
    let ending = loop {
        tokio::select! {
            msg = rx.wait() => {
                let Some(msg) = msg else {
                    break closing.or(exit).unwrap_or(Ending::Lost);
                };
                match msg {
                    ChannelMsg::Data { data } => emit(&out, &mut streams[0], false, &data).await,
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        emit(&out, &mut streams[1], true, &data).await
                    }
                    ChannelMsg::ExitStatus { exit_status } => exit = Some(Ending::Exited(exit_status)),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        exit = Some(Ending::Signalled(format!("{signal_name:?}")))
                    }
                    ChannelMsg::Close => break closing.or(exit).unwrap_or(Ending::Lost),
                    _ => {}
                }
            }
            c = control.recv(), if closing.is_none() => match c {
                Some(Control::Write(line)) => {
                    if let Err(e) = tx.data(line.expose_secret().as_bytes()).await {
                        tracing::debug!("input did not reach the command: {e}");
                    }
                }
                Some(Control::Close) | None => {
                    closing = Some(Ending::Closed);
                    hang_up(&tx).await;
                }
            },
            _ = tokio::time::sleep_until(until), if closing.is_none() => {
                closing = Some(Ending::TimedOut);
                hang_up(&tx).await;
            }
            // The member may ignore the close: give up on it after a grace period.
            _ = tokio::time::sleep(Duration::from_secs(5)), if closing.is_some() => {
                break closing.clone().unwrap_or(Ending::Closed);
            }
        }
    };
    let _ = out.send(Chunk::Ended(ending)).await;
}

async fn emit(out: &mpsc::Sender<Chunk>, lines: &mut Lines, stderr: bool, data: &[u8]) {
    let (complete, tail) = lines.push(data);
    for text in complete {
        let _ = out.send(Chunk::Line { stderr, text }).await;
    }
    if let Some(text) = tail {
        let _ = out.send(Chunk::Partial { stderr, text }).await;
    }
}

/// HUP (the pty's hang-up, for a command without one), TERM, EOF, close: best effort, bounded.
async fn hang_up(tx: &ChannelWriteHalf<Msg>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = tx.signal(Sig::HUP).await;
        let _ = tx.signal(Sig::TERM).await;
        let _ = tx.eof().await;
        let _ = tx.close().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_the_tail_kept() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"a\r\nb"), (vec!["a".to_string()], Some("b".into())));
        assert_eq!(
            l.push(b"c\nEnter: "),
            (vec!["bc".into()], Some("Enter: ".into()))
        );
        assert_eq!(l.push(b"\n"), (vec!["Enter: ".into()], None));
    }
}
