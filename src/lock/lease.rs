//! `Lease`: a cheap, cloneable view of one tenure for the code that does the protected work.
//!
//! The lock actor owns the tenure and writes to the shared state behind every `Lease`: the
//! local lease deadline (moved by each refresh) and, once, how the tenure ended. Readers need
//! no message and no actor: `is_held()` reads atomics only, so it answers even while the
//! actor's thread is busy, and it turns false at the deadline by itself.
//!
//! The shared state is the one allocation of a held lock besides its actor's task: it also
//! carries the tenure (key, value, holder record), which the actor, its refreshes and release
//! and the manager read from here instead of keeping copies.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::Recipient;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::LossReason;
use crate::lock::loss::{LockLost, LossSubscription, Subscribers};
use crate::lock::tenure::Tenure;

/// How a tenure ended.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let lock = m.acquire("jobs.nightly", None).await?;
/// let lease = lock.lease().clone();
/// lock.release().await?;
/// assert_eq!(lease.end(), Some(nlock::LeaseEnd::Released));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaseEnd {
    /// The holder released the lock, and the server confirmed its delete. (A release never
    /// confirmed ends `Lost` with [`LossReason::ReleaseUnconfirmed`].)
    Released,
    /// The lock was lost; see the reason.
    Lost {
        /// Why.
        reason: LossReason,
    },
}

/// A view of one held lock, for the code that does the work the lock protects.
///
/// Clones share one state; holding a `Lease` does not keep the lock (the
/// [`LockHandle`](crate::LockHandle) does) and dropping one releases nothing.
///
/// ```no_run
/// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let lock = manager.acquire("reports.nightly", None).await?;
/// let lease = lock.lease().clone();
/// let worker = tokio::spawn(async move {
///     for chunk in 0..100 {
///         if !lease.is_held() {
///             return; // stop before acting on a lock that is gone
///         }
///         write_chunk(chunk, lease.token()).await; // the resource checks the token
///     }
/// });
/// worker.await.ok();
/// lock.release().await?;
/// # Ok(()) }
/// # async fn write_chunk(_: u32, _: u64) {}
/// ```
#[derive(Clone, Debug)]
pub struct Lease {
    shared: Arc<LeaseState>,
}

/// The state shared by a lock actor and every `Lease` of its tenure.
#[derive(Debug)]
pub(crate) struct LeaseState {
    /// What the tenure writes: key, value, holder record, TTL.
    tenure: Tenure,
    token: u64,
    /// The key's last revision before this tenure (0: the key had no message), or
    /// [`UNKNOWN`] when not known: how an elector tells a key freed by a marker from one
    /// emptied without a trace.
    previous: u64,
    /// The local lease deadline as nanoseconds after `base`, in an atomic: the actor moves it
    /// on every refresh, readers load it without a lock. Its top bit ([`RELEASING`]) is set
    /// when the holder starts its release, before the delete is sent: from then on the lock
    /// is not held as far as the holder's code is concerned, since the delete may land (and
    /// the key be granted elsewhere) before its answer comes, or without one.
    base: Instant,
    deadline_word: AtomicU64,
    /// Set once when the tenure ends, and kept: a reader that comes later still sees it.
    end: OnceLock<LeaseEnd>,
    /// Wakes the `ended()` futures waiting when `end` is set; made by the first of them.
    /// (A `Notify` and a once-set cell rather than a watch channel, whose shared state is
    /// several times larger; and made only when someone waits, since a held lock nobody
    /// awaits the end of needs none.)
    ended_notify: OnceLock<Box<Notify>>,
    /// The lock's own loss subscribers, made by the first subscription: most locks never
    /// get one, and an empty list would still cost an allocation per lock.
    subscribers: OnceLock<Arc<Subscribers>>,
}

/// `previous` when the key's last revision before the tenure is not known.
const UNKNOWN: u64 = u64::MAX;

/// The bit of `deadline_word` that says a release has begun.
const RELEASING: u64 = 1 << 63;

impl LeaseState {
    pub(crate) fn new(
        tenure: Tenure,
        token: u64,
        deadline: Instant,
        previous: Option<u64>,
    ) -> Arc<LeaseState> {
        let state = LeaseState {
            tenure,
            token,
            previous: previous.unwrap_or(UNKNOWN),
            base: Instant::now(),
            deadline_word: AtomicU64::new(0),
            end: OnceLock::new(),
            ended_notify: OnceLock::new(),
            subscribers: OnceLock::new(),
        };
        state.set_deadline(deadline);
        Arc::new(state)
    }

