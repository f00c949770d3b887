//! `LockHandle`: what a caller holds while it holds a lock.
//!
//! Dropping a handle releases the lock (a `Release` message to its actor, sent without
//! waiting), like dropping a mutex guard. To learn whether the release succeeded, call
//! [`LockHandle::release`] instead and await it. The handle's [`Lease`] can be cloned and
//! given to the code that does the protected work; it does not keep the lock.

use actix::{Addr, Recipient};

use crate::error::{LockError, ReleaseError};
use crate::lock::actor::LockActor;
use crate::lock::granted::Granted;
use crate::lock::lease::{Lease, LeaseEnd};
use crate::lock::loss::{LockLost, LossSubscription};
use crate::lock::state::{ended_error, GetState, LockState, Refresh};

/// A held lock. Not `Clone`: one handle, one holder; dropping it releases the lock.
///
/// ```no_run
/// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let lock = manager.acquire("reports.nightly", None).await?;
/// tokio::select! {
///     _ = do_work(lock.token()) => {}
///     lost = lock.lost() => eprintln!("stopping: {}", lost.reason),
/// }
/// lock.release().await?;
/// # Ok(()) }
/// # async fn do_work(_: u64) {}
/// ```
#[derive(Debug)]
pub struct LockHandle {
    granted: Granted,
}

impl LockHandle {
    pub(crate) fn new(granted: Granted) -> Self {
        LockHandle { granted }
    }

    /// Stops refreshing without releasing: the tenure ends at its lease deadline (lost,
    /// `Expired`; `is_held()` false from then) and the key expires on the server, so nobody
    /// else can take it earlier; a manager shutdown does not delete it either. For a holder
    /// whose protected work did not stop in time and must not be handed over early (an
    /// elector's role past its `stop_timeout`). Consumes the handle: nothing is released
    /// when it goes.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) {
    /// let lease = lock.lease().clone();
    /// lock.let_expire();
    /// let end = lease.ended().await; // at the lease deadline: lost, `Expired`
    /// # }
    /// ```
    pub fn let_expire(self) {
        self.granted.let_expire();
    }

