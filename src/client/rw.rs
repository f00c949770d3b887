//! [`RwLockRequest`]: many readers or one writer of a name, in the order they asked.
//!
//! Each request writes a key of its own, `_nlock.rw.<name>.<r|w>.<id>`, with a create, and
//! holds it as a lock from then on (lease, keep-alive, fencing token = the create's revision,
//! release on drop). The create's revision orders the requests. A writer is granted once no
//! key of the name created before its own is left; a reader once no writer's key created
//! before its own is left. So a writer waits for every earlier reader and writer, a reader
//! for every earlier writer, and a writer is never starved by readers that came after it.
//!
//! A key is left until it is deleted (its holder's release, which ends its `is_held()` first)
//! or expires at the server (after its holder's lease, promise 1), or until this request
//! takes it over: a delete expecting exactly the last write of it seen here, once
//! `takeover_after` has passed since that write was first seen (the takeover's reasoning,
//! GUARANTEES.md: its holder's lease is over by then, and a newer write makes the delete
//! fail). Waiting follows the name's keys with one consumer, deleted when the wait ends.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;

use super::LockManager;
use crate::error::{AcquireError, LockError};
use crate::handle::LockHandle;
use crate::holder::{random_id, Holder};
use crate::key::{parse_rw_key, rw_key, validate_key, RW_PREFIX};
use crate::lock::requests::LockOptions;
use crate::store::{Change, ChangeOp, ChangesFrom, End, Op, WriteError};

/// A request for the read-write lock `name`, made by [`LockManager::rw_lock`]: set what
/// differs from the defaults, then `read()` or `write()` (wait), `try_read()` or
/// `try_write()` (one attempt). What is granted is a [`LockHandle`] like a lock's: its own
/// fencing token (a writer's is above every earlier reader's and writer's), lease,
/// keep-alive, loss notice, and release on drop.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use std::time::Duration;
/// // Many readers of the cache at once...
/// let reading = m.rw_lock("cache.users").timeout(Duration::from_secs(5)).read().await?;
/// reading.release().await?;
/// // ...or one writer, once every earlier reader is done.
/// let writing = m.rw_lock("cache.users").write().await?;
/// writing.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a read-write lock request does nothing until read(), write() or a try_ variant"]
pub struct RwLockRequest<'a> {
    manager: &'a LockManager,
    name: String,
    timeout: Option<Duration>,
    options: LockOptions,
}

impl LockManager {
    /// A request for the read-write lock `name` (lock key rules): many readers or one writer
    /// at once, across every process on this bucket, granted in the order they asked.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let schema = m.rw_lock("db.schema").write().await?;
    /// # Ok(()) }
    /// ```
    pub fn rw_lock(&self, name: &str) -> RwLockRequest<'_> {
        RwLockRequest {
            manager: self,
            name: name.to_owned(),
            timeout: None,
            options: LockOptions {
                internal_key: true,
                ..LockOptions::default()
            },
        }
    }
}

/// A request of the same name created before this one, that this one waits for.
struct Ahead {
    /// Its last write seen here.
    revision: u64,
    /// When that write was first seen here.
    seen_at: Instant,
}

