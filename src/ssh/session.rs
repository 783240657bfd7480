//! [`RusshSession`]: one authenticated connection, running commands.
//!
//! - **A session is a shared russh `Handle`**: every `exec` opens its own channel, so callers
//!   may run several commands on one connection concurrently (sshd allows 10 by default).
//! - **A command gets its own deadline**, separate from the connect deadline, so a dead host and
//!   a slow command are told apart. On expiry the command is sent TERM and its channel closed.
//! - **stdin is written while output is read**, so a command that writes a lot before reading
//!   its stdin cannot deadlock us; a [`Dialog`] answer is written once all of stdin is out and the
//!   question has appeared on stdout, then EOF.
//! - **Output is capped** at [`OUTPUT_CAP`] per stream: the rest is drained and dropped (with a
//!   warning), so a runaway command cannot exhaust memory.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Sig};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::connect::russh_error;
use super::host_key::ClientHandler;
use super::pace::SessionSlot;
use super::{
    Dialog, ExecOutput, Input, Interactive, InteractiveOptions, Session, SshError, Target,
};

/// Output kept per stream of one command; the rest is drained and dropped.
pub const OUTPUT_CAP: usize = 4 << 20;

/// An authenticated connection; every `exec` opens its own channel on the shared handle.
pub(super) struct RusshSession {
    handle: Arc<Handle<ClientHandler>>,
    member: String,
    /// `host:port`, for messages.
    addr: String,
    /// This member's place among the sessions at once, given back when the session ends.
    _slot: Option<SessionSlot>,
}

impl RusshSession {
    /// The session on `handle`, an authenticated connection to `target` at `addr`.
    pub(super) fn new(
        handle: Handle<ClientHandler>,
        target: &Target,
        addr: String,
        slot: Option<SessionSlot>,
    ) -> RusshSession {
        RusshSession {
            handle: Arc::new(handle),
            member: target.name.clone(),
            addr,
            _slot: slot,
        }
    }
}

#[async_trait]
impl Session for RusshSession {
    async fn exec(
        &self,
        command: &str,
        stdin: Input<'_>,
        deadline: Duration,
    ) -> Result<ExecOutput, SshError> {
        self.exec_inner(command, stdin, None, deadline).await
    }

    async fn exec_dialog(
        &self,
        command: &str,
        stdin: Input<'_>,
        dialog: Dialog<'_>,
        deadline: Duration,
    ) -> Result<ExecOutput, SshError> {
        self.exec_inner(command, stdin, Some(dialog), deadline)
            .await
    }

    async fn exec_interactive(
        &self,
        command: &str,
        opts: InteractiveOptions,
    ) -> Result<Interactive, SshError> {
        let channel =
            match tokio::time::timeout(opts.deadline, self.handle.channel_open_session()).await {
                Err(_) => {
                    return Err(SshError::Timeout {
                        phase: "command",
                        after: opts.deadline,
                    });
                }
                Ok(Err(e)) => return Err(self.channel_error(e)),
                Ok(Ok(channel)) => channel,
            };
        tracing::debug!(member = %self.member, channel = %channel.id(), pty = opts.pty, "interactive exec");
        let (rx, tx) = channel.split();
        super::interactive::start(rx, tx, command, opts)
            .await
            .map_err(|e| self.channel_error(e))
    }

    async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

impl RusshSession {
    async fn exec_inner(
        &self,
        command: &str,
        stdin: Input<'_>,
        dialog: Option<Dialog<'_>>,
        deadline: Duration,
    ) -> Result<ExecOutput, SshError> {
        let until = Instant::now() + deadline;
        let timed_out = || SshError::Timeout {
            phase: "command",
            after: deadline,
        };
        let channel = match tokio::time::timeout_at(until, self.handle.channel_open_session()).await
        {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(self.channel_error(e)),
            Ok(Ok(channel)) => channel,
        };
        tracing::debug!(member = %self.member, channel = %channel.id(), "exec");
        tracing::trace!(member = %self.member, "command: {command}");
        let (mut rx, tx) = channel.split();
        let work = async {
            tx.exec(true, command)
                .await
                .map_err(|e| self.channel_error(e))?;
            run_command(&mut rx, &tx, stdin, dialog, &self.addr).await
        };
        match tokio::time::timeout_at(until, work).await {
            Ok(result) => result,
            Err(_) => {
                // Best effort: TERM reaches the command unless sshd forces the command; closing
                // the channel releases it on our side either way.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = tx.signal(Sig::TERM).await;
                    let _ = tx.close().await;
                })
                .await;
                tracing::debug!(member = %self.member, "command timed out after {deadline:?}");
                Err(timed_out())
            }
        }
    }

    fn channel_error(&self, e: russh::Error) -> SshError {
        match e {
            russh::Error::ChannelOpenFailure(reason) => SshError::Protocol(format!(
                "{} refused a new session channel ({reason:?}); too many commands at once on one \
                 connection? (sshd MaxSessions, default 10)",
                self.addr
            )),
            russh::Error::SendError | russh::Error::Disconnect | russh::Error::HUP => {
                SshError::Network(format!("the connection to {} is closed", self.addr))
            }
            other => russh_error(&self.addr, other),
        }
    }
}

