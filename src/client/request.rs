//! [`LockRequest`]: one request for one lock, built step by step, then acquired, tried or run.

use std::time::Duration;

use super::run::{DoOutcome, OnLoss};
use super::LockManager;
use crate::error::{AcquireError, LockError};
use crate::handle::LockHandle;
use crate::lock::lease::Lease;
use crate::lock::requests::{Acquire, LockOptions, TryAcquire};
use crate::pending::PendingLock;

/// A request for the lock on one key, made by [`LockManager::lock`]: set what differs from
/// the defaults, then `acquire()` (wait), `try_acquire()` (one attempt), `run(work)` (wait,
/// then run the work holding the lock) or `run_if_free(work)` (run it only if the lock is
/// free now). Nothing is sent before a verb, and every verb checks the key and the options
/// before anything is written: a bad one is [`AcquireErrorKind::InvalidKey`] or
/// [`InvalidConfig`](crate::AcquireErrorKind::InvalidConfig).
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use std::time::Duration;
/// let lock = m
///     .lock("segments.42")
///     .timeout(Duration::from_secs(1))
///     .ttl(Duration::from_secs(5))
///     .description("compacting segment 42")
///     .acquire()
///     .await?;
/// # Ok(()) }
/// ```
///
/// [`AcquireErrorKind::InvalidKey`]: crate::AcquireErrorKind::InvalidKey
/// [`InvalidConfig`]: crate::AcquireErrorKind::InvalidConfig
#[derive(Debug, Clone)]
#[must_use = "a lock request does nothing until acquire(), try_acquire(), run() or run_if_free()"]
pub struct LockRequest<'a> {
    manager: &'a LockManager,
    key: String,
    timeout: Option<Duration>,
    options: LockOptions,
    on_loss: OnLoss,
}

impl<'a> LockRequest<'a> {
    pub(crate) fn new(manager: &'a LockManager, key: &str) -> Self {
        LockRequest {
            manager,
            key: key.to_owned(),
            timeout: None,
            options: LockOptions::default(),
            on_loss: OnLoss::default(),
        }
    }

    /// How long [`acquire`](LockRequest::acquire) and [`run`](LockRequest::run) wait for the
    /// lock; without it they wait until granted or dropped. The other verbs do not wait.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// [`timeout`](LockRequest::timeout), or none with `None`.
    pub fn timeout_opt(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// A TTL for this lock instead of the bucket's: whole seconds, no longer than the
    /// bucket's and longer than the request timeout; it needs nats-server 2.11+
    /// ([`AcquireErrorKind::Unsupported`](crate::AcquireErrorKind::Unsupported) before).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = Some(ttl);
        self
    }

    /// Stored in the lock value, shown to anyone who finds the lock busy.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.options.description = Some(description.into());
        self
    }

    /// A lock-delay after an unclean end of the previous tenure; see
    /// [`LockOptions::lock_delay`](crate::LockOptions::lock_delay).
    pub fn lock_delay(mut self, delay: Duration) -> Self {
        self.options.lock_delay = Some(delay);
        self
    }

    /// Every per-lock option at once, replacing the ones set before.
    pub fn options(mut self, options: LockOptions) -> Self {
        self.options = options;
        self
    }

    /// What [`run`](LockRequest::run) and [`run_if_free`](LockRequest::run_if_free) do with
    /// work whose lock is lost while it runs (default: [`OnLoss::Cancel`]).
    pub fn on_loss(mut self, on_loss: OnLoss) -> Self {
        self.on_loss = on_loss;
        self
    }

    /// Waits for the lock until granted, or until the timeout passes
    /// ([`AcquireErrorKind::AcquireTimedOut`](crate::AcquireErrorKind::AcquireTimedOut)).
    /// Dropping the future withdraws the request and leaves no lock behind.
    pub async fn acquire(self) -> Result<LockHandle, AcquireError> {
        let msg = Acquire {
            key: self.key,
            options: self.options,
        };
        let pending = self
            .manager
            .actor()
            .send(msg)
            .await
            .map_err(LockError::from);
        PendingLock::new(pending??, self.timeout)
            .await
            .map_err(AcquireError::from)
    }

    /// One attempt: the lock if it is free now, else
    /// [`AcquireErrorKind::Busy`](crate::AcquireErrorKind::Busy) naming the holder (also
    /// during the bucket's restart grace, [`LockError::RestartGrace`]). Never queues behind
    /// other waiters.
    pub async fn try_acquire(self) -> Result<LockHandle, AcquireError> {
        let msg = TryAcquire {
            key: self.key,
            options: self.options,
        };
        let pending = self
            .manager
            .actor()
            .send(msg)
            .await
            .map_err(LockError::from);
        PendingLock::new(pending??, None)
            .await
            .map_err(AcquireError::from)
    }

    /// Waits for the lock as [`acquire`](LockRequest::acquire) does, then runs `work` holding
    /// it and releases it afterwards; the outcome is never
    /// [`Skipped`](DoOutcome::Skipped). See [`run_if_free`](LockRequest::run_if_free) for
    /// what happens on a loss or a panic.
    pub async fn run<W, F, T>(self, work: W) -> Result<DoOutcome<T>, AcquireError>
    where
        W: FnOnce(Lease) -> F,
        F: std::future::Future<Output = T>,
    {
        let on_loss = self.on_loss;
        let lock = self.acquire().await?;
        super::run::run_holding(lock, on_loss, work).await
    }

    /// Go nlock's `Do`: runs `work` only if the lock is free right now (else
    /// [`DoOutcome::Skipped`]), holding it while it runs, and releases it afterwards, also
    /// when `work` fails or panics (a panic is
    /// [`AcquireErrorKind::TaskPanicked`](crate::AcquireErrorKind::TaskPanicked)). The work
    /// gets the tenure's [`Lease`] (token included, to fence its writes). If the lock is lost
    /// while the work runs, the work is cancelled or allowed to finish
    /// ([`on_loss`](LockRequest::on_loss)), and the outcome says why.
    pub async fn run_if_free<W, F, T>(self, work: W) -> Result<DoOutcome<T>, AcquireError>
    where
        W: FnOnce(Lease) -> F,
        F: std::future::Future<Output = T>,
    {
        let on_loss = self.on_loss;
        let lock = match self.try_acquire().await {
            Ok(lock) => lock,
            Err(e) => match e.into_lock_error() {
                LockError::Busy { holder, .. } => return Ok(DoOutcome::Skipped { holder }),
                e => return Err(e.into()),
            },
        };
        super::run::run_holding(lock, on_loss, work).await
    }
}
