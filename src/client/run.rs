//! Go nlock's `Do`: [`LockManager::run_if_free`] runs work only if its lock is free, holding
//! the lock while it runs, and says in a [`DoOutcome`] what happened.

use futures::FutureExt;

use super::LockManager;
use crate::error::{LockError, LossReason};
use crate::holder::Holder;
use crate::lease::{Lease, LeaseEnd};
use crate::lock::requests::LockOptions;

/// What [`LockManager::run_if_free`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum DoOutcome<T> {
    /// The lock was free: the work ran while it was held and the lock was released after it.
    Executed {
        /// What the work returned.
        value: T,
        /// How the release went (an unknown outcome here means the delete was not confirmed
        /// before the lease deadline; the key then expires with its TTL).
        released: Result<(), LockError>,
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

/// What [`LockManager::run_if_free_with`] does with work whose lock is lost while it runs.
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
    /// returned as [`ErrorKind::TaskPanicked`](crate::ErrorKind)). The work gets the
    /// tenure's [`Lease`] (token included, to fence its writes). If the lock is lost while
    /// the work runs, the work is cancelled and the outcome says why
    /// ([`run_if_free_with`](LockManager::run_if_free_with) can let it finish instead).
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
    pub async fn run_if_free<W, F, T>(&self, key: &str, work: W) -> Result<DoOutcome<T>, LockError>
    where
        W: FnOnce(Lease) -> F,
        F: std::future::Future<Output = T>,
    {
        self.run_if_free_with(key, LockOptions::default(), OnLoss::Cancel, work)
            .await
    }

    /// [`run_if_free`](LockManager::run_if_free) with lock options and a choice of what
    /// happens to the work when the lock is lost while it runs.
    pub async fn run_if_free_with<W, F, T>(
        &self,
        key: &str,
        options: LockOptions,
        on_loss: OnLoss,
        work: W,
    ) -> Result<DoOutcome<T>, LockError>
    where
        W: FnOnce(Lease) -> F,
        F: std::future::Future<Output = T>,
    {
        let lock = match self.try_acquire_with(key, options).await {
            Ok(lock) => lock,
            Err(LockError::Busy { holder, .. }) => return Ok(DoOutcome::Skipped { holder }),
            Err(e) => return Err(e),
        };
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
                    key: key.to_owned(),
                })
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
}
