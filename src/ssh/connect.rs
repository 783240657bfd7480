//! Connecting: TCP, the server's banner, key exchange, host key check and authentication, with
//! retries while the member is only throttling us.
//!
//! - **One deadline covers the whole connection** (TCP connect, banner, key exchange, host key
//!   check, authentication): a member that accepts TCP and never speaks SSH cannot stall a run.
//!   Precisely, each attempt has two deadlines of `connect_timeout`: one for TCP (or the tunnel)
//!   and the server's first byte, one for key exchange and authentication, lengthened by any
//!   wait for a handshake slot (`-j`, see `pace.rs`): waiting in our own queue is not the member
//!   being slow, and a member that never speaks holds no handshake slot.
//! - **Transient refusals are retried**: sshd's `MaxStartups` (and `PerSourcePenalties`) answer
//!   excess unauthenticated connections by closing them before the SSH banner. Such a close is
//!   retried with jittered exponential backoff while the connect deadline allows; anything after
//!   the banner is a real answer and is not retried. [`BannerWatch`] tells the two apart.
//! - **russh's errors are translated** here ([`russh_error`], [`tcp_error`]) into [`SshError`]s
//!   that say what to check, for every phase of a connection's life.

use std::hash::BuildHasher;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use russh::client;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::host_key::{ClientHandler, Refusal};
use super::pace::{FinishOnDrop, Pace, Paced, SessionSlot, Sessions};
use super::{HostKeyChecking, RusshTransport, SshError, Target};
use russh::SshId;

const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);
/// A member that has not sent its first byte this long after we dialled lends its session slot
/// out until it does (`pace.rs` `Sessions::lend`): a dead or silent member holds no slot.
const UNANSWERED: Duration = Duration::from_secs(1);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

/// Why one connection attempt failed.
pub(super) enum Attempt {
    /// The server hung up before sending its SSH identification: worth another try.
    ClosedBeforeBanner(String),
    Fatal(SshError),
}

/// A byte stream to a target's sshd: a TCP connection, or a channel through a jump host.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