    pub(crate) fn set_deadline(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.base).as_nanos();
        // Capped below the release bit: 2^63 ns is 292 years.
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX).min(RELEASING - 1);
        // Keeps the release bit as it is.
        let _ = self
            .deadline_word
            .fetch_update(Ordering::Release, Ordering::Acquire, |word| {
                Some((word & RELEASING) | nanos)
            });
    }

    /// The holder starts its release: `is_held()` is false from now on.
    pub(crate) fn begin_release(&self) {
        self.deadline_word.fetch_or(RELEASING, Ordering::Release);
    }

    /// Whether the tenure still counts as held: not ended, not being released.
    fn live(&self) -> bool {
        self.end.get().is_none() && self.deadline_word.load(Ordering::Acquire) & RELEASING == 0
    }

    fn deadline(&self) -> Instant {
        let nanos = self.deadline_word.load(Ordering::Acquire) & !RELEASING;
        crate::deadline::after(self.base, Duration::from_nanos(nanos))
    }

    /// Sets how the tenure ended, once, and wakes every `ended()` waiting. Returns false if
    /// it had already ended.
    ///
    /// The waiters' `Notify` and the subscriber list are made by the first waiter or
    /// subscriber, which may race with this. Each side writes its own cell, then a SeqCst
    /// fence, then reads the other's: at least one of the two sees the other, so a waiter or
    /// subscriber is never missed (and a list ends once, so nobody is told twice).
    fn set_end(&self, end: LeaseEnd) -> bool {
        if self.end.set(end).is_err() {
            return false;
        }
        fence(Ordering::SeqCst);
        if let Some(notify) = self.ended_notify.get() {
            notify.notify_waiters();
        }
        true
    }

    /// Ends the tenure with a loss: every reader and subscriber is told, now and later.
    /// Returns false if it had already ended (nothing is told twice).
    pub(crate) fn end_lost(&self, lost: &LockLost) -> bool {
        let ended = self.set_end(LeaseEnd::Lost {
            reason: lost.reason.clone(),
        });
        if let Some(list) = self.subscribers.get().filter(|_| ended) {
            list.end_with_loss(lost);
        }
        ended
    }

    /// Ends the tenure as released. Returns false if it had already ended.
    pub(crate) fn end_released(&self) -> bool {
        let ended = self.set_end(LeaseEnd::Released);
        if let Some(list) = self.subscribers.get().filter(|_| ended) {
            list.end_released();
        }
        ended
    }

    /// Subscribes `who` to this lock's loss: told once, at once if the lock is already lost.
    pub(crate) fn subscribe(&self, who: Recipient<LockLost>) -> LossSubscription {
        let list = self.subscribers.get_or_init(Arc::default);
        let subscription = list.subscribe(who);
        fence(Ordering::SeqCst);
        // An end set before this list existed told nobody: end the list from here. (If the
        // end did see the list, it ended it already and this changes nothing.)
        match self.end.get() {
            Some(LeaseEnd::Lost { reason }) => list.end_with_loss(&LockLost {
                key: self.tenure.key.clone(),
                token: self.token,
                reason: reason.clone(),
            }),
            Some(LeaseEnd::Released) => list.end_released(),
            None => {}
        }
        subscription
    }

    pub(crate) fn ended(&self) -> Option<LeaseEnd> {
        self.end.get().cloned()
    }

    /// Resolves when the tenure ends, at once if it already has.
    async fn wait_ended(&self) -> LeaseEnd {
        if let Some(end) = self.end.get() {
            return end.clone();
        }
        let notify = self.ended_notify.get_or_init(Box::default);
        loop {
            // Made before the check: a `notify_waiters` after it completes it, so an end set
            // between the check and the await is not missed (see `set_end` for the fence).
            let notified = notify.notified();
            fence(Ordering::SeqCst);
            if let Some(end) = self.end.get() {
                return end.clone();
            }
            notified.await;
        }
    }

    /// The tenure: key, value, holder record, TTL.
    pub(crate) fn tenure(&self) -> &Tenure {
        &self.tenure
    }

    pub(crate) fn token(&self) -> u64 {
        self.token
    }
}

