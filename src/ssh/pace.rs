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
//! How many members are connected at once — from dialling, through the handshake, to the end
//! of their commands — is a second, adaptive bound ([`Sessions`]): it starts at `-j`, grows while
//! handshakes take as long as the fastest one seen (the wait is the network's, which costs
//! nothing to share) and shrinks when they take several times longer (the members are busy:
//! members that share CPUs, containers on one host, a loaded lab, where running more at once
//! only makes every one of them slower, until deadlines pass). A fleet far away is so served
//! all at once, a fleet on one machine about `-j` at a time.
//!
//! [`Pace`] also keeps the handshake's deadline as it was: `connect_timeout` from the start of
//! the handshake (once the member has answered), lengthened by the time spent waiting for a
//! handshake slot: waiting in our own queue is not the member being slow.

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

/// One connection's handshake: its slot, and what its deadline is counted from.
pub(super) struct Pace {
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    permit: Option<OwnedSemaphorePermit>,
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
            started: Instant::now(),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the handshake has taken, waits for a slot aside.
    pub(super) fn busy(&self) -> Duration {
        let state = self.state();
        let waiting = state.waiting_since.map_or(Duration::ZERO, |s| s.elapsed());
        self.started
            .elapsed()
            .saturating_sub(state.queued + waiting)
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

    /// When the handshake times out, as things stand: `limit` after it started plus every
    /// wait for a slot (an ongoing one too).
    pub(super) fn deadline(&self, limit: Duration) -> Instant {
        let state = self.state();
        let waiting = state.waiting_since.map_or(Duration::ZERO, |s| s.elapsed());
        self.started + limit + state.queued + waiting
    }

    /// Run `work` within [`Pace::deadline`]; `Err(())` when it passes first.
    pub(super) async fn within<F: Future>(
        &self,
        limit: Duration,
        work: F,
    ) -> Result<F::Output, ()> {
        tokio::pin!(work);
        loop {
            let deadline = self.deadline(limit);
            tokio::select! {
                out = &mut work => return Ok(out),
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= self.deadline(limit) {
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

/// The adaptive bound on members connected at once (see the module docs).
pub(super) struct Sessions {
    permits: Arc<Semaphore>,
    adapt: Mutex<Adapt>,
}

#[derive(Debug)]
struct Adapt {
    limit: usize,
    floor: usize,
    ceiling: usize,
    /// The fastest handshake seen: what the network alone costs.
    fastest: Option<Duration>,
    /// Slots lent out by [`Sessions::lend`], on top of `limit`: the limit adapts, loans do not
    /// (a loan ending after the limit shrank must not take the limit below its floor).
    lent: usize,
    /// Slots to retire as they are given back (the limit went down, or a loan ended). Slots in
    /// the semaphore, free or held, are always `limit + lent + debt`: at least one is not debt.
    debt: usize,
}

/// A handshake within this many times the fastest is not held up by busy members.
const UNHURRIED: u32 = 2;
/// A handshake beyond this many times the fastest is: the members are busy.
const CROWDED: u32 = 4;

impl Sessions {
    /// Start at `floor` slots; never fewer, never more than `ceiling`.
    pub(super) fn new(floor: usize, ceiling: usize) -> Arc<Sessions> {
        let floor = floor.max(1);
        Arc::new(Sessions {
            permits: Arc::new(Semaphore::new(floor)),
            adapt: Mutex::new(Adapt {
                limit: floor,
                floor,
                ceiling: ceiling.max(floor),
                fastest: None,
                lent: 0,
                debt: 0,
            }),
        })
    }

    fn adapt(&self) -> std::sync::MutexGuard<'_, Adapt> {
        self.adapt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Members that may be connected at once now: the adaptive limit and the slots lent out.
    pub(super) fn limit(&self) -> usize {
        let a = self.adapt();
        a.limit + a.lent
    }

    /// A handshake finished, `took` from the server's first byte (waits for slots aside).
    /// Unhurried, two slots more (the limit triples in one handshake's time, from `-j` to a
    /// thousand in three); crowded, a tenth fewer.
    pub(super) fn record(&self, took: Duration) {
        let mut a = self.adapt();
        let fastest = *a.fastest.get_or_insert(took);
        a.fastest = Some(fastest.min(took));
        if took <= fastest * UNHURRIED {
            for _ in 0..2 {
                if a.limit < a.ceiling {
                    a.limit += 1;
                    if a.debt > 0 {
                        a.debt -= 1;
                    } else {
                        self.permits.add_permits(1);
                    }
                }
            }
        } else if took > fastest * CROWDED {
            let to = (a.limit - a.limit / 10).max(a.floor);
            a.debt += a.limit - to;
            a.limit = to;
        }
    }

    /// A handshake ran out of time: half the slots.
    pub(super) fn timed_out(&self) {
        let mut a = self.adapt();
        let to = (a.limit / 2).max(a.floor);
        a.debt += a.limit - to;
        a.limit = to;
    }

    /// Wait for a place.
    pub(super) async fn acquire(self: &Arc<Sessions>) -> SessionSlot {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        SessionSlot {
            permit: Some(permit),
            sessions: self.clone(),
        }
    }

    /// Lend one slot out while its holder waits for a member that does not answer: one slot
    /// more until the [`Loan`] is dropped, so silent members hold no slot and the holder still
    /// has its own when the member answers (it never queues after its first byte).
    pub(super) fn lend(self: &Arc<Sessions>) -> Loan {
        let mut a = self.adapt();
        a.lent += 1;
        if a.debt > 0 {
            a.debt -= 1;
        } else {
            self.permits.add_permits(1);
        }
        Loan(self.clone())
    }

    /// Whether a slot given back now is retired instead.
    fn retire(&self) -> bool {
        let mut a = self.adapt();
        let retire = a.debt > 0;
        a.debt = a.debt.saturating_sub(1);
        retire
    }
}

/// A slot lent out by [`Sessions::lend`]; taken back (retired when next given back) when dropped.
pub(super) struct Loan(Arc<Sessions>);

impl Drop for Loan {
    fn drop(&mut self) {
        let mut a = self.0.adapt();
        a.lent -= 1;
        a.debt += 1;
    }
}

/// One member's place among [`Sessions`], given back (or retired) when dropped.
pub(crate) struct SessionSlot {
    permit: Option<OwnedSemaphorePermit>,
    sessions: Arc<Sessions>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take()
            && self.sessions.retire()
        {
            permit.forget();
        }
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
    /// `slots`: the shared bound on handshakes computing; None bounds nothing.
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
        let (mut a_far, a_near) = tokio::io::duplex(64);
        let (mut b_far, b_near) = tokio::io::duplex(64);
        let (pa, pb) = (Pace::new(), Pace::new());
        let mut a = Paced::new(a_near, pa.clone(), Some(slots.clone()));
        let mut b = Paced::new(b_near, pb.clone(), Some(slots.clone()));
        let mut buf = [0u8; 8];

        // A read that finds bytes takes the one slot and keeps it while they are worked on.
        a_far.write_all(b"kexinit").await.unwrap();
        assert_eq!(a.read(&mut buf).await.unwrap(), 7);
        assert_eq!(slots.available_permits(), 0);

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
    async fn the_deadline_is_lengthened_by_waits_for_a_slot_only() {
        let pace = Pace::new();
        let started = Instant::now();
        let limit = Duration::from_secs(10);
        assert_eq!(pace.deadline(limit), started + limit);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(pace.deadline(limit), started + limit);
        pace.state().waiting_since = Some(Instant::now());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            pace.deadline(limit),
            started + limit + Duration::from_secs(4)
        );
        assert_eq!(pace.busy(), Duration::from_secs(3));
        pace.finish();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            pace.deadline(limit),
            started + limit + Duration::from_secs(4)
        );
        assert_eq!(pace.busy(), Duration::from_secs(8));
        // `within` gives up at the deadline, not before.
        let never = std::future::pending::<()>();
        assert!(pace.within(limit, never).await.is_err());
        assert_eq!(Instant::now(), started + limit + Duration::from_secs(4));
    }

    #[tokio::test]
    async fn sessions_grow_while_the_network_is_the_wait_and_shrink_when_members_are_busy() {
        let sessions = Sessions::new(4, 20);
        let ms = Duration::from_millis;
        sessions.record(ms(100));
        assert_eq!(
            sessions.limit(),
            6,
            "the first handshake sets the pace and adds two"
        );
        sessions.record(ms(190));
        assert_eq!(sessions.limit(), 8, "within twice the fastest");
        sessions.record(ms(300));
        assert_eq!(sessions.limit(), 8, "between two and four times: held");
        for _ in 0..10 {
            sessions.record(ms(120));
        }
        assert_eq!(sessions.limit(), 20, "never above the ceiling");
        assert_eq!(sessions.permits.available_permits(), 20);
        sessions.record(ms(500));
        assert_eq!(sessions.limit(), 18, "crowded: a tenth fewer");
        sessions.timed_out();
        assert_eq!(sessions.limit(), 9, "a timeout halves");
        sessions.timed_out();
        sessions.timed_out();
        assert_eq!(sessions.limit(), 4, "never below the floor");

        // Slots taken under the old limit are retired as they come back, not handed on.
        let held: Vec<SessionSlot> = (0..20)
            .map(|_| SessionSlot {
                permit: Some(sessions.permits.clone().try_acquire_owned().unwrap()),
                sessions: sessions.clone(),
            })
            .collect();
        assert_eq!(sessions.permits.available_permits(), 0);
        drop(held);
        assert_eq!(sessions.permits.available_permits(), 4);
        // A faster handshake than any before sets a new pace.
        sessions.record(ms(10));
        assert_eq!(sessions.limit(), 6);
        assert_eq!(sessions.permits.available_permits(), 6);
    }

    #[tokio::test]
    async fn a_session_slot_is_held_until_dropped() {
        let sessions = Sessions::new(1, 1);
        let first = sessions.acquire().await;
        let second = tokio::time::timeout(Duration::from_millis(50), sessions.acquire()).await;
        assert!(second.is_err(), "a second session beyond the limit");
        drop(first);
        let _second = sessions.acquire().await;
    }

    #[tokio::test]
    async fn loans_ending_after_the_limit_shrank_leave_a_slot() {
        // Silent members borrow slots; the fleet turns out crowded and the limit falls to the
        // floor; then the members answer and the loans end. A slot must still be there.
        let sessions = Sessions::new(2, 10);
        let mut silent = vec![sessions.acquire().await, sessions.acquire().await];
        let mut loans = vec![sessions.lend(), sessions.lend()];
        // The lent slots go to members that are silent too, and lend theirs.
        silent.extend([sessions.acquire().await, sessions.acquire().await]);
        loans.extend([sessions.lend(), sessions.lend()]);
        let others = [sessions.acquire().await, sessions.acquire().await];
        sessions.timed_out();
        drop(loans);
        drop(others);
        drop(silent);
        assert!(
            sessions.limit() >= 2,
            "never below the floor: {}",
            sessions.limit()
        );
        let next = tokio::time::timeout(Duration::from_millis(50), sessions.acquire()).await;
        assert!(next.is_ok(), "no slot left for the next member");
    }

    #[tokio::test]
    async fn a_slot_held_for_a_silent_member_is_lent_out() {
        let sessions = Sessions::new(1, 10);
        let silent = sessions.acquire().await;
        let loan = sessions.lend();
        assert_eq!(sessions.limit(), 2);
        let other = tokio::time::timeout(Duration::from_millis(50), sessions.acquire())
            .await
            .expect("the lent slot is free for another member");
        // The loan ends: one slot comes back retired, and the limit is as before.
        drop(loan);
        assert_eq!(sessions.limit(), 1);
        drop(other);
        assert_eq!(sessions.permits.available_permits(), 0);
        drop(silent);
        assert_eq!(sessions.permits.available_permits(), 1);
    }
}