impl RusshTransport {
    /// Connect attempts until one succeeds, fails for good, or no retry fits (the deadlines are
    /// described in the module docs). A target with jump hosts is dialled through them
    /// (`jump.rs`), whose own deadlines bound reaching the last hop.
    /// `sessions`: the bound a member's session counts against (None for a jump host, whose
    /// connection is shared); the slot comes back with the handle, for the session to hold.
    pub(super) async fn connect_retrying(
        &self,
        target: &Target,
        sessions: Option<&Arc<Sessions>>,
    ) -> Result<(client::Handle<ClientHandler>, Option<SessionSlot>), SshError> {
        let timed_out = || SshError::Timeout {
            phase: "connect",
            after: target.connect_timeout,
        };
        // Queued behind other members of the same sshd, then for a session slot: queues of
        // ours, counted in no deadline. The slot is taken before dialling, so a member waiting
        // for one holds no connection that sshd's LoginGraceTime could close.
        let gate = self.sshd_gate(target);
        let _gate = gate.acquire().await.expect("semaphore never closed");
        let mut slot = match sessions {
            Some(sessions) => Some(sessions.acquire().await),
            None => None,
        };
        let retry_until = Instant::now() + target.connect_timeout;
        let mut delay = RETRY_FIRST_DELAY;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let id = IDENTIFICATION.clone();
            // TCP (or the tunnel) and the server's first byte, within the first deadline; a
            // member that has not answered within UNANSWERED lends its session slot out.
            // A tunnel's own deadlines bound reaching the last hop (`jump.rs`).
            let tunnel = if target.jumps.is_empty() {
                None
            } else {
                match Box::pin(self.tunnel(target)).await {
                    Ok(tunnel) => Some(tunnel),
                    Err(e) => return Err(e),
                }
            };
            let reach = async {
                match tunnel {
                    None => early(self.dial(target).await?, id).await,
                    Some(tunnel) => early(tunnel, id).await,
                }
            };
            let lends = slot.is_some();
            let reached = tokio::time::timeout(target.connect_timeout, async {
                tokio::pin!(reach);
                tokio::select! {
                    reached = &mut reach => return reached,
                    _ = tokio::time::sleep(UNANSWERED), if lends => {}
                }
                // Taken back when the member answers or the deadline passes.
                let _loan = sessions.map(|s| s.lend());
                reach.await
            })
            .await
            .map_err(|_| timed_out())?;
            let result = match reached {
                Err(e) => Err(e),
                Ok(stream) => self
                    .handshake(target, Box::new(stream), sessions)
                    .await
                    .map(|handle| (handle, slot.take())),
            };
            match result {
                Ok(handle) => return Ok(handle),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::ClosedBeforeBanner(why)) => {
                    let wait = jittered(delay);
                    if Instant::now() + wait >= retry_until {
                        return Err(SshError::Network(format!(
                            "{}:{} closed the connection before the SSH banner ({why}) on {attempts} attempt(s); \
                             the member's sshd may be throttling connections (MaxStartups, PerSourcePenalties) \
                             or this is not an SSH port",
                            target.host, target.port
                        )));
                    }
                    tracing::debug!(
                        member = %target.name,
                        attempt = attempts,
                        retry_in = ?wait,
                        "connection closed before the SSH banner ({why}); retrying"
                    );
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(RETRY_MAX_DELAY);
                }
            }
        }
    }

    /// The TCP connection.
    async fn dial(&self, target: &Target) -> Result<Box<dyn Stream>, Attempt> {
        let addr = target.addr();
        tracing::debug!(member = %target.name, target = %addr, "connecting");
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| Attempt::Fatal(tcp_error(&addr, e)))?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("set_nodelay failed: {e}");
        }
        Ok(Box::new(stream))
    }

    /// Key exchange, host key check and authentication on a dialled stream.
    /// The handshake holds a slot of `-j` only while it computes (`pace.rs`); its deadline,
    /// `connect_timeout` from now, is lengthened by the waits for one. A member's handshake
    /// (`sessions`: not a jump host's) tells the session bound how long it took.
    pub(super) async fn handshake(
        &self,
        target: &Target,
        stream: Box<dyn Stream>,
        sessions: Option<&Arc<Sessions>>,
    ) -> Result<client::Handle<ClientHandler>, Attempt> {
        let pace = Pace::new();
        let _finish = FinishOnDrop(pace.clone());
        let stream = Paced::new(stream, pace.clone(), self.handshakes.clone());
        let work = self.handshake_paced(target, stream);
        match pace.within(target.connect_timeout, work).await {
            Ok(Ok(handle)) => {
                if let Some(sessions) = sessions {
                    let took = pace.busy();
                    sessions.record(took);
                    tracing::debug!(member = %target.name, ?took, sessions = sessions.limit(), "handshake done");
                }
                Ok(handle)
            }
            Ok(Err(e)) => Err(e),
            Err(()) => {
                if let Some(sessions) = sessions {
                    sessions.timed_out();
                }
                Err(Attempt::Fatal(SshError::Timeout {
                    phase: "connect",
                    after: target.connect_timeout,
                }))
            }
        }
    }

    async fn handshake_paced(
        &self,
        target: &Target,
        stream: Paced<Box<dyn Stream>>,
    ) -> Result<client::Handle<ClientHandler>, Attempt> {
        let addr = target.addr();
        let banner_seen = Arc::new(AtomicBool::new(false));
        let stream = BannerWatch::new(stream, banner_seen.clone());

        if target.host_key_checking == HostKeyChecking::Off {
            self.warn_if_checking_off(std::slice::from_ref(target));
        }
        let refusal = Refusal::default();
        let handler = ClientHandler::new(self.known_hosts.clone(), target, refusal.clone());
        let result = client::connect_stream(self.config_for(target), stream, handler).await;
        let mut handle = match result {
            Ok(handle) => handle,
            Err(e) => {
                if let Some(why) = refusal.take() {
                    return Err(Attempt::Fatal(why));
                }
                if !banner_seen.load(Ordering::SeqCst) && closed_early(&e) {
                    return Err(Attempt::ClosedBeforeBanner(e.to_string()));
                }
                return Err(Attempt::Fatal(russh_error(&addr, e)));
            }
        };
        self.credentials
            .authenticate(&mut handle, target, &addr)
            .await
            .map_err(Attempt::Fatal)?;
        Ok(handle)
    }
}