impl Lease {
    pub(crate) fn new(shared: Arc<LeaseState>) -> Lease {
        Lease { shared }
    }

    /// The lock key.
    pub fn key(&self) -> &str {
        &self.shared.tenure.key
    }

    /// The fencing token: the revision that created this tenure. Later tenures of the same
    /// key have strictly greater tokens, so a resource that remembers the highest token it
    /// has seen can refuse writes from a holder that lost the lock without knowing it.
    pub fn token(&self) -> u64 {
        self.shared.token
    }

    /// The tenure: key, value, holder record, TTL.
    pub(crate) fn tenure(&self) -> &Tenure {
        self.shared.tenure()
    }

    /// The key's last revision before this tenure (0: none), when known.
    pub(crate) fn previous_revision(&self) -> Option<u64> {
        Some(self.shared.previous).filter(|p| *p != UNKNOWN)
    }

    /// ```no_run
    /// # async fn f(lease: nlock::Lease) {
    /// while lease.is_held() {
    ///     // ... one step of the work, shorter than the lease's margin ...
    /// }
    /// println!("{} (token {}) is no longer held", lease.key(), lease.token());
    /// # }
    /// ```
    ///
    /// Whether the lock is held as far as this process knows: not lost, no release begun,
    /// and the local lease deadline still ahead. Checked here, without a message to the lock
    /// actor, so it turns false at the deadline even if the actor's thread is stuck. It is
    /// false from the moment a release starts, before its delete is sent: the delete may free
    /// the key for another holder before its answer comes back.
    pub fn is_held(&self) -> bool {
        self.shared.live() && Instant::now() < self.shared.deadline()
    }

    /// Time left until the local lease deadline; zero once the tenure ended, a release began,
    /// or the deadline passed. Refreshes move the deadline.
    ///
    /// ```no_run
    /// # fn f(lease: nlock::Lease) {
    /// if lease.time_left() < std::time::Duration::from_millis(500) {
    ///     eprintln!("{} is about to run out", lease.key());
    /// }
    /// # }
    /// ```
    pub fn time_left(&self) -> Duration {
        if !self.shared.live() {
            return Duration::ZERO;
        }
        self.shared
            .deadline()
            .saturating_duration_since(Instant::now())
    }

    /// How the tenure ended, or `None` while it lasts.
    pub fn end(&self) -> Option<LeaseEnd> {
        self.shared.ended()
    }

    /// Resolves when the tenure ends, released or lost.
    ///
    /// ```no_run
    /// # async fn f(lease: nlock::Lease) {
    /// match lease.ended().await {
    ///     nlock::LeaseEnd::Released => println!("released"),
    ///     nlock::LeaseEnd::Lost { reason } => eprintln!("lost: {reason}"),
    ///     _ => {}
    /// }
    /// # }
    /// ```
    pub async fn ended(&self) -> LeaseEnd {
        self.shared.wait_ended().await
    }

    /// Resolves when the lock is lost; never resolves if it is released. Meant for
    /// `tokio::select!` next to the work the lock protects.
    ///
    /// ```no_run
    /// # async fn f(lease: nlock::Lease) {
    /// tokio::select! {
    ///     _ = work(lease.token()) => {}
    ///     lost = lease.lost() => eprintln!("stopped: {}", lost.reason),
    /// }
    /// # }
    /// # async fn work(_: u64) {}
    /// ```
    pub async fn lost(&self) -> LockLost {
        match self.ended().await {
            LeaseEnd::Lost { reason } => LockLost {
                key: self.shared.tenure.key.clone(),
                token: self.shared.token,
                reason,
            },
            LeaseEnd::Released => std::future::pending().await,
        }
    }

