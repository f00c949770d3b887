//! `ElectorActor`, one per election key and candidate, and `Elector`, the handle callers
//! keep. The actor runs the campaign loop in its own context and forwards its messages to it.
//!
//! Shutdown: `Elector::shutdown` (or `StopElecting`) ends the campaign: a running role is
//! stopped and waited for while the term is kept refreshed, then the term released, and the
//! actor stops. A role that has not stopped within `stop_timeout` is left running: the term
//! is no longer refreshed (never released) and expires at its lease deadline, a warning is
//! logged, and the shutdown returns. So it returns within `stop_timeout` plus one request
//! timeout (the release). Dropping the last `Elector` handle does the same without waiting.
//! `LockManager::shutdown` first stops every elector started on it the same way, then its
//! own locks (a term left to expire is not deleted), so it is bounded the same way.
//! The `Shutdown` message sent to the manager actor directly skips that first part: terms are
//! then told `Shutdown` (which stops their roles) while the deletes go out.

use std::sync::Arc;
use std::time::Duration;

use actix::fut::{ActorFutureExt, WrapFuture};
use actix::prelude::*;
use tokio::sync::{mpsc, oneshot, watch};

use super::campaign::Campaign;
use super::history::KeyHistory;
use super::options::ElectorOptions;
use super::term::{Command, Term};
use crate::client::LockManager;
use crate::error::LockError;

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ElectorStatus {
    /// Waiting for the key (a queued acquire that wakes when the key is free).
    Campaigning,
    /// Holding the key with this token: in the lock-delay, or running the role.
    Leading {
        /// The term's fencing token.
        token: u64,
    },
    /// The term `token` is ending: lost, its lease deadline passed, or handed over (a
    /// resign, a step-down, a shutdown); its role is being stopped. Not leading any more,
    /// although the key may still be held (refreshed) until the role has stopped.
    Ending {
        /// The ending term's fencing token.
        token: u64,
    },
    /// Not campaigning for a while: after a resign, a lost term or a failed attempt.
    HoldingOff,
    /// The campaign ended (shut down, the manager gone, or a bad key).
    Stopped,
}

/// What the campaign publishes: its status, and while leading the term's lease, so that
/// `Leading` is reported only while that lease is held.
#[derive(Debug, Clone)]
pub(crate) struct Standing {
    pub(crate) status: ElectorStatus,
    pub(crate) lease: Option<crate::lease::Lease>,
}

impl Standing {
    /// The status as callers see it: a term whose lease is no longer held (lost, or its
    /// deadline passed before the campaign noticed) is `Ending`, not `Leading`.
    fn effective(&self) -> ElectorStatus {
        match (self.status, &self.lease) {
            (ElectorStatus::Leading { token }, Some(lease)) if !lease.is_held() => {
                ElectorStatus::Ending { token }
            }
            (status, _) => status,
        }
    }
}

/// Hands the lead over now (when leading: the role is stopped, then the lock released) and
/// does not campaign for `hold_off` (at least the backoff with jitter). Answered when done.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resign {
    /// How long not to campaign afterwards.
    pub hold_off: Duration,
}

/// Resigns for good and stops the elector. Answered when the role has stopped and the term
/// is released.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopElecting;

/// The actor of one candidate on one key. Started by [`LockManager::elector`]; see the
/// module's shutdown notes on [`Elector`].
pub struct ElectorActor {
    commands: mpsc::UnboundedSender<Command>,
    /// The campaign, until `started` moves it into this actor's context.
    campaign: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>,
}

impl Actor for ElectorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(campaign) = self.campaign.take() {
            // The actor lives as long as its campaign, and stops when it ends.
            ctx.spawn(campaign.into_actor(self).map(|_, _, ctx| ctx.stop()));
        }
    }
}

impl Handler<Resign> for ElectorActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Resign, _: &mut Context<Self>) -> Self::Result {
        let (done, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Resign {
            hold_off: msg.hold_off,
            done: Some(done),
        });
        Box::pin(async move {
            // A dropped sender means the campaign already ended: nothing left to resign.
            let _ = rx.await;
        })
    }
}

impl Handler<crate::client::BeforeShutdown> for ElectorActor {
    type Result = ResponseFuture<()>;

    fn handle(
        &mut self,
        _: crate::client::BeforeShutdown,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        <Self as Handler<StopElecting>>::handle(self, StopElecting, ctx)
    }
}

impl Handler<StopElecting> for ElectorActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopElecting, _: &mut Context<Self>) -> Self::Result {
        let (done, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Stop { done: Some(done) });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// A candidate for leadership of one key, campaigning on its own; see
/// [`LockManager::elector`]. Clones share one candidate; dropping the last clone stops it
/// (without waiting: call [`shutdown`](Elector::shutdown) to wait).
#[derive(Clone, Debug)]
pub struct Elector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    key: String,
    addr: Addr<ElectorActor>,
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
    /// even while the role is still stopping.
    pub fn status(&self) -> ElectorStatus {
        self.inner.status.borrow().effective()
    }

