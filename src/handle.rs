//! `LockHandle`: what a caller holds while it holds a lock.
//!
//! Dropping a handle releases the lock (a `Release` message to its actor, sent without
//! waiting), like dropping a mutex guard. To learn whether the release succeeded, call
//! [`LockHandle::release`] instead and await it. The handle's [`Lease`] can be cloned and
//! given to the code that does the protected work; it does not keep the lock.

use actix::{Addr, Recipient};

use crate::error::LockError;
use crate::lease::{Lease, LeaseEnd};
use crate::lock::actor::{LetExpire, LockActor};
use crate::lock::state::{ended_error, GetState, LockLost, LockState, Refresh, Release};
use crate::subscribers::SubscriptionId;

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
    lease: Lease,
    addr: Addr<LockActor>,
    /// False once [`let_expire`](LockHandle::let_expire) was called: dropping then releases
    /// nothing.
    release_on_drop: bool,
}

impl LockHandle {
    pub(crate) fn new(lease: Lease, addr: Addr<LockActor>) -> Self {
        LockHandle {
            lease,
            addr,
            release_on_drop: true,
        }
    }

    /// Stops refreshing without releasing: the tenure ends at its lease deadline (lost,
    /// `Expired`; `is_held()` false from then) and the key expires on the server, so nobody
    /// else can take it earlier; a manager shutdown does not delete it either. For a holder
    /// whose protected work did not stop in time and must not be handed over early (an
    /// elector's role past its `stop_timeout`). Consumes the handle: nothing is released
    /// when it goes.
    pub fn let_expire(mut self) {
        self.release_on_drop = false;
        if self.lease.end().is_none() {
            self.addr.do_send(LetExpire);
        }
    }

    /// The lock key.
    pub fn key(&self) -> &str {
        self.lease.key()
    }

    /// The fencing token: the revision that created this tenure. Tokens of later tenures of
    /// the same key are strictly greater, so a resource that remembers the highest token it
    /// has seen can refuse writes from a holder that lost the lock without knowing it.
    pub fn token(&self) -> u64 {
        self.lease.token()
    }

    /// A view of this tenure for the code doing the work: key, token, `is_held()`, `lost()`,
    /// `ended()`. Clone it freely; it does not keep the lock.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The lock actor's address, for sending it messages directly.
    pub fn actor(&self) -> &Addr<LockActor> {
        &self.addr
    }

    /// Releases the lock and waits for the delete to be acknowledged. A second release
    /// answers [`ErrorKind::NotHeld`](crate::ErrorKind::NotHeld); one after a loss answers
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost) with the reason. It never touches another
    /// holder's lock.
    pub async fn release(&self) -> Result<(), LockError> {
        if let Some(end) = self.lease.end() {
            return Err(self.end_error(Some(end)));
        }
        self.addr
            .send(Release)
            .await
            .unwrap_or_else(|_| Err(self.gone()))
    }

    /// Refreshes the lock now; needed when keep-alive is off. A refresh that finds the lock
    /// gone answers [`ErrorKind::Lost`](crate::ErrorKind::Lost) with the reason.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
    /// for chunk in 0..10 {
    ///     // ... one chunk of work, shorter than the TTL ...
    ///     lock.refresh().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn refresh(&self) -> Result<(), LockError> {
        self.addr
            .send(Refresh)
            .await
            .unwrap_or_else(|_| Err(self.gone()))
    }

    /// The lock's state while its actor runs; after the tenure ended, `Lost` with the reason
    /// or `NotHeld` after a release.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
    /// let state = lock.state().await?;
    /// println!("{} held by {}, revision {}, {:?} left", state.key, state.holder, state.revision, state.time_left);
    /// # Ok(()) }
    /// ```
    pub async fn state(&self) -> Result<LockState, LockError> {
        self.addr.send(GetState).await.map_err(|_| self.gone())
    }

    /// Whether the lock is still held as far as this process knows: not lost, not released,
    /// and its lease deadline still ahead (checked here, without waiting for the actor).
    pub fn is_held(&self) -> bool {
        self.lease.is_held()
    }

    /// Tells `recipient` with [`LockLost`] if the lock is lost: once, also if the loss came
    /// before this call. Weak: it does not keep the subscriber alive (keep an address of it
    /// yourself; a stopped subscriber is logged as a warning). See [`Lease::subscribe`].
    pub fn subscribe(&self, recipient: Recipient<LockLost>) -> SubscriptionId {
        self.lease.subscribe(recipient)
    }

    /// Ends a subscription made by [`subscribe`](LockHandle::subscribe).
    pub fn unsubscribe(&self, id: SubscriptionId) {
        self.lease.unsubscribe(id)
    }

    /// Resolves when the lock is lost; never resolves if it is released normally. Meant for
    /// `tokio::select!` next to the work the lock protects.
    pub async fn lost(&self) -> LockLost {
        self.lease.lost().await
    }

    /// Resolves when the tenure ends: released, or lost with the reason.
    pub async fn ended(&self) -> LeaseEnd {
        self.lease.ended().await
    }

    /// The error for a tenure that ended (or whose actor is gone without saying how).
    fn end_error(&self, end: Option<LeaseEnd>) -> LockError {
        match end {
            Some(LeaseEnd::Lost { reason }) => ended_error(self.key(), Some(&reason)),
            _ => ended_error(self.key(), None),
        }
    }

    fn gone(&self) -> LockError {
        self.end_error(self.lease.end())
    }
}

impl Drop for LockHandle {
    /// Releases the lock without waiting. Harmless if it was already released or lost.
    fn drop(&mut self) {
        if self.release_on_drop && self.lease.end().is_none() && self.addr.connected() {
            self.addr.do_send(Release);
        }
    }
}
