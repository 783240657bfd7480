//! Pacing handshakes by the client's CPU, not by the network.
//!
//! A handshake is a few short bursts of work (parsing the server's key exchange, the ECDH
//! computation, checking the host key, signing) separated by round trips. On a member 300 ms
//! away a handshake takes over a second and is busy for a millisecond of it, so a bound on
//! handshakes *in progress* (`-j`) would leave the client idle while a large fleet queues.
//! [`Paced`] holds a slot only while its connection has bytes to work on: it takes one when a
//! read brings data (the bytes wait, unread by russh, until a slot is free) and gives it back
//! when the next read finds nothing (the handshake is waiting on the wire). `-j` so bounds the
//! handshakes being computed at once, and any number may wait on the network.
//!
//! [`Pace`] also keeps the two connect deadlines as they were: the first for TCP and the
//! server's first byte; the second, from that byte, for key exchange and authentication,
//! lengthened by the time spent waiting for a slot (waiting in our own queue is not the member
//! being slow).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::PollSemaphore;

/// One connection's handshake: its slot, and what its deadlines are counted from.
#[derive(Debug)]
pub(super) struct Pace {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    permit: Option<OwnedSemaphorePermit>,
    /// When the server's first byte arrived.
    first_byte: Option<Instant>,
    /// Time spent waiting for a slot with bytes in hand, finished waits only.
    queued: Duration,
    /// Waiting for a slot since then.
    waiting_since: Option<Instant>,
    /// The handshake is over: reads pass straight through and hold no slot.
    done: bool,
}