    /// Whether this candidate leads: it holds the key with a lease that has not ended nor
    /// passed its deadline (also during the lock-delay, before its role starts), and the
    /// term is not ending. False from the moment the lease is lost or runs out, and from the
    /// start of a resign, step-down or shutdown, while the role may still be stopping.
    pub fn is_leader(&self) -> bool {
        matches!(self.status(), ElectorStatus::Leading { .. })
    }

    /// Waits until the status satisfies `pred`, and returns it.
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
    pub async fn resign(&self, hold_off: Duration) {
        // An actor already gone has nothing to resign.
        let _ = self.inner.addr.send(Resign { hold_off }).await;
    }

    /// Asks to step down (for a health check that fails), like a resign with the default
    /// backoff, without waiting for it.
    pub fn step_down(&self) {
        self.inner.addr.do_send(Resign {
            hold_off: Duration::ZERO,
        });
    }

    /// Resigns for good: stops the role, releases the term, ends the campaign; returns when
    /// all that is done, or, for a role still running after
    /// [`stop_timeout`](ElectorOptions::stop_timeout), once the term is left to expire (see
    /// [`LockManager::elector`]): within `stop_timeout` plus one request timeout.
    pub async fn shutdown(&self) {
        let _ = self.inner.addr.send(StopElecting).await;
        self.wait_for(|s| *s == ElectorStatus::Stopped).await;
    }

    /// The elector actor's address.
    pub fn actor(&self) -> &Addr<ElectorActor> {
        &self.inner.addr
    }
}

impl LockManager {
    /// Starts a candidate for leadership of `key`. It campaigns at once, and whenever it
    /// leads runs an actor made by `role` with the [`Term`]: restarted from `role` when it
    /// stops or panics while the term lasts, never after; stopped (and waited for) before
    /// the term's lock is released. After a lost term it campaigns again after a backoff
    /// with jitter.
    ///
    /// The role runs on the elector's arbiter (the current one, or nlock's own under plain
    /// tokio); `role` itself runs there too and must not panic. At the end of a term (a
    /// resign, step-down, shutdown, or a loss) the role is stopped and waited for, at most
    /// [`stop_timeout`](ElectorOptions::stop_timeout), while keep-alive keeps refreshing the
    /// term; the lock is released only once the role has stopped. A role that takes longer
    /// is logged, and its term is no longer refreshed, never released: it expires at its
    /// lease deadline (the role's `term.is_held()` turns false then). Identity and metadata are written in the lock value for observers
    /// ([`LockManager::leader`]); together, as JSON, at most
    /// [`MAX_DESCRIPTION`](crate::MAX_DESCRIPTION) bytes
    /// ([`ErrorKind::InvalidConfig`](crate::ErrorKind) otherwise).
    ///
    /// ```no_run
    /// use actix::prelude::*;
    /// use std::time::Duration;
    ///
    /// struct Ticker(nlock::Term);
    /// impl Actor for Ticker {
    ///     type Context = Context<Self>;
    ///     fn started(&mut self, ctx: &mut Context<Self>) {
    ///         ctx.run_interval(Duration::from_secs(1), |this, _| {
    ///             if this.0.is_held() {
    ///                 println!("tick as leader, token {}", this.0.token());
    ///             }
    ///         });
    ///     }
    /// }
    ///
    /// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let options = nlock::ElectorOptions::new("node-a");
    /// let elector = manager.elector("jobs.leader", options, Ticker)?;
    /// // ... later:
    /// elector.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn elector<A, F>(
        &self,
        key: &str,
        options: ElectorOptions,
        role: F,
    ) -> Result<Elector, LockError>
    where
        A: Actor<Context = Context<A>>,
        F: FnMut(Term) -> A + Send + 'static,
    {
        crate::key::validate_key(key)?;
        let lock_options = options.lock_options()?;
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(Standing {
            status: ElectorStatus::Campaigning,
            lease: None,
        });
        let (manager, key_owned, tx) = (self.clone(), key.to_owned(), commands_tx.clone());
        let make = move |_: &mut Context<ElectorActor>| {
            // Opened and polled at once by a task of its own on the elector's arbiter.
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
                factory: role,
                commands,
                commands_tx: tx.clone(),
                status: status_tx,
                history,
                _role: std::marker::PhantomData::<fn() -> A>,
            };
            ElectorActor {
                commands: tx,
                campaign: Some(Box::pin(campaign.run())),
            }
        };
        let addr = crate::runtime::start(make)?;
        // The manager's shutdown stops this campaign (role first, then the term) before it
        // sends its own deletes.
        self.add_dependent(addr.clone().recipient());
        Ok(Elector {
            inner: Arc::new(Inner {
                key: key.to_owned(),
                addr,
                status,
                commands: commands_tx,
            }),
        })
    }
}
