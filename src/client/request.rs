//! [`LockRequest`]: one request for one lock, built step by step, then acquired, tried or run.

use std::time::Duration;

use super::run::{DoOutcome, OnLoss};
use super::LockManager;
use crate::error::{AcquireError, LockError};
use crate::handle::LockHandle;
use crate::lock::granted::Pending;
use crate::lock::lease::Lease;
use crate::lock::requests::{Acquire, LockOptions, TryAcquire};
use crate::pending::PendingLock;
use crate::telemetry::Verb;

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
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let lock = m.lock("jobs.nightly").timeout(Duration::from_secs(30)).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// [`timeout`](LockRequest::timeout), or none with `None`.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let wait: Option<Duration> = None; // wait until granted
    /// let lock = m.lock("jobs.nightly").timeout_opt(wait).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout_opt(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// A TTL for this lock instead of the bucket's: whole seconds, no longer than the
    /// bucket's and longer than the request timeout; it needs nats-server 2.11+
    /// ([`AcquireErrorKind::Unsupported`](crate::AcquireErrorKind::Unsupported) before).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let lock = m.lock("jobs.nightly").ttl(Duration::from_secs(5)).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = Some(ttl);
        self
    }

    /// Stored in the lock value, shown to anyone who finds the lock busy.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let lock = m.lock("jobs.nightly").description("nightly report, host a1").try_acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.options.description = Some(description.into());
        self
    }

    /// A lock-delay after an unclean end of the previous tenure; see
    /// [`LockOptions::lock_delay`](crate::LockOptions::lock_delay).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let lock = m.lock("jobs.nightly").lock_delay(Duration::from_secs(15)).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn lock_delay(mut self, delay: Duration) -> Self {
        self.options.lock_delay = Some(delay);
        self
    }

    /// Every per-lock option at once, replacing the ones set before.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let options = nlock::LockOptions::default().ttl(Duration::from_secs(5));
    /// let lock = m.lock("jobs.nightly").options(options).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn options(mut self, options: LockOptions) -> Self {
        self.options = options;
        self
    }

    /// What [`run`](LockRequest::run) and [`run_if_free`](LockRequest::run_if_free) do with
    /// work whose lock is lost while it runs (default: [`OnLoss::Cancel`]).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let outcome = m
    ///     .lock("ledger.compact")
    ///     .on_loss(nlock::OnLoss::Finish)
    ///     .run_if_free(|lease| async move { lease.token() })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_loss(mut self, on_loss: OnLoss) -> Self {
        self.on_loss = on_loss;
        self
    }

    /// Waits for the lock until granted, or until the timeout passes
    /// ([`AcquireErrorKind::AcquireTimedOut`](crate::AcquireErrorKind::AcquireTimedOut)).
    /// Dropping the future withdraws the request and leaves no lock behind.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let lock = m.lock("orders.reindex").timeout(Duration::from_secs(5)).acquire().await?;
    /// lock.release().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `InvalidKey`, `InvalidConfig` (a TTL or
    /// description out of bounds) and `Unsupported` (a per-lock TTL on a server before 2.11)
    /// before anything is written; `AcquireTimedOut` after the timeout; `Unavailable`,
    /// `OutcomeUnknown`, `Rejected`, `PermissionDenied` and `ManagerGone` from NATS or the
    /// manager.
    pub async fn acquire(self) -> Result<LockHandle, AcquireError> {
        let started = std::time::Instant::now();
        let msg = Acquire {
            key: self.key,
            options: self.options,
        };
        let result = granted(self.manager.actor().send(msg).await, self.timeout).await;
        self.manager.meter().acquired(Verb::Wait, started, &result);
        result.map_err(Into::into)
    }

    /// One attempt: the lock if it is free now, else
    /// [`AcquireErrorKind::Busy`](crate::AcquireErrorKind::Busy) naming the holder (also
    /// during the bucket's restart grace, [`LockError::RestartGrace`]). Never queues behind
    /// other waiters.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// match m.lock("jobs.nightly").description("host a1").try_acquire().await {
    ///     Ok(lock) => { /* run the job */ }
    ///     Err(e) if e.kind() == nlock::AcquireErrorKind::Busy => println!("{e}"),
    ///     Err(e) => eprintln!("cannot tell: {e}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `Busy` when held (here or elsewhere) or
    /// during the restart grace; `InvalidKey`, `InvalidConfig` and `Unsupported` before
    /// anything is written; `Unavailable`, `OutcomeUnknown`, `Rejected`, `PermissionDenied`
    /// and `ManagerGone` from NATS or the manager.
    pub async fn try_acquire(self) -> Result<LockHandle, AcquireError> {
        let started = std::time::Instant::now();
        let msg = TryAcquire {
            key: self.key,
            options: self.options,
        };
        let result = granted(self.manager.actor().send(msg).await, None).await;
        self.manager.meter().acquired(Verb::Try, started, &result);
        result.map_err(Into::into)
    }

    /// Waits for the lock as [`acquire`](LockRequest::acquire) does, then runs `work` holding
    /// it and releases it afterwards; the outcome is never
    /// [`Skipped`](DoOutcome::Skipped). See [`run_if_free`](LockRequest::run_if_free) for
    /// what happens on a loss or a panic.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let outcome = m
    ///     .lock("ledger.compact")
    ///     .timeout(Duration::from_secs(60))
    ///     .run(|lease| async move { lease.token() })
    ///     .await?;
    /// if let nlock::DoOutcome::Lost { reason, .. } = outcome {
    ///     eprintln!("lost the lock while compacting: {reason}");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// What [`acquire`](LockRequest::acquire) returns, and
    /// [`AcquireErrorKind::TaskPanicked`](crate::AcquireErrorKind::TaskPanicked) when `work`
    /// panicked (the lock is released first). A failed release is not an error: it is in
    /// [`DoOutcome::Executed`]'s `released`.
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
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// match m.lock("cron.cleanup").run_if_free(|lease| async move { lease.token() }).await? {
    ///     nlock::DoOutcome::Executed { value, .. } => println!("ran with token {value}"),
    ///     nlock::DoOutcome::Skipped { .. } => println!("another replica runs it"),
    ///     other => eprintln!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// What [`try_acquire`](LockRequest::try_acquire) returns except `Busy` (that is
    /// [`DoOutcome::Skipped`]), and
    /// [`AcquireErrorKind::TaskPanicked`](crate::AcquireErrorKind::TaskPanicked) when `work`
    /// panicked (the lock is released first).
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

/// The lock a queued request was granted, waited for up to `timeout`, from the manager's
/// answer to the request.
pub(super) async fn granted(
    answer: Result<Result<Pending, LockError>, actix::MailboxError>,
    timeout: Option<Duration>,
) -> Result<LockHandle, LockError> {
    let pending = answer.map_err(LockError::from)??;
    PendingLock::new(pending, timeout).await
}