/// Feed stdin (then EOF, or the dialog's answer then EOF) while collecting output until the
/// channel closes. Output is read concurrently so a command that writes a lot before reading its
/// stdin cannot deadlock us.
async fn run_command(
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<client::Msg>,
    stdin: Input<'_>,
    mut dialog: Option<Dialog<'_>>,
    addr: &str,
) -> Result<ExecOutput, SshError> {
    let asks = dialog.is_some();
    let write = async {
        match stdin {
            Input::None => {}
            Input::Plain(bytes) => tx.data(bytes).await?,
            Input::Secret(secret) => tx.data(secret.expose_secret()).await?,
        }
        if !asks {
            tx.eof().await?;
        }
        Ok::<(), russh::Error>(())
    };
    tokio::pin!(write);
    let mut writing = true;
    let mut out = Output::default();
    let mut scanned: usize = 0;
    loop {
        tokio::select! {
            msg = rx.wait() => {
                let Some(msg) = msg else { break };
                if !out.take(msg, addr)? {
                    break;
                }
            }
            written = &mut write, if writing => {
                writing = false;
                if let Err(e) = written {
                    // The command may legitimately exit without reading its stdin.
                    tracing::debug!("stdin not fully delivered to {addr}: {e}");
                }
            }
        }
        // Answer once all of stdin is out and the question is in (searched in the new bytes).
        let from = scanned.saturating_sub(dialog.as_ref().map_or(0, |d| d.ask.len()));
        let asked = |d: &mut Dialog<'_>| contains(&out.exec.stdout[from..], d.ask);
        if !writing && let Some(d) = dialog.take_if(asked) {
            let reply = (d.answer)(&out.exec.stdout);
            let sent = async {
                tx.data(&reply[..]).await?;
                tx.eof().await
            };
            if let Err(e) = sent.await {
                tracing::debug!("the answer did not reach {addr}: {e}");
            }
        }
        if !writing {
            scanned = out.exec.stdout.len();
        }
    }
    out.finish(addr)
}

/// Output of one command as it arrives.
#[derive(Default)]
struct Output {
    exec: ExecOutput,
    dropped: [usize; 2],
    closed: bool,
}

impl Output {
    /// Take one message; false when the channel closed.
    fn take(&mut self, msg: ChannelMsg, addr: &str) -> Result<bool, SshError> {
        match msg {
            ChannelMsg::Data { data } => {
                push_capped(&mut self.exec.stdout, &data, &mut self.dropped[0])
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                push_capped(&mut self.exec.stderr, &data, &mut self.dropped[1])
            }
            ChannelMsg::ExitStatus { exit_status } => self.exec.exit = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.exec.signal = Some(signal_name_of(&signal_name))
            }
            ChannelMsg::Failure => {
                return Err(SshError::Protocol(format!(
                    "{addr} refused to run the command (exec request denied)"
                )));
            }
            ChannelMsg::Close => {
                self.closed = true;
                return Ok(false);
            }
            _ => {}
        }
        Ok(true)
    }

    fn finish(self, addr: &str) -> Result<ExecOutput, SshError> {
        if self.dropped != [0, 0] {
            tracing::warn!(
                "output from {addr} exceeded {} MiB per stream; dropped {} bytes of stdout and {} of stderr",
                OUTPUT_CAP >> 20,
                self.dropped[0],
                self.dropped[1]
            );
        }
        let out = self.exec;
        if !self.closed && out.exit.is_none() && out.signal.is_none() {
            return Err(SshError::Network(format!(
                "the connection to {addr} was lost while the command was running"
            )));
        }
        Ok(out)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn push_capped(buf: &mut Vec<u8>, data: &[u8], dropped: &mut usize) {
    let room = OUTPUT_CAP.saturating_sub(buf.len());
    let take = room.min(data.len());
    buf.extend_from_slice(&data[..take]);
    *dropped += data.len() - take;
}

fn signal_name_of(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_and_the_excess_counted() {
        let mut buf = vec![0u8; OUTPUT_CAP - 3];
        let mut dropped = 0;
        push_capped(&mut buf, b"abcdef", &mut dropped);
        assert_eq!(buf.len(), OUTPUT_CAP);
        assert_eq!(&buf[OUTPUT_CAP - 3..], b"abc");
        assert_eq!(dropped, 3);
        push_capped(&mut buf, b"xyz", &mut dropped);
        assert_eq!(dropped, 6);
    }
}