    /// Tells `recipient` with [`LockLost`] if the lock is lost: once, also when the loss
    /// happened before this call. The subscription is weak: it does not keep the subscriber
    /// alive, and a subscriber that has stopped is skipped.
    ///
    /// Keep an address of the subscriber yourself. A `Recipient` made from an actor's only
    /// address (`Actor.start().recipient()` passed straight in) is dropped with this call's
    /// argument, the actor stops, and nothing is delivered. A subscriber whose actor has already stopped is logged as a warning.
    ///
    /// The subscription lasts while the returned guard does (or for the tenure, after
    /// [`LossSubscription::detach`]).
    ///
    /// ```no_run
    /// # use actix::prelude::*;
    /// # struct Alarm;
    /// # impl Actor for Alarm { type Context = Context<Self>; }
    /// # impl Handler<nlock::LockLost> for Alarm {
    /// #     type Result = ();
    /// #     fn handle(&mut self, _: nlock::LockLost, _: &mut Context<Self>) {}
    /// # }
    /// # fn f(lease: nlock::Lease) {
    /// let alarm = Alarm.start();
    /// lease.subscribe(alarm.clone().recipient()).detach(); // for the whole tenure
    /// # }
    /// ```
    pub fn subscribe(&self, recipient: Recipient<LockLost>) -> LossSubscription {
        self.shared.subscribe(recipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn lease_state() -> Arc<LeaseState> {
        let id = crate::lock::tenure::TenureId::random();
        let holder = crate::holder::Holder {
            owner: "o".into(),
            host: "h".into(),
            pid: 1,
            acquired_at_ms: 0,
            description: None,
            tenure: id.text(),
            token: Some(7),
            permits: None,
            foreign: false,
        };
        let tenure = Tenure::new("k".into(), &holder, id, Duration::from_secs(30), false);
        let deadline = Instant::now() + Duration::from_secs(30);
        LeaseState::new(tenure, 7, deadline, None)
    }

    fn lost(reason: LossReason) -> LockLost {
        LockLost {
            key: "k".into(),
            token: 7,
            reason,
        }
    }

    #[tokio::test]
    async fn a_waiter_from_before_the_loss_is_woken_with_it() {
        let state = lease_state();
        let lease = Lease::new(state.clone());
        let mut waiting = Box::pin(lease.lost());
        // Polled (so registered) before the loss.
        assert!((&mut waiting).now_or_never().is_none());
        assert!(lease.is_held());
        assert!(state.end_lost(&lost(LossReason::Expired)));
        let told = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting lost() resolves");
        assert_eq!(told, lost(LossReason::Expired));
        assert!(!lease.is_held());
    }

    #[tokio::test]
    async fn lost_and_ended_asked_after_the_loss_resolve_at_once_with_the_first_end() {
        let state = lease_state();
        assert!(state.end_lost(&lost(LossReason::Deleted)));
        // Told once: a later end changes nothing.
        assert!(!state.end_lost(&lost(LossReason::Expired)));
        assert!(!state.end_released());
        let lease = Lease::new(state);
        assert_eq!(lease.lost().now_or_never(), Some(lost(LossReason::Deleted)));
        let deleted = LeaseEnd::Lost {
            reason: LossReason::Deleted,
        };
        assert_eq!(lease.ended().now_or_never(), Some(deleted.clone()));
        assert_eq!(lease.end(), Some(deleted));
        assert_eq!(lease.time_left(), Duration::ZERO);
    }

    #[test]
    fn a_release_begun_stays_begun_when_a_refresh_moves_the_deadline() {
        let state = lease_state();
        let lease = Lease::new(state.clone());
        assert!(lease.is_held());
        state.begin_release();
        assert!(!lease.is_held());
        assert_eq!(lease.time_left(), Duration::ZERO);
        // A refresh that was in flight when the release began still moves the deadline.
        state.set_deadline(Instant::now() + Duration::from_secs(60));
        assert!(!lease.is_held());
        assert_eq!(lease.end(), None);
    }

    #[test]
    fn the_previous_revision_is_kept_when_known() {
        let state = lease_state();
        assert_eq!(Lease::new(state).previous_revision(), None);
        let tenure = lease_state().tenure().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        for previous in [0, 41] {
            let lease = Lease::new(LeaseState::new(tenure.clone(), 7, deadline, Some(previous)));
            assert_eq!(lease.previous_revision(), Some(previous));
        }
    }

    #[tokio::test]
    async fn a_released_lease_ends_released_and_never_reports_a_loss() {
        let state = lease_state();
        let lease = Lease::new(state.clone());
        let ended = tokio::spawn({
            let lease = lease.clone();
            async move { lease.ended().await }
        });
        assert!(state.end_released());
        assert_eq!(ended.await.unwrap(), LeaseEnd::Released);
        assert!(lease.lost().now_or_never().is_none());
        assert!(!state.end_lost(&lost(LossReason::Expired)));
        assert_eq!(lease.end(), Some(LeaseEnd::Released));
    }
}