impl RwLockRequest<'_> {
    /// How long [`read`](RwLockRequest::read) and [`write`](RwLockRequest::write) wait;
    /// without it, until granted or dropped.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let r = m.rw_lock("cache").timeout(Duration::from_secs(2)).read().await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A TTL for this request's key instead of the bucket's, as
    /// [`LockRequest::ttl`](crate::LockRequest::ttl).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let r = m.rw_lock("cache").ttl(Duration::from_secs(5)).read().await?;
    /// # Ok(()) }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = Some(ttl);
        self
    }

    /// Stored in the request's value, shown to anyone who lists the holders.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let w = m.rw_lock("db.schema").description("migration 42").write().await?;
    /// # Ok(()) }
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.options.description = Some(description.into());
        self
    }

    /// Waits to read: until no writer that asked earlier holds or waits.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let r = m.rw_lock("cache").read().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `InvalidKey` (the name) and
    /// `InvalidConfig` before anything is written; `AcquireTimedOut` after the timeout;
    /// `Unavailable` when the request's own key is lost while it waits, or NATS fails;
    /// otherwise what [`LockRequest::try_acquire`](crate::LockRequest::try_acquire) returns.
    pub async fn read(self) -> Result<LockHandle, AcquireError> {
        self.wait(false).await
    }

    /// Waits to write: until every reader and writer that asked earlier is done.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let w = m.rw_lock("cache").write().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`read`](RwLockRequest::read).
    pub async fn write(self) -> Result<LockHandle, AcquireError> {
        self.wait(true).await
    }

    /// Reads if no writer holds or waits now, else
    /// [`AcquireErrorKind::Busy`](crate::AcquireErrorKind::Busy).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let r = m.rw_lock("cache").try_read().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `Busy`, and what [`read`](RwLockRequest::read) returns but `AcquireTimedOut`.
    pub async fn try_read(self) -> Result<LockHandle, AcquireError> {
        self.attempt(false).await
    }

    /// Writes if nobody else holds or waits now, else
    /// [`AcquireErrorKind::Busy`](crate::AcquireErrorKind::Busy).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let w = m.rw_lock("cache").try_write().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`try_read`](RwLockRequest::try_read).
    pub async fn try_write(self) -> Result<LockHandle, AcquireError> {
        self.attempt(true).await
    }

    /// Writes this request's key: held from now on, its token its place in the order.
    async fn join(&self, writer: bool) -> Result<LockHandle, AcquireError> {
        validate_key(&self.name)?;
        let key = rw_key(&self.name, writer, &random_id());
        self.manager
            .lock(&key)
            .options(self.options.clone())
            .try_acquire()
            .await
    }

    /// The filter of every key of this name.
    fn filter(&self) -> String {
        format!("{RW_PREFIX}{}.>", self.name)
    }

    /// Whether `change` is a key this request (a writer or not, with `token`) waits for.
    fn waits_for(&self, change: &Change, writer: bool, token: u64) -> bool {
        let Some((name, their_writer)) = parse_rw_key(&change.key) else {
            return false;
        };
        let ticket = Holder::decode(&change.value)
            .and_then(|h| h.token)
            .unwrap_or(change.revision);
        change.op == ChangeOp::Put
            && name == self.name
            && ticket < token
            && (writer || their_writer)
    }

    async fn attempt(self, writer: bool) -> Result<LockHandle, AcquireError> {
        let me = self.join(writer).await?;
        let members = self.manager.store.snapshot(&self.filter()).await?;
        if members
            .iter()
            .any(|c| c.key != me.key() && self.waits_for(c, writer, me.token()))
        {
            // Dropping `me` releases its key.
            return Err(LockError::Busy {
                key: self.name.clone(),
                holder: None,
            }
            .into());
        }
        Ok(me)
    }

    async fn wait(self, writer: bool) -> Result<LockHandle, AcquireError> {
        let Some(timeout) = self.timeout else {
            return self.wait_untimed(writer).await;
        };
        let until = crate::deadline::deadline_after(timeout);
        match tokio::time::timeout_at(until, self.wait_untimed(writer)).await {
            Ok(done) => done,
            // The wait is dropped with its key: released.
            Err(_) => Err(LockError::AcquireTimedOut {
                key: self.name.clone(),
                waited: timeout,
            }
            .into()),
        }
    }

    async fn wait_untimed(&self, writer: bool) -> Result<LockHandle, AcquireError> {
        let me = self.join(writer).await?;
        let store = &self.manager.store;
        // Opened before the snapshot: a key that leaves after the snapshot is in it.
        let mut changes = store.changes(&self.filter(), ChangesFrom::Now).await?;
        let mut ahead: HashMap<String, Ahead> = store
            .snapshot(&self.filter())
            .await?
            .into_iter()
            .filter(|c| c.key != me.key() && self.waits_for(c, writer, me.token()))
            .map(|c| {
                let seen = Ahead {
                    revision: c.revision,
                    seen_at: Instant::now(),
                };
                (c.key, seen)
            })
            .collect();
        // How long after its last write seen a key is surely no one's: the takeover's wait,
        // or with the takeover off, the bucket's age limit (then a read tells).
        let patience = self.manager.takeover_after.unwrap_or(store.max_age());
        loop {
            let Some((first, at)) = ahead
                .iter()
                .map(|(k, a)| (k.clone(), crate::deadline::after(a.seen_at, patience)))
                .min_by_key(|(_, at)| *at)
            else {
                return Ok(me);
            };
            tokio::select! {
                lost = me.lost() => {
                    tracing::warn!(key = %me.key(), reason = %lost.reason, "lost while waiting");
                    return Err(LockError::NotHeld { key: me.key().to_owned() }.into());
                }
                change = changes.next() => match change {
                    Some(c) => {
                        if let Some(a) = ahead.get_mut(&c.key) {
                            if c.op != ChangeOp::Put {
                                ahead.remove(&c.key);
                            } else if c.revision > a.revision {
                                *a = Ahead { revision: c.revision, seen_at: Instant::now() };
                            }
                        }
                    }
                    // A change stream reopens after a break; it ends only with the store.
                    None => return Err(LockError::ManagerGone.into()),
                },
                _ = tokio::time::sleep_until(at) => {
                    self.take_over(&first, &mut ahead, self.manager.takeover_after.is_some())
                        .await;
                }
            }
        }
    }

    /// The holder of `key` stopped writing it long enough ago: delete it on exactly the write
    /// seen (or, with the takeover off, read whether the server removed it). A newer write
    /// makes it count again from now.
    async fn take_over(&self, key: &str, ahead: &mut HashMap<String, Ahead>, delete: bool) {
        let store = &self.manager.store;
        let Some(seen) = ahead.get(key).map(|a| a.revision) else {
            return;
        };
        if delete {
            match store.delete(key, seen, Bytes::new(), End::Lapsed).await {
                Ok(_) => {
                    ahead.remove(key);
                    return;
                }
                Err(WriteError::Conflict) => {}
                // Not known: look again after another wait.
                Err(_) => {
                    if let Some(a) = ahead.get_mut(key) {
                        a.seen_at = Instant::now();
                    }
                    return;
                }
            }
        }
        match store.read(key).await {
            Ok(Some(ev)) if ev.op == Op::Put => {
                if let Some(a) = ahead.get_mut(key) {
                    *a = Ahead {
                        revision: ev.revision,
                        seen_at: Instant::now(),
                    };
                }
            }
            // Deleted or expired: no one's.
            Ok(_) => {
                ahead.remove(key);
            }
            Err(_) => {
                if let Some(a) = ahead.get_mut(key) {
                    a.seen_at = Instant::now();
                }
            }
        }
    }
}
