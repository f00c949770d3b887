//! `Elector`, the handle callers keep of one candidate on one key, and the start of its
//! campaign, which runs as a task of its own on an actix arbiter.
//!
//! Shutdown: `Elector::shutdown` ends the campaign: a running role is stopped and waited for
//! while the term is kept refreshed, then the term released, and the campaign ends. A role
//! that has not stopped within `stop_timeout` is left running (an actor) or dropped (a
//! future cut short in its wind-down); either way the term is no longer refreshed (never
//! released) and expires at its lease deadline, a warning is logged, and the shutdown
//! returns. So it returns within `stop_timeout` plus one request timeout (the release).
//! Dropping the last `Elector` handle does the same without waiting. `LockManager::shutdown`
//! first stops every elector started on it the same way (through the hook registered here),
//! then its own locks (a term left to expire is not deleted), so it is bounded the same way.
//! The `Shutdown` message sent to the manager actor directly skips that first part: terms are
//! then told `Shutdown` (which ends them, and so stops their roles) while the deletes go out.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

use super::campaign::{Campaign, RoleFactory};
use super::history::KeyHistory;
use super::options::ElectorOptions;
use super::status::{ElectorStatus, Standing};
use super::term::Command;
use crate::client::{BeforeShutdown, LockManager};
use crate::error::LockError;

/// A candidate for leadership of one key, campaigning on its own; see
/// [`LockManager::elector`]. Clones share one candidate; dropping the last clone stops it
/// (without waiting: call [`shutdown`](Elector::shutdown) to wait).
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let elector = m
///     .elector("jobs.leader", nlock::ElectorOptions::new("node-a"))
///     .run(|term| async move { term.ending().await })?;
/// println!("{}: {:?}", elector.key(), elector.status());
/// elector.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Elector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    key: String,
    status: watch::Receiver<Standing>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop { done: None });
    }
}

impl Elector {
    /// The election key.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// Where this candidate stands now. `Leading` only while the term's lease is held, read
    /// locally at each call: from the moment it is lost or its deadline passes, `Ending`,
    /// even while the role is still stopping. `Stopped` once the campaign's task is gone.
    ///
    /// ```no_run
    /// # async fn f(elector: nlock::Elector) {
    /// match elector.status() {
    ///     nlock::ElectorStatus::Leading { token } => println!("leading with token {token}"),
    ///     other => println!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn status(&self) -> ElectorStatus {
        // The sender is gone with the campaign's task: after its last word (`Stopped`), or
        // without it (its arbiter stopped).
        if self.inner.status.has_changed().is_err() {
            return ElectorStatus::Stopped;
        }
        self.inner.status.borrow().effective()
    }

    /// Whether this candidate leads: it holds the key with a lease that has not ended nor
    /// passed its deadline (also during the lock-delay, before its role starts), and the
    /// term is not ending. False from the moment the lease is lost or runs out, and from the
    /// start of a resign, step-down or shutdown, while the role may still be stopping.
    ///
    /// ```no_run
    /// # async fn f(elector: nlock::Elector) {
    /// if elector.is_leader() {
    ///     println!("{} is led here", elector.key());
    /// }
    /// # }
    /// ```
    pub fn is_leader(&self) -> bool {
        matches!(self.status(), ElectorStatus::Leading { .. })
    }

    /// Waits until the status satisfies `pred`, and returns it.
    ///
    /// ```no_run
    /// # async fn f(elector: nlock::Elector) {
    /// let status = elector.wait_for(|s| matches!(s, nlock::ElectorStatus::Leading { .. })).await;
    /// # }
    /// ```
    pub async fn wait_for(&self, pred: impl Fn(&ElectorStatus) -> bool) -> ElectorStatus {
        let mut rx = self.inner.status.clone();
        let status = match rx.wait_for(|s| pred(&s.effective())).await {
            Ok(s) => s.effective(),
            // The campaign is gone: its last word was `Stopped`.
            Err(_) => ElectorStatus::Stopped,
        };
        status
    }

    /// Hands the lead over now and stands aside for `hold_off` (at least the backoff with
    /// jitter); returns when the role has stopped and the lock is released (the term is kept
    /// refreshed meanwhile; past `stop_timeout` it is left to expire instead). Candidates
    /// already waiting for the key take it at once, without a lock-delay (the release is
    /// clean). Not leading: stands aside all the same.
    ///
    /// ```no_run
    /// # async fn f(elector: nlock::Elector) {
    /// elector.resign(std::time::Duration::from_secs(30)).await; // let another node lead
    /// # }
    /// ```
    pub async fn resign(&self, hold_off: Duration) {
        let (done, rx) = oneshot::channel();
        let resign = Command::Resign {
            hold_off,
            done: Some(done),
        };
        // A campaign already gone has nothing to resign: the send fails, or `done` is
        // dropped with the queue.
        if self.inner.commands.send(resign).is_ok() {
            let _ = rx.await;
        }
    }

    /// Asks to step down (for a health check that fails), like a resign with the default
    /// backoff, without waiting for it.
    ///
    /// ```no_run
    /// # async fn f(elector: nlock::Elector) {
    /// # let healthy = false;
    /// if !healthy {
    ///     elector.step_down();
    /// }
    /// # }
    /// ```
    pub fn step_down(&self) {
        let _ = self.inner.commands.send(Command::Resign {
            hold_off: Duration::ZERO,
            done: None,
        });
    }

    /// Resigns for good: stops the role, releases the term, ends the campaign; returns when
    /// all that is done, or, for a role still running after
    /// [`stop_timeout`](ElectorOptions::stop_timeout), once the term is left to expire (see
    /// [`LockManager::elector`]): within `stop_timeout` plus one request timeout.
    ///
    /// ```no_run
    /// # async fn f(elector: nlock::Elector) {
    /// elector.shutdown().await; // the role has stopped and the term is released
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        stop(&self.inner.commands).await;
        self.wait_for(|s| *s == ElectorStatus::Stopped).await;
    }
}

