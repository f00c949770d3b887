//! The manager's public messages: what a caller can ask a `LockManagerActor`, and the
//! per-lock options of an acquire.

use std::time::Duration;

use actix::prelude::*;

use crate::error::LockError;
use crate::lock::granted::Pending;
use crate::lock::loss::{LockLost, LossSubscription};
use crate::lock::state::LockState;

/// Queues a request for a lock; the grant comes on the answer's channel. The caller's side
/// (the timeout, the handle) is built one layer up.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Pending, LockError>")]
pub(crate) struct Acquire {
    pub key: String,
    pub options: LockOptions,
}

/// Takes the lock only if it is free right now; `Busy` otherwise, naming the holder.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Pending, LockError>")]
pub(crate) struct TryAcquire {
    pub key: String,
    pub options: LockOptions,
}

/// Per-lock options.
///
/// ```
/// use std::time::Duration;
/// let options = nlock::LockOptions::default()
///     .ttl(Duration::from_secs(5))
///     .description("compacting segment 42");
/// assert_eq!(options.ttl, Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockOptions {
    /// A TTL for this lock instead of the bucket's (server 2.11+; whole seconds, >= 1 s).
    pub ttl: Option<Duration>,
    /// Stored in the lock value, shown to anyone who finds the lock busy.
    pub description: Option<String>,
    /// A lock-delay, as Consul sessions have: when the previous tenure of the key ended
    /// uncleanly (someone else's delete or purge, [`LockManager::force_release`](crate::LockManager::force_release)),
    /// the acquire (also `try_acquire`) returns only this long after taking the key, which
    /// it holds and keeps alive meanwhile. The previous holder learns of its loss at about
    /// the moment the key is taken, and gets this long to stop the work the lock protects.
    /// Not waited after a release by the holder nor after an expiry. `None` (the default):
    /// no delay.
    pub lock_delay: Option<Duration>,
    /// Set for a permit of a semaphore: its permit count, stored in the lock value so that
    /// every process can check it agrees (`LockManager::semaphore`).
    pub(crate) permits: Option<u32>,
    /// The key is one nlock makes for a semaphore's permit or a read-write lock's member.
    pub(crate) internal_key: bool,
}

impl LockOptions {
    /// A TTL for this lock instead of the bucket's.
    #[must_use]
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = nlock::LockOptions::default().ttl(Duration::from_secs(5));
    /// assert_eq!(options.ttl, Some(Duration::from_secs(5)));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// A lock-delay after an unclean end of the previous tenure; see the field.
    #[must_use]
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = nlock::LockOptions::default().lock_delay(Duration::from_secs(2));
    /// assert_eq!(options.lock_delay, Some(Duration::from_secs(2)));
    /// ```
    pub fn lock_delay(mut self, delay: Duration) -> Self {
        self.lock_delay = Some(delay);
        self
    }

    /// A description stored in the lock value, shown to anyone who finds the lock busy.
    #[must_use]
    ///
    /// ```
    /// let options = nlock::LockOptions::default().description("nightly report");
    /// assert_eq!(options.description.as_deref(), Some("nightly report"));
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Asks for every key this process holds or waits for.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), Box<dyn std::error::Error>> {
/// let report = m.actor().send(nlock::actor::ListLocks).await?;
/// println!("{} held, {} waited for", report.held.len(), report.waiting.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Message)]
#[rtype(result = "LocksReport")]
pub struct ListLocks;

/// What [`ListLocks`] answers.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let report = m.locks().await?;
/// for (key, waiters) in &report.waiting {
///     println!("{waiters} request(s) wait for {key}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LocksReport {
    /// States of the locks held by this process, by key.
    pub held: Vec<LockState>,
    /// Keys this process waits for, with how many local requests wait on each.
    pub waiting: Vec<(String, usize)>,
}

/// Subscribes to every lock loss in this manager (weakly: the subscription does not keep the
/// subscriber alive), for as long as the answered guard lives; the same as
/// [`LockManager::subscribe_losses`](crate::LockManager::subscribe_losses).
///
/// ```no_run
/// use actix::prelude::*;
///
/// struct Alarm;
/// impl Actor for Alarm {
///     type Context = Context<Self>;
/// }
/// impl Handler<nlock::LockLost> for Alarm {
///     type Result = ();
///     fn handle(&mut self, lost: nlock::LockLost, _: &mut Context<Self>) {
///         eprintln!("lost {} (token {}): {}", lost.key, lost.token, lost.reason);
///     }
/// }
/// # async fn f(m: nlock::LockManager) -> Result<(), actix::MailboxError> {
/// let alarm = Alarm.start(); // keep it: the subscription alone does not
/// let subscription = m.actor().send(nlock::actor::SubscribeLosses(alarm.clone().recipient())).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Message)]
#[rtype(result = "LossSubscription")]
pub struct SubscribeLosses(pub Recipient<LockLost>);

/// Releases every held lock, fails every waiter, and stops the manager: the second half of
/// [`LockManager::shutdown`](crate::LockManager::shutdown), which first winds down what is
/// built on the manager (electors).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

/// Asks the manager how much per-key state it keeps ([`ManagerCounts`]); for tests.
#[derive(Debug, Message)]
#[rtype(result = "ManagerCounts")]
pub(crate) struct CountState;

/// How much per-key state a manager keeps, for tests that check nothing grows without
/// bound. Not part of the stable API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManagerCounts {
    /// Keys with a queue (requests, a contender or a held lock).
    pub keys: usize,
    /// Queued requests over all keys, withdrawn ones included.
    pub queued: usize,
    /// Waiting contenders that the change stream wakes.
    pub wakers: usize,
}
