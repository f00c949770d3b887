//! [`SemaphoreRequest`]: at most N holders of a name at once, each holding a permit that is a
//! lock of its own (lease, fencing token, keep-alive, loss notice, release on drop).
//!
//! Permit `i` of semaphore `name` is the lock key `_nlock.s.<name>.<i>`, for `i` below the
//! permit count: N keys, each held by at most one tenure (GUARANTEES.md, promise 1), so at
//! most N permits are held at once. A try takes the first free permit, starting at a random
//! one. A waiting request waits for every permit at once, each in its key's line across
//! processes, takes the first it is granted and withdraws the others (a grant that races with
//! the withdrawal is released): since every request joins every line in the order it arrived,
//! the first waiter of one line is the first of all of them, and a freed permit goes to the
//! request that waited longest. The permit count is in every permit's value; a request that
//! finds a permit held with another count fails with `ConfigError::PermitsMismatch`.

use std::time::Duration;

use futures::future::{select_ok, BoxFuture};
use rand::Rng;

use super::request::granted;
use super::LockManager;
use crate::error::{AcquireError, ConfigError, LockError};
use crate::handle::LockHandle;
use crate::holder::Holder;
use crate::key::{parse_permit_key, permit_key, validate_key, PERMIT_PREFIX};
use crate::limits::MAX_PERMITS;
use crate::lock::requests::{Acquire, LockOptions, TryAcquire};
use crate::store::ChangeOp;

/// A request for one permit of a semaphore, made by [`LockManager::semaphore`]: set what
/// differs from the defaults, then `acquire()` (wait) or `try_acquire()` (one attempt). The
/// permit is a [`LockHandle`] like any lock's: its own fencing token, lease, keep-alive, loss
/// notice, and release on drop. Every process using a semaphore must ask for the same permit
/// count.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use std::time::Duration;
/// // At most 4 workers call the rate-limited API at once.
/// let permit = m
///     .semaphore("api.partner", 4)
///     .timeout(Duration::from_secs(30))
///     .acquire()
///     .await?;
/// println!("permit token {}", permit.token());
/// permit.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a semaphore request does nothing until acquire() or try_acquire()"]
pub struct SemaphoreRequest<'a> {
    manager: &'a LockManager,
    name: String,
    permits: u32,
    timeout: Option<Duration>,
    options: LockOptions,
}

impl LockManager {
    /// A request for one of the `permits` permits of the semaphore `name`: at most `permits`
    /// holders at once, across every process on this bucket. `name` follows the lock key
    /// rules; `permits` is 1 to [`MAX_PERMITS`](crate::limits::MAX_PERMITS), the same in
    /// every process.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let permit = m.semaphore("licences.cad", 10).try_acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn semaphore(&self, name: &str, permits: u32) -> SemaphoreRequest<'_> {
        SemaphoreRequest {
            manager: self,
            name: name.to_owned(),
            permits,
            timeout: None,
            options: LockOptions {
                permits: Some(permits),
                internal_key: true,
                ..LockOptions::default()
            },
        }
    }
}