impl Pace {
    pub(super) fn new() -> Arc<Pace> {
        Arc::new(Pace {
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handshake is over (or abandoned): give the slot back for good.
    pub(super) fn finish(&self) {
        let mut state = self.state();
        state.done = true;
        state.permit = None;
        if let Some(since) = state.waiting_since.take() {
            state.queued += since.elapsed();
        }
    }

    /// When the handshake times out, as things stand: `limit` after `started` until the first
    /// byte, then `limit` after the first byte plus every wait for a slot (an ongoing one too).
    pub(super) fn deadline(&self, started: Instant, limit: Duration) -> Instant {
        let state = self.state();
        match state.first_byte {
            None => started + limit,
            Some(at) => {
                let waiting = state.waiting_since.map_or(Duration::ZERO, |s| s.elapsed());
                at + limit + state.queued + waiting
            }
        }
    }

    /// Run `work` within [`Pace::deadline`]; `Err(())` when it passes first.
    pub(super) async fn within<F: Future>(
        &self,
        started: Instant,
        limit: Duration,
        work: F,
    ) -> Result<F::Output, ()> {
        tokio::pin!(work);
        loop {
            let deadline = self.deadline(started, limit);
            tokio::select! {
                out = &mut work => return Ok(out),
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= self.deadline(started, limit) {
                        return Err(());
                    }
                }
            }
        }
    }
}

/// Gives the slot back however the handshake ends (an error, a timeout, a dropped future).
pub(super) struct FinishOnDrop(pub(super) Arc<Pace>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A stream that holds a handshake slot only while its bytes are being worked on.
pub(super) struct Paced<S> {
    inner: S,
    pace: Arc<Pace>,
    slots: Option<PollSemaphore>,
    /// Bytes read while no slot was free, handed on once one is.
    stash: Vec<u8>,
}

impl<S> Paced<S> {
    /// `slots`: the shared bound; None paces nothing but still notes the first byte.
    pub(super) fn new(inner: S, pace: Arc<Pace>, slots: Option<Arc<Semaphore>>) -> Paced<S> {
        Paced {
            inner,
            pace,
            slots: slots.map(PollSemaphore::new),
            stash: Vec::new(),
        }
    }

    /// Whether this read may hand bytes on: a slot is held (taken now if need be) or none is
    /// needed. Pending registers the wake-up for a free slot.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(slots) = &mut self.slots else {
            return Poll::Ready(());
        };
        let mut state = self.pace.state();
        if state.done || state.permit.is_some() {
            return Poll::Ready(());
        }
        match slots.poll_acquire(cx) {
            Poll::Ready(permit) => {
                state.permit = permit;
                if let Some(since) = state.waiting_since.take() {
                    state.queued += since.elapsed();
                }
                Poll::Ready(())
            }
            Poll::Pending => {
                state.waiting_since.get_or_insert_with(Instant::now);
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.stash.is_empty() {
            if this.poll_slot(cx).is_pending() {
                return Poll::Pending;
            }
            let n = this.stash.len().min(buf.remaining());
            buf.put_slice(&this.stash[..n]);
            this.stash.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                // Waiting on the wire: the slot is free for another handshake.
                let mut state = this.pace.state();
                if !state.done {
                    state.permit = None;
                }
                Poll::Pending
            }
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.pace
                    .state()
                    .first_byte
                    .get_or_insert_with(Instant::now);
                if this.poll_slot(cx).is_pending() {
                    this.stash.extend_from_slice(&buf.filled()[before..]);
                    buf.set_filled(before);
                    return Poll::Pending;
                }
                Poll::Ready(Ok(()))
            }
            // End of stream or an error: nothing to work on, handed on at once.
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_slot_is_held_only_while_bytes_are_in_hand() {
        let slots = Arc::new(Semaphore::new(1));
        let (a_far, a_near) = tokio::io::duplex(64);
        let (b_far, b_near) = tokio::io::duplex(64);
        let (pa, pb) = (Pace::new(), Pace::new());
        let mut a = Paced::new(a_near, pa.clone(), Some(slots.clone()));
        let mut b = Paced::new(b_near, pb.clone(), Some(slots.clone()));
        let (mut a_far, mut b_far) = (a_far, b_far);
        let mut buf = [0u8; 8];

        // A read that finds bytes takes the one slot and keeps it while they are worked on.
        a_far.write_all(b"kexinit").await.unwrap();
        assert_eq!(a.read(&mut buf).await.unwrap(), 7);
        assert_eq!(slots.available_permits(), 0);
        assert!(pa.state().first_byte.is_some());

        // B's bytes wait (stashed, not lost) while A holds the slot.
        b_far.write_all(b"ecdh").await.unwrap();
        let read_b = tokio::time::timeout(Duration::from_millis(50), b.read(&mut buf)).await;
        assert!(read_b.is_err(), "B read without a slot");
        assert!(pb.state().waiting_since.is_some());

        // A waits on the wire: the slot passes to B, whose bytes arrive intact.
        let read_a = tokio::time::timeout(Duration::from_millis(20), a.read(&mut buf)).await;
        assert!(read_a.is_err());
        assert_eq!(b.read(&mut buf).await.unwrap(), 4);
        assert_eq!(&buf[..4], b"ecdh");
        assert!(pb.state().queued > Duration::ZERO);
        assert_eq!(slots.available_permits(), 0);

        // Once B's handshake is over it holds nothing, and reads pass straight through.
        pb.finish();
        assert_eq!(slots.available_permits(), 1);
        b_far.write_all(b"data").await.unwrap();
        drop(slots.clone().acquire_owned().await.unwrap());
        assert_eq!(b.read(&mut buf).await.unwrap(), 4);
        assert_eq!(slots.available_permits(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_first_byte_and_not_the_queue() {
        let pace = Pace::new();
        let started = Instant::now();
        let limit = Duration::from_secs(10);
        assert_eq!(pace.deadline(started, limit), started + limit);
        tokio::time::advance(Duration::from_secs(3)).await;
        let first = Instant::now();
        pace.state().first_byte = Some(first);
        assert_eq!(pace.deadline(started, limit), first + limit);
        pace.state().waiting_since = Some(Instant::now());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            pace.deadline(started, limit),
            first + limit + Duration::from_secs(4)
        );
        pace.finish();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            pace.deadline(started, limit),
            first + limit + Duration::from_secs(4)
        );
        // `within` gives up at the deadline, not before.
        let never = std::future::pending::<()>();
        let t0 = Instant::now();
        assert!(pace.within(started, limit, never).await.is_err());
        assert_eq!(Instant::now(), first + limit + Duration::from_secs(4));
        assert!(Instant::now() > t0);
    }
}