/// Sends a campaign its stop and waits until it has ended.
fn stop(commands: &mpsc::UnboundedSender<Command>) -> BoxFuture<'static, ()> {
    let (done, rx) = oneshot::channel();
    let sent = commands.send(Command::Stop { done: Some(done) }).is_ok();
    Box::pin(async move {
        if sent {
            // Told when the campaign has ended, or dropped with its queue: ended either way.
            let _ = rx.await;
        }
    })
}

/// The manager's shutdown hook for one campaign: weak, so the manager keeps nothing alive;
/// gone once every sender of the queue is (the campaign holds one while it runs).
#[derive(Debug)]
struct ShutdownHook(mpsc::WeakUnboundedSender<Command>);

impl BeforeShutdown for ShutdownHook {
    fn wind_down(&self) -> BoxFuture<'static, ()> {
        match self.0.upgrade() {
            Some(commands) => stop(&commands),
            None => Box::pin(async {}),
        }
    }

    fn is_gone(&self) -> bool {
        self.0.upgrade().is_none_or(|commands| commands.is_closed())
    }
}

/// Starts the campaign of a candidate for `key`, whose roles `factory` makes (called on the
/// campaign's arbiter), and registers it with the manager's shutdown.
pub(crate) fn start<F>(
    manager: &LockManager,
    key: &str,
    options: ElectorOptions,
    factory: F,
) -> Result<Elector, LockError>
where
    F: FnOnce() -> RoleFactory + Send + 'static,
{
    crate::key::validate_key(key)?;
    let lock_options = options.lock_options()?;
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(Standing {
        status: ElectorStatus::Campaigning,
        lease: None,
    });
    let (manager_owned, key_owned, tx) = (manager.clone(), key.to_owned(), commands_tx.clone());
    crate::runtime::spawn(move || {
        let manager = manager_owned;
        // Opened and polled at once by a task of its own on this arbiter.
        let open = {
            let (manager, key) = (manager.clone(), key_owned.clone());
            async move { manager.events(&key).await.map_err(LockError::from) }
        };
        let history = KeyHistory::follow(open, manager.capabilities().expiry_events);
        let campaign = Campaign {
            manager,
            key: key_owned,
            options,
            lock_options,
            factory: factory(),
            commands,
            commands_tx: tx,
            status: status_tx,
            history,
        };
        campaign.run()
    })?;
    // The manager's shutdown stops this campaign (role first, then the term) before it
    // sends its own deletes.
    manager.add_dependent(Box::new(ShutdownHook(commands_tx.downgrade())));
    Ok(Elector {
        inner: Arc::new(Inner {
            key: key.to_owned(),
            status,
            commands: commands_tx,
        }),
    })
}