impl SemaphoreRequest<'_> {
    /// How long [`acquire`](SemaphoreRequest::acquire) waits for a permit; without it, until
    /// granted or dropped.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let permit = m.semaphore("pool", 3).timeout(Duration::from_secs(5)).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// [`timeout`](SemaphoreRequest::timeout), or none with `None`.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let permit = m.semaphore("pool", 3).timeout_opt(None).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout_opt(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// A TTL for this permit instead of the bucket's, as [`LockRequest::ttl`](crate::LockRequest::ttl).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let permit = m.semaphore("pool", 3).ttl(Duration::from_secs(5)).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = Some(ttl);
        self
    }

    /// Stored in the permit's value, shown to anyone who lists the holders.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let permit = m.semaphore("pool", 3).description("worker 7").acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.options.description = Some(description.into());
        self
    }

    /// One attempt: a permit if one is free now, else
    /// [`AcquireErrorKind::Busy`](crate::AcquireErrorKind::Busy) naming the semaphore. Never
    /// queues.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// match m.semaphore("pool", 3).try_acquire().await {
    ///     Ok(permit) => { /* do the work */ }
    ///     Err(e) if e.kind() == nlock::AcquireErrorKind::Busy => println!("all 3 in use"),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `Busy` when every permit is held;
    /// `InvalidKey` (the name) and `InvalidConfig` (a permit count out of bounds, or
    /// [`ConfigError::PermitsMismatch`] when a permit is held with another count) before
    /// anything is written; what [`LockRequest::try_acquire`](crate::LockRequest::try_acquire)
    /// returns otherwise.
    pub async fn try_acquire(self) -> Result<LockHandle, AcquireError> {
        let held = self.check().await?;
        self.try_each(&held).await
    }

    /// Waits for a permit until granted or the timeout passes. Waiting requests are served
    /// in the order they began to wait, across processes (the line of each permit's key), and
    /// a released permit wakes one of them. Dropping the future withdraws the request.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let permit = m.semaphore("pool", 3).acquire().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `InvalidKey` and `InvalidConfig` as for
    /// [`try_acquire`](SemaphoreRequest::try_acquire); `AcquireTimedOut` after the timeout;
    /// what [`LockRequest::acquire`](crate::LockRequest::acquire) returns otherwise.
    pub async fn acquire(self) -> Result<LockHandle, AcquireError> {
        let held = self.check().await?;
        match self.try_each(&held).await {
            Err(e) if e.kind() == crate::AcquireErrorKind::Busy => {}
            done => return done,
        }
        let waits: Vec<BoxFuture<'_, Result<LockHandle, AcquireError>>> = (0..self.permits)
            .map(|i| {
                let msg = Acquire {
                    key: permit_key(&self.name, i),
                    options: self.options.clone(),
                };
                let (actor, timeout) = (self.manager.actor(), self.timeout);
                let wait: BoxFuture<'_, _> = Box::pin(async move {
                    granted(actor.send(msg).await, timeout)
                        .await
                        .map_err(AcquireError::from)
                });
                wait
            })
            .collect();
        // The first grant wins; the other requests are dropped, which withdraws them.
        let (permit, _others) = select_ok(waits).await?;
        Ok(permit)
    }

    /// Each permit in turn, from a random one, those `held` (as the check's snapshot saw
    /// them) last, until one is free now. Only the compare-and-set decides: the snapshot only
    /// saves the writes that would meet a permit seen held.
    async fn try_each(&self, held: &[bool]) -> Result<LockHandle, AcquireError> {
        let start = rand::rng().random_range(0..self.permits);
        let mut order: Vec<u32> = (0..self.permits)
            .map(|n| (start + n) % self.permits)
            .collect();
        order.sort_by_key(|&i| held.get(i as usize).copied().unwrap_or(false));
        for index in order {
            let msg = TryAcquire {
                key: permit_key(&self.name, index),
                options: self.options.clone(),
            };
            match granted(self.manager.actor().send(msg).await, None).await {
                Err(e) if e.kind() == crate::ErrorKind::Busy => {}
                done => return done.map_err(Into::into),
            }
        }
        Err(LockError::Busy {
            key: self.name.clone(),
            holder: None,
        }
        .into())
    }

    /// The name and the count, then the permits held now: none with another count. Returns
    /// which of the permits the snapshot saw held.
    async fn check(&self) -> Result<Vec<bool>, LockError> {
        validate_key(&self.name)?;
        if self.permits == 0 || self.permits > MAX_PERMITS {
            return Err(ConfigError::Permits(self.permits).into());
        }
        let held = self
            .manager
            .store
            .snapshot(&format!("{PERMIT_PREFIX}{}.>", self.name))
            .await?;
        let mut seen_held = vec![false; self.permits as usize];
        for change in held.iter().filter(|c| c.op == ChangeOp::Put) {
            let Some((name, index)) = parse_permit_key(&change.key) else {
                continue;
            };
            if name == self.name {
                if let Some(slot) = seen_held.get_mut(index as usize) {
                    *slot = true;
                }
            }
            let found = Holder::decode(&change.value)
                .filter(|h| !h.foreign)
                .and_then(|h| h.permits);
            // A permit beyond our count is one of a larger count, whatever its value says.
            let found = match found {
                Some(n) => n,
                None if index >= self.permits => index.saturating_add(1),
                None => continue,
            };
            if name == self.name && (found != self.permits || index >= self.permits) {
                return Err(ConfigError::PermitsMismatch {
                    name: self.name.clone(),
                    permits: self.permits,
                    found,
                }
                .into());
            }
        }
        Ok(seen_held)
    }
}
