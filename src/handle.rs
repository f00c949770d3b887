//! `LockHandle`: what a caller holds while it holds a lock.
//!
//! Dropping a handle releases the lock (a `Release` message to its actor, sent without
//! waiting), like dropping a mutex guard. To learn whether the release succeeded, call
//! [`LockHandle::release`] instead and await it.

use std::sync::Arc;

use actix::{Addr, Recipient};
use tokio::sync::watch;

use crate::error::LockError;
use crate::lock_actor::{
    GetState, LockActor, LockLost, LockState, Refresh, Release, SharedDeadline, Subscribe,
};

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
    key: String,
    token: u64,
    addr: Addr<LockActor>,
    lost_rx: watch::Receiver<Option<LockLost>>,
    deadline: Arc<SharedDeadline>,
}

impl LockHandle {
    pub(crate) fn new(
        key: String,
        token: u64,
        addr: Addr<LockActor>,
        lost_rx: watch::Receiver<Option<LockLost>>,
        deadline: Arc<SharedDeadline>,
    ) -> Self {
        LockHandle {
            key,
            token,
            addr,
            lost_rx,
            deadline,
        }
    }

    /// The lock key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The fencing token: the revision that created this tenure. Tokens of later tenures of
    /// the same key are strictly greater, so a resource that remembers the highest token it
    /// has seen can refuse writes from a holder that lost the lock without knowing it.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The lock actor's address, for sending it messages directly.
    pub fn actor(&self) -> &Addr<LockActor> {
        &self.addr
    }

    /// Releases the lock and waits for the delete to be acknowledged. A second release, or
    /// one after a loss, answers [`ErrorKind::NotHeld`](crate::ErrorKind::NotHeld) or
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost); it never touches another holder's lock.
    pub async fn release(&self) -> Result<(), LockError> {
        self.addr
            .send(Release)
            .await
            .unwrap_or_else(|_| Err(self.not_held()))
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
            .unwrap_or_else(|_| Err(self.not_held()))
    }

    /// The lock's state, or `NotHeld` once its actor has stopped.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
    /// let state = lock.state().await?;
    /// println!("{} held by {}, revision {}, {:?} left", state.key, state.holder, state.revision, state.time_left);
    /// # Ok(()) }
    /// ```
    pub async fn state(&self) -> Result<LockState, LockError> {
        self.addr.send(GetState).await.map_err(|_| self.not_held())
    }

    /// Whether the lock is still held as far as this process knows: not lost, not released,
    /// and its lease deadline still ahead (checked here, without waiting for the actor).
    pub fn is_held(&self) -> bool {
        self.lost_rx.borrow().is_none() && self.addr.connected() && self.deadline.ahead()
    }

    /// Adds an actor (or any recipient) to be told with [`LockLost`] if the lock is lost.
    pub fn subscribe(&self, recipient: Recipient<LockLost>) {
        self.addr.do_send(Subscribe(recipient));
    }

    /// Resolves when the lock is lost; never resolves if it is released normally. Meant for
    /// `tokio::select!` next to the work the lock protects.
    pub async fn lost(&self) -> LockLost {
        let mut rx = self.lost_rx.clone();
        loop {
            if let Some(lost) = rx.borrow_and_update().clone() {
                return lost;
            }
            if rx.changed().await.is_err() {
                // The actor ended without a loss: a normal release.
                return std::future::pending().await;
            }
        }
    }

    fn not_held(&self) -> LockError {
        LockError::NotHeld {
            key: self.key.clone(),
        }
    }
}

impl Drop for LockHandle {
    /// Releases the lock without waiting. Harmless if it was already released or lost.
    fn drop(&mut self) {
        if self.addr.connected() {
            self.addr.do_send(Release);
        }
    }
}
