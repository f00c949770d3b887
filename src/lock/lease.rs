//! `Lease`: a cheap, cloneable view of one tenure for the code that does the protected work.
//!
//! The lock actor owns the tenure and writes to the shared state behind every `Lease`: the
//! local lease deadline (moved by each refresh) and, once, how the tenure ended. Readers need
//! no message and no actor: `is_held()` reads an atomic and a watch channel, so it answers
//! even while the actor's thread is busy, and it turns false at the deadline by itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::LossReason;
use crate::lock::loss::{LockLost, LossSubscription, Subscribers};

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
    key: String,
    token: u64,
    /// The key's last revision before this tenure (0: the key had no message), when known:
    /// how an elector tells a key freed by a marker from one emptied without a trace.
    previous: Option<u64>,
    /// The local lease deadline as nanoseconds after `base`, in an atomic: the actor moves it
    /// on every refresh, readers load it without a lock.
    base: Instant,
    deadline_nanos: AtomicU64,
    /// Set when the holder starts its release, before the delete is sent: from then on the
    /// lock is not held as far as the holder's code is concerned, since the delete may land
    /// (and the key be granted elsewhere) before its answer comes, or without one.
    releasing: AtomicBool,
    /// Set once when the tenure ends; a watch channel so a late reader still sees it.
    end: watch::Sender<Option<LeaseEnd>>,
    subscribers: Arc<Subscribers>,
}

impl LeaseState {
    pub(crate) fn new(
        key: String,
        token: u64,
        deadline: Instant,
        previous: Option<u64>,
    ) -> Arc<LeaseState> {
        let state = LeaseState {
            key,
            token,
            previous,
            base: Instant::now(),
            deadline_nanos: AtomicU64::new(0),
            releasing: AtomicBool::new(false),
            end: watch::channel(None).0,
            subscribers: Arc::default(),
        };
        state.set_deadline(deadline);
        Arc::new(state)
    }

    pub(crate) fn set_deadline(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.base).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.deadline_nanos.store(nanos, Ordering::Release);
    }

    /// The holder starts its release: `is_held()` is false from now on.
    pub(crate) fn begin_release(&self) {
        self.releasing.store(true, Ordering::Release);
    }

    /// Whether the tenure still counts as held: not ended, not being released.
    fn live(&self) -> bool {
        self.end.borrow().is_none() && !self.releasing.load(Ordering::Acquire)
    }

    fn deadline(&self) -> Instant {
        let nanos = self.deadline_nanos.load(Ordering::Acquire);
        crate::deadline::after(self.base, Duration::from_nanos(nanos))
    }

    /// Ends the tenure with a loss: every reader and subscriber is told, now and later.
    /// Returns false if it had already ended (nothing is told twice).
    pub(crate) fn end_lost(&self, lost: &LockLost) -> bool {
        let ended = self.end.send_if_modified(|end| {
            if end.is_some() {
                return false;
            }
            *end = Some(LeaseEnd::Lost {
                reason: lost.reason.clone(),
            });
            true
        });
        if ended {
            self.subscribers.end_with_loss(lost);
        }
        ended
    }

    /// Ends the tenure as released. Returns false if it had already ended.
    pub(crate) fn end_released(&self) -> bool {
        let ended = self.end.send_if_modified(|end| {
            if end.is_some() {
                return false;
            }
            *end = Some(LeaseEnd::Released);
            true
        });
        if ended {
            self.subscribers.end_released();
        }
        ended
    }

    pub(crate) fn ended(&self) -> Option<LeaseEnd> {
        self.end.borrow().clone()
    }

    pub(crate) fn subscribers(&self) -> &Arc<Subscribers> {
        &self.subscribers
    }
}

impl Lease {
    pub(crate) fn new(shared: Arc<LeaseState>) -> Lease {
        Lease { shared }
    }

    /// The lock key.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The fencing token: the revision that created this tenure. Later tenures of the same
    /// key have strictly greater tokens, so a resource that remembers the highest token it
    /// has seen can refuse writes from a holder that lost the lock without knowing it.
    pub fn token(&self) -> u64 {
        self.shared.token
    }

    /// The key's last revision before this tenure (0: none), when known.
    pub(crate) fn previous_revision(&self) -> Option<u64> {
        self.shared.previous
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
        let mut rx = self.shared.end.subscribe();
        loop {
            if let Some(end) = rx.borrow_and_update().clone() {
                return end;
            }
            // The sender lives in the shared state this lease holds: it cannot close first.
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
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
                key: self.shared.key.clone(),
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
        self.shared.subscribers.subscribe(recipient)
    }
}