impl Attempt {
    /// The error of an attempt that will not be retried.
    pub(super) fn into_error(self, target: &Target) -> SshError {
        match self {
            Attempt::Fatal(e) => e,
            Attempt::ClosedBeforeBanner(why) => SshError::Network(format!(
                "{} closed the connection before the SSH banner ({why})",
                target.addr()
            )),
        }
    }
}

/// Did the server hang up (rather than answer)? Only meaningful before its banner arrived.
fn closed_early(e: &russh::Error) -> bool {
    match e {
        russh::Error::Disconnect | russh::Error::HUP => true,
        russh::Error::IO(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

fn tcp_error(addr: &str, e: io::Error) -> SshError {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        SshError::Refused(format!(
            "{addr}: nothing is listening; is sshd running on that port?"
        ))
    } else {
        SshError::Network(format!("cannot reach {addr}: {e}"))
    }
}

pub(super) fn russh_error(addr: &str, e: russh::Error) -> SshError {
    match e {
        russh::Error::IO(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            tcp_error(addr, io)
        }
        russh::Error::IO(io) => SshError::Network(format!("{addr}: {io}")),
        russh::Error::Disconnect | russh::Error::HUP => SshError::Network(format!(
            "{addr} closed the connection during the SSH handshake"
        )),
        russh::Error::KeepaliveTimeout
        | russh::Error::InactivityTimeout
        | russh::Error::ConnectionTimeout => {
            SshError::Network(format!("{addr} stopped responding"))
        }
        russh::Error::Version => SshError::Protocol(format!(
            "{addr} did not identify as an SSH server; check host and port"
        )),
        russh::Error::NoCommonAlgo { kind, ours, theirs } => SshError::Protocol(format!(
            "{addr} shares no {kind:?} algorithm with fleetauth (we offer {}; it offers {}); \
             fleetauth needs OpenSSH ≥ 7.4-era algorithms (curve25519, ed25519/ecdsa/rsa-sha2, \
             chacha20-poly1305 or AES-GCM)",
            ours.join(","),
            theirs.join(",")
        )),
        other => SshError::Protocol(format!("{addr}: {other}")),
    }
}

/// Roughly `base`, scaled by a random factor in [0.5, 1) so that many clients throttled at
/// the same moment do not come back in lockstep.
fn jittered(base: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    base.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
}

/// The identification line russh sends first: its default, which fleetauth's configs keep
/// (`config.rs`; [`Early`] refuses any other).
static IDENTIFICATION: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| identification(&client::Config::default().client_id));

/// An identification line as russh sends it.
fn identification(id: &SshId) -> Vec<u8> {
    match id {
        SshId::Standard(s) => format!("{s}\r\n").into_bytes(),
        SshId::Raw(s) => s.as_bytes().to_vec(),
    }
}

/// Send our identification at once — sshd sends its own first, but RFC 4253 §4.2 lets both
/// sides send at once, and not waiting saves half a round trip — then wait for the server's
/// first byte, so that a member that never speaks costs nothing but its socket (no russh
/// session, no session slot). russh, handed the stream, sends the identification again:
/// [`Early`] passes that over.
async fn early(mut stream: Box<dyn Stream>, id: Vec<u8>) -> Result<Early, Attempt> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let closed = |e: io::Error| {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ) {
            Attempt::ClosedBeforeBanner(e.to_string())
        } else {
            Attempt::Fatal(SshError::Network(e.to_string()))
        }
    };
    stream.write_all(&id).await.map_err(closed)?;
    let mut head = vec![0u8; 256];
    let n = stream.read(&mut head).await.map_err(closed)?;
    if n == 0 {
        return Err(Attempt::ClosedBeforeBanner("connection closed".into()));
    }
    head.truncate(n);
    Ok(Early {
        inner: stream,
        head,
        sent: id,
    })
}