    /// The lock key.
    ///
    /// ```no_run
    /// # fn f(lock: nlock::LockHandle) {
    /// println!("holding {} with token {}", lock.key(), lock.token());
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        self.lease().key()
    }

    /// The fencing token: the revision that created this tenure. Tokens of later tenures of
    /// the same key are strictly greater, so a resource that remembers the highest token it
    /// has seen can refuse writes from a holder that lost the lock without knowing it.
    pub fn token(&self) -> u64 {
        self.lease().token()
    }

    /// A view of this tenure for the code doing the work: key, token, `is_held()`, `lost()`,
    /// `ended()`. Clone it freely; it does not keep the lock, and it stays readable after
    /// the handle is released.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) {
    /// let lease = lock.lease().clone();
    /// tokio::spawn(async move {
    ///     // The worker checks the lease; it does not keep the lock.
    ///     if lease.is_held() {
    ///         println!("writing with token {}", lease.token());
    ///     }
    /// });
    /// # }
    /// ```
    pub fn lease(&self) -> &Lease {
        self.granted.lease()
    }

    /// The lock actor's address, for sending it the messages of [`nlock::actor`](crate::actor)
    /// directly.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
    /// let state = lock.actor().send(nlock::actor::GetState).await?;
    /// # Ok(()) }
    /// ```
    pub fn actor(&self) -> &Addr<LockActor> {
        self.granted.addr()
    }

    /// Releases the lock and waits for the delete to be acknowledged. Consumes the handle:
    /// a lock is released once (keep a clone of [`lease`](LockHandle::lease) to read the
    /// tenure's end afterwards). A release after a loss answers
    /// [`ReleaseErrorKind::Lost`](crate::ReleaseErrorKind::Lost) with the reason; one whose
    /// answer did not come before the lease deadline
    /// [`ReleaseErrorKind::OutcomeUnknown`](crate::ReleaseErrorKind::OutcomeUnknown). It never
    /// touches another holder's lock.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let lock = m.acquire("reports.nightly", None).await?;
    /// let lease = lock.lease().clone();
    /// lock.release().await?;
    /// assert!(!lease.is_held());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ReleaseErrorKind`](crate::ReleaseErrorKind): `Lost` (with the reason) after a loss,
    /// `OutcomeUnknown` when no answer came before the lease deadline, `ManagerGone`.
    pub async fn release(self) -> Result<(), ReleaseError> {
        if let Some(end) = self.lease().end() {
            return Err(end_error(self.key(), Some(end)).into());
        }
        let (key, lease) = (self.key().to_owned(), self.lease().clone());
        match self.granted.release().await {
            Some(answer) => answer.map_err(ReleaseError::from),
            None => Err(end_error(&key, lease.end()).into()),
        }
    }

    /// Refreshes the lock now; needed when keep-alive is off. A refresh that finds the lock
    /// gone answers [`ReleaseErrorKind::Lost`](crate::ReleaseErrorKind::Lost) with the reason.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
    /// for chunk in 0..10 {
    ///     // ... one chunk of work, shorter than the TTL ...
    ///     lock.refresh().await?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ReleaseErrorKind`](crate::ReleaseErrorKind): `Lost` with the reason, `NotHeld`
    /// after a release, `OutcomeUnknown`, `Unavailable`, `Rejected`, `PermissionDenied` from
    /// NATS (the lease deadline decides whether the lock survives them).
    pub async fn refresh(&self) -> Result<(), ReleaseError> {
        self.actor()
            .send(Refresh)
            .await
            .unwrap_or_else(|_| Err(self.gone()))
            .map_err(ReleaseError::from)
    }

    /// The lock's state while its actor runs; after the tenure ended,
    /// [`ReleaseErrorKind::Lost`](crate::ReleaseErrorKind::Lost) with the reason, or
    /// [`ReleaseErrorKind::NotHeld`](crate::ReleaseErrorKind::NotHeld) after a release.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
    /// let state = lock.state().await?;
    /// println!("{} held by {}, revision {}, {:?} left", state.key, state.holder, state.revision, state.time_left);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ReleaseErrorKind`](crate::ReleaseErrorKind): `Lost` (with the reason) when the tenure
    /// was lost, `NotHeld` when it ended otherwise (released); both once its actor has stopped.
    pub async fn state(&self) -> Result<LockState, ReleaseError> {
        self.actor()
            .send(GetState)
            .await
            .map_err(|_| ReleaseError::from(self.gone()))
    }

    /// Whether the lock is still held as far as this process knows: not lost, not released,
    /// and its lease deadline still ahead (checked here, without waiting for the actor).
    ///
    /// ```no_run
    /// # async fn write(_: u64) {}
    /// # async fn f(lock: nlock::LockHandle) {
    /// if lock.is_held() {
    ///     write(lock.token()).await;
    /// }
    /// # }
    /// ```
    pub fn is_held(&self) -> bool {
        self.lease().is_held()
    }

    /// Tells `recipient` with [`LockLost`] if the lock is lost: once, also if the loss came
    /// before this call, for as long as the returned guard lives. Weak: it does not keep the
    /// subscriber alive (keep an address of it yourself; a stopped subscriber is logged as a
    /// warning). See [`Lease::subscribe`].
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
    ///         eprintln!("lost {}: {}", lost.key, lost.reason);
    ///     }
    /// }
    /// # fn f(lock: nlock::LockHandle) {
    /// let alarm = Alarm.start(); // keep it: the subscription alone does not
    /// let subscription = lock.subscribe(alarm.clone().recipient());
    /// # }
    /// ```
    pub fn subscribe(&self, recipient: Recipient<LockLost>) -> LossSubscription {
        self.lease().subscribe(recipient)
    }

    /// Resolves when the lock is lost; never resolves if it is released normally. Meant for
    /// `tokio::select!` next to the work the lock protects.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
    /// tokio::select! {
    ///     _ = work(lock.token()) => lock.release().await?,
    ///     lost = lock.lost() => eprintln!("stopped: {}", lost.reason),
    /// }
    /// # Ok(()) }
    /// # async fn work(_: u64) {}
    /// ```
    pub async fn lost(&self) -> LockLost {
        self.lease().lost().await
    }

    /// Resolves when the tenure ends: released, or lost with the reason.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) {
    /// match lock.ended().await {
    ///     nlock::LeaseEnd::Lost { reason } => eprintln!("lost: {reason}"),
    ///     end => println!("ended: {end:?}"),
    /// }
    /// # }
    /// ```
    pub async fn ended(&self) -> LeaseEnd {
        self.lease().ended().await
    }

    fn gone(&self) -> LockError {
        end_error(self.key(), self.lease().end())
    }
}

/// The error for a tenure that ended (or whose actor is gone without saying how).
fn end_error(key: &str, end: Option<LeaseEnd>) -> LockError {
    match end {
        Some(LeaseEnd::Lost { reason }) => ended_error(key, Some(&reason)),
        _ => ended_error(key, None),
    }
}
