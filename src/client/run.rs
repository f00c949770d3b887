//! Work run under a lock: Go nlock's `Do` ([`LockManager::run_if_free`]) and
//! [`LockRequest::run`](crate::LockRequest::run) hold the lock while the work runs and say in a
//! [`DoOutcome`] what happened.

use futures::FutureExt;

use super::LockManager;
use crate::error::{AcquireError, LockError, LossReason, ReleaseError};
use crate::handle::LockHandle;
use crate::holder::Holder;
use crate::lock::lease::{Lease, LeaseEnd};

/// What [`LockManager::run_if_free`] did.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// match m.run_if_free("cron.cleanup", |_lease| async { 42 }).await? {
///     nlock::DoOutcome::Executed { value, released } => {
///         println!("got {value}");
///         released?;
///     }
///     nlock::DoOutcome::Lost { value, reason } => eprintln!("lost ({reason}), got {value:?}"),
///     nlock::DoOutcome::Skipped { holder } => println!("busy: {holder:?}"),
///     _ => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DoOutcome<T> {
    /// The lock was free: the work ran while it was held and the lock was released after it.
    Executed {
        /// What the work returned.
        value: T,
        /// How the release went (an unknown outcome here means the delete was not confirmed
        /// before the lease deadline; the key then expires with its TTL).
        released: Result<(), ReleaseError>,
    },
    /// The lock was lost while the work ran.
    Lost {
        /// What the work returned: `None` when it was cancelled at the loss
        /// ([`OnLoss::Cancel`], the default).
        value: Option<T>,
        /// Why the lock was lost.
        reason: LossReason,
    },
    /// The lock was held by someone else; the work did not run.
    Skipped {
        /// The holder, when it could be read.
        holder: Option<Box<Holder>>,
    },
}

/// What [`LockRequest::run`](crate::LockRequest::run) and `run_if_free` do with work whose lock is lost while it runs.
///
/// ```
/// assert_eq!(nlock::OnLoss::default(), nlock::OnLoss::Cancel);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnLoss {
    /// Drop the work's future at the loss (the default): the lock protects the work, and
    /// work that runs on after a loss is what it exists to prevent.
    #[default]
    Cancel,
    /// Let the work finish; the outcome says the lock was lost. For work that must not stop
    /// half-way and fences its writes with the lease's token instead.
    Finish,
}

impl LockManager {
    /// Go nlock's `Do`: runs `work` only if `key` is free right now, holding the lock while it
    /// runs, and releases it afterwards, also when `work` fails or panics (a panic is
    /// [`AcquireErrorKind::TaskPanicked`](crate::AcquireErrorKind::TaskPanicked)). The work
    /// gets the tenure's [`Lease`] (token included, to fence its writes). If the lock is lost
    /// while the work runs, the work is cancelled and the outcome says why
    /// ([`LockRequest::on_loss`](crate::LockRequest::on_loss) can let it finish instead).
    /// Short for `self.lock(key).run_if_free(work)`.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// match m.run_if_free("cron.cleanup", |lease| async move { lease.token() }).await? {
    ///     nlock::DoOutcome::Executed { value, .. } => println!("ran with token {value}"),
    ///     nlock::DoOutcome::Lost { reason, .. } => eprintln!("lost the lock: {reason}"),
    ///     nlock::DoOutcome::Skipped { .. } => println!("another replica runs it"),
    ///     _ => {}
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`LockRequest::run_if_free`](crate::LockRequest::run_if_free): the
    /// [`AcquireErrorKind`](crate::AcquireErrorKind)s of `try_acquire` except `Busy` (that is
    /// [`DoOutcome::Skipped`]), and `TaskPanicked` when `work` panicked.
    pub async fn run_if_free<W, F, T>(
        &self,
        key: &str,
        work: W,
    ) -> Result<DoOutcome<T>, AcquireError>
    where
        W: FnOnce(Lease) -> F,
        F: std::future::Future<Output = T>,
    {
        self.lock(key).run_if_free(work).await
    }
}

/// Runs `work` holding `lock`, then releases it; cancels the work at a loss, or lets it
/// finish, as `on_loss` says.
pub(super) async fn run_holding<W, F, T>(
    lock: LockHandle,
    on_loss: OnLoss,
    work: W,
) -> Result<DoOutcome<T>, AcquireError>
where
    W: FnOnce(Lease) -> F,
    F: std::future::Future<Output = T>,
{
    let lease = lock.lease().clone();
    let work = std::panic::AssertUnwindSafe(work(lease.clone())).catch_unwind();
    let outcome = match on_loss {
        OnLoss::Cancel => {
            tokio::select! {
                biased;
                lost = lease.lost() => {
                    return Ok(DoOutcome::Lost { value: None, reason: lost.reason });
                }
                outcome = work => outcome,
            }
        }
        OnLoss::Finish => work.await,
    };
    let released = lock.release().await;
    let value = match outcome {
        Ok(value) => value,
        Err(_) => {
            return Err(LockError::TaskPanicked {
                key: lease.key().to_owned(),
            }
            .into())
        }
    };
    match (lease.end(), released) {
        // A release that went unanswered ends the lease lost too, but the work finished
        // under the lock: that is `Executed`, with the release's unknown outcome.
        (Some(LeaseEnd::Lost { reason }), _) if reason != LossReason::ReleaseUnconfirmed => {
            Ok(DoOutcome::Lost {
                value: Some(value),
                reason,
            })
        }
        (_, released) => Ok(DoOutcome::Executed { value, released }),
    }
}