/// A stream whose first bytes were read already (`head`, handed on first) and whose first
/// bytes to write were sent already (`sent`, passed over when russh writes them).
pub(super) struct Early {
    inner: Box<dyn Stream>,
    head: Vec<u8>,
    sent: Vec<u8>,
}

impl AsyncRead for Early {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.head.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.head.len().min(buf.remaining());
        buf.put_slice(&this.head[..n]);
        this.head.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Early {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.sent.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        let n = this.sent.len().min(buf.len());
        if buf[..n] != this.sent[..n] {
            return Poll::Ready(Err(io::Error::other(
                "russh's identification differs from the one sent",
            )));
        }
        this.sent.drain(..n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A TCP stream that notes when the server's SSH identification line (`SSH-…`) has arrived,
/// which tells a throttled connection (closed before it) from a real answer.
struct BannerWatch<S> {
    inner: S,
    seen: Arc<AtomicBool>,
    /// `Some(n)`: at the start of a line, having matched `n` bytes of `SSH-`.
    matched: Option<usize>,
}

impl<S> BannerWatch<S> {
    fn new(inner: S, seen: Arc<AtomicBool>) -> BannerWatch<S> {
        BannerWatch {
            inner,
            seen,
            matched: Some(0),
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        const PREFIX: &[u8] = b"SSH-";
        for &b in bytes {
            self.matched = match self.matched {
                Some(n) if PREFIX[n] == b => {
                    if n + 1 == PREFIX.len() {
                        self.seen.store(true, Ordering::SeqCst);
                        return;
                    }
                    Some(n + 1)
                }
                _ if b == b'\n' => Some(0),
                _ => None,
            };
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BannerWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !this.seen.load(Ordering::Relaxed) {
            let fresh = buf.filled()[before..].to_vec();
            this.scan(&fresh);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BannerWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(chunks: &[&[u8]]) -> bool {
        let seen = Arc::new(AtomicBool::new(false));
        let mut watch = BannerWatch::new((), seen.clone());
        for chunk in chunks {
            watch.scan(chunk);
        }
        seen.load(Ordering::SeqCst)
    }

    #[test]
    fn banner_watch_finds_the_identification_line() {
        assert!(watched(&[b"SSH-2.0-OpenSSH_9.2\r\n"]));
        assert!(watched(&[b"SS", b"H-2.0"]));
        assert!(watched(&[b"Exceeded MaxStartups\r\n", b"SSH-2.0-x\r\n"]));
    }

    #[test]
    fn banner_watch_ignores_ssh_mid_line_and_partial_prefixes() {
        assert!(!watched(&[b"Exceeded MaxStartups\r\n"]));
        assert!(!watched(&[b"not SSH-2.0\r\n"]));
        assert!(!watched(&[b"SSH"]));
        assert!(!watched(&[]));
    }

    #[test]
    fn jitter_stays_between_half_and_full_delay() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(1000));
            assert!(
                d >= Duration::from_millis(500) && d < Duration::from_millis(1000),
                "{d:?}"
            );
        }
    }

    #[test]
    fn refused_and_other_io_errors_are_told_apart() {
        let refused = tcp_error("h:22", io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(refused.reason(), crate::row::Reason::Refused);
        let unreachable = tcp_error("h:22", io::Error::from(io::ErrorKind::HostUnreachable));
        assert!(matches!(unreachable, SshError::Network(_)));
    }
}
