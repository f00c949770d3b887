//! `LockActor`: one per held key. It owns the revision, the refresh timer and the local lease
//! deadline of one tenure, and ends the tenure's [`Lease`](crate::Lease) when the lock is
//! released or lost, which tells every subscriber of a loss.
//!
//! Shutdown: the actor stops after a release completes or the lock is lost. It is never
//! restarted: a restarted actor could not know whether it still holds the lock, so the
//! manager starts a fresh tenure instead. When the manager shuts down it first tells the
//! holder (`LockLost { reason: Shutdown }`) and then deletes the key. If the actix system
//! stops while a lock is held, nothing is deleted (the key expires after its TTL) and the lock
//! is reported lost with [`LossReason::Shutdown`](crate::LossReason::Shutdown).

/// The refresh timer, the refreshes it starts and what their outcomes do; `LetExpire`.
mod keep_alive;

pub(crate) use keep_alive::LetExpire;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use crate::deadline::deadline_after;
use crate::error::{LockError, LossReason};
use crate::lock::lease::LeaseState;
use crate::lock::loss::LockLost;
use crate::lock::loss::Subscribers;
use crate::lock::state::{
    ended_error, GetState, LockState, LockStatus, Refresh, Release, Subscribe,
};
use crate::lock::tenure::{self, Confirmed, Released, Tenure};
use crate::settings::Config;
use crate::store::Store;

/// Told to the manager when a lock actor ends, however it ends.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct LockEnded {
    pub key: String,
    pub token: u64,
    /// The delete marker's revision after a clean release: the next acquire by this process
    /// can take the key with one compare-and-set on it.
    pub marker: Option<u64>,
}

/// The manager is shutting down: tell the holder the lock is lost (`Shutdown`) and then
/// release it. Answers when the release is done.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LockError>")]
pub(crate) struct ReleaseForShutdown;

/// A write by someone else landed on this lock's key at `revision` (seen on the bucket's
/// change stream). One after this tenure's revision means the key may no longer be ours, so
/// the holder checks at once instead of at its next refresh.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ForeignWrite {
    pub revision: u64,
}

/// What every lock actor of one manager shares: made once per manager, so that a held lock
/// does not carry its own copy of the store, the manager's addresses and the settings.
pub(crate) struct LockCommon {
    pub store: Arc<Store>,
    /// The manager's owner id, for the locks' log spans.
    pub owner: String,
    /// The manager's settings: keep-alive, refresh interval and lease margin (per TTL),
    /// request timeout.
    pub config: Config,
    pub manager: Recipient<LockEnded>,
    /// The manager's list: told of every lock's loss along with the lock's own subscribers.
    pub manager_subscribers: Arc<Subscribers>,
}

/// Everything a lock actor is started with.
pub(crate) struct LockSetup {
    pub common: Arc<LockCommon>,
    pub tenure: Tenure,
    pub token: u64,
    pub confirmed: Confirmed,
    /// The key's last revision before this tenure, when known (see `Grant::previous`).
    pub previous: Option<u64>,
}

type Reply = oneshot::Sender<Result<(), LockError>>;

/// What a waiting caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Release,
    Refresh,
}

/// The actor that holds one lock. Start it only through the manager; its address comes with the
/// handle, for the messages of [`nlock::actor`](crate::actor).
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let addr: actix::Addr<nlock::actor::LockActor> = lock.actor().clone();
/// let state = addr.send(nlock::actor::GetState).await?;
/// # Ok(()) }
/// ```
///
/// Small on purpose: the actor lives by value in its task for as long as the lock is held, so
/// what is the same for every lock of a manager is shared (`LockCommon`), and the tenure
/// (key, value, holder) lives once, in the state shared with the lock's `Lease`s.
pub struct LockActor {
    common: Arc<LockCommon>,
    /// Shared with every `Lease` of this tenure: the tenure itself and its token, the
    /// deadline (readable without a message, so `is_held()` turns false even if this actor's
    /// thread is too busy to run its timer), how the tenure ended, and the lock's subscribers.
    lease: Arc<LeaseState>,
    /// The revision every compare-and-set must expect.
    revision: u64,
    acquired_at: SystemTime,
    last_refresh: Option<SystemTime>,
    /// Send time of the last acknowledged write + TTL - margin, on the monotonic clock. Past
    /// it the server may have expired the key, so the lock counts as lost.
    deadline: Instant,
    status: LockStatus,
    /// A refresh is in flight; a release waits for it, since it changes the revision.
    refreshing: bool,
    /// Told to let the lease run out ([`LetExpire`]): no refresh and no delete any more.
    expiring: bool,
    /// A foreign write was seen while a refresh was in flight: check again after it, since
    /// that refresh may have been sent before the write landed.
    recheck: bool,
    /// Callers waiting for a release or a refresh to end; empty (no buffer) most of the time.
    replies: Vec<(Asked, Reply)>,
    /// Whether the one timer of this lock is armed: due at (or before) the earlier of the
    /// next refresh and the lease deadline (one timer rather than two: a held lock's memory
    /// is mostly fixed costs).
    timer_armed: bool,
    /// When keep-alive refreshes next; `None` with keep-alive off.
    next_refresh: Option<Instant>,
    span: tracing::Span,
}

impl LockActor {
    pub(crate) fn new(setup: LockSetup) -> (Self, Arc<LeaseState>) {
        let span = tracing::info_span!(
            "lock",
            key = %setup.tenure.key,
            token = setup.token,
            owner = %setup.common.owner,
            ttl_s = setup.tenure.ttl.as_secs(),
        );
        let margin = setup.common.config.lease_margin(setup.tenure.ttl);
        let deadline =
            crate::deadline::lease_deadline(setup.confirmed.sent_at, setup.tenure.ttl, margin);
        let lease = LeaseState::new(setup.tenure, setup.token, deadline, setup.previous);
        let actor = LockActor {
            common: setup.common,
            revision: setup.confirmed.revision,
            acquired_at: SystemTime::now(),
            last_refresh: None,
            deadline,
            lease: lease.clone(),
            status: LockStatus::Held,
            refreshing: false,
            expiring: false,
            recheck: false,
            replies: Vec::new(),
            timer_armed: false,
            next_refresh: None,
            span,
        };
        (actor, lease)
    }

    fn tenure(&self) -> &Tenure {
        self.lease.tenure()
    }

    fn key(&self) -> &str {
        &self.lease.tenure().key
    }

    fn token(&self) -> u64 {
        self.lease.token()
    }

    fn ttl(&self) -> Duration {
        self.lease.tenure().ttl
    }

    fn margin(&self) -> Duration {
        self.common.config.lease_margin(self.ttl())
    }

    fn refresh_interval(&self) -> Duration {
        self.common.config.refresh_interval(self.ttl())
    }

    /// The store and the lease, for a request that outlives this call.
    fn for_request(&self) -> (Arc<LockCommon>, Arc<LeaseState>) {
        (self.common.clone(), self.lease.clone())
    }

    /// Whether a caller waits for a refresh to end.
    fn refresh_asked(&self) -> bool {
        self.replies.iter().any(|(a, _)| *a == Asked::Refresh)
    }

    /// Takes the callers waiting for `asked`, in the order they asked; the others stay.
    fn take_replies(&mut self, asked: Asked) -> Vec<Reply> {
        let (taken, kept) = std::mem::take(&mut self.replies)
            .into_iter()
            .partition::<Vec<_>, _>(|(a, _)| *a == asked);
        self.replies = kept;
        taken.into_iter().map(|(_, r)| r).collect()
    }

    fn start_release(&mut self, ctx: &mut Context<Self>) {
        let (common, lease) = self.for_request();
        let (rev, deadline) = (self.revision, self.deadline);
        let timeout = common.config.request_timeout;
        let work = async move {
            tenure::release(&common.store, lease.tenure(), rev, deadline, timeout).await
        }
        .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|outcome, act, ctx| {
            let _e = act.span.clone().entered();
            match outcome {
                Released::Freed(marker) => {
                    tracing::debug!(?marker, "released");
                    act.finish(LockStatus::Released, marker, Ok(()), ctx);
                }
                Released::WasLost(reason) => act.declare_lost(reason, ctx),
                Released::Unknown(e) => {
                    // Never a release: nothing confirmed the delete. The lease ends lost
                    // (everyone watching it is told), the caller learns that the outcome is
                    // unknown, and the key is free now or when the server expires it.
                    let err = e.into_lock_error(act.key());
                    act.end_unconfirmed(err, ctx);
                }
            }
        }));
    }

    /// Starts a release (after the refresh in flight, if any) and answers `reply` when done.
    fn release(&mut self, reply: Reply, ctx: &mut Context<Self>) {
        self.expire_if_due(ctx);
        match &self.status {
            LockStatus::Held => {
                self.status = LockStatus::Releasing;
                // Not held from here on, for the code the lock protects: the delete may land
                // and the key be granted elsewhere before its answer comes back.
                self.lease.begin_release();
                self.replies.push((Asked::Release, reply));
                if !self.refreshing {
                    self.start_release(ctx);
                }
            }
            LockStatus::Releasing => self.replies.push((Asked::Release, reply)),
            LockStatus::Lost { reason } => {
                let _ = reply.send(Err(ended_error(self.key(), Some(reason))));
            }
            LockStatus::Released => {
                let _ = reply.send(Err(ended_error(self.key(), None)));
            }
        }
    }

    /// Ends the actor: ends the lease, answers waiting callers, tells the manager, stops.
    fn finish(
        &mut self,
        status: LockStatus,
        marker: Option<u64>,
        release_result: Result<(), LockError>,
        ctx: &mut Context<Self>,
    ) {
        let lost = match &status {
            LockStatus::Lost { reason } => Some(reason.clone()),
            _ => None,
        };
        if lost.is_none() {
            self.lease.end_released();
        }
        self.status = status;
        // The first release caller gets the release's own result; later ones, and waiting
        // refreshes, learn that it was lost (and why), or that it is not held.
        let key = self.key().to_owned();
        let mut release_result = Some(release_result);
        for r in self.take_replies(Asked::Release) {
            let result = release_result
                .take()
                .unwrap_or_else(|| Err(ended_error(&key, lost.as_ref())));
            let _ = r.send(result);
        }
        for (_, r) in std::mem::take(&mut self.replies) {
            let _ = r.send(Err(ended_error(&key, lost.as_ref())));
        }
        self.common.manager.do_send(LockEnded {
            key,
            token: self.token(),
            marker,
        });
        ctx.stop();
    }

    /// Tells the lease, the lock's subscribers and the manager's, once per tenure.
    fn announce_loss(&mut self, reason: LossReason) {
        let lost = LockLost {
            key: self.key().to_owned(),
            token: self.token(),
            reason,
        };
        if self.lease.end_lost(&lost) {
            self.common.store.meter().lost(&lost.reason);
            let _e = self.span.clone().entered();
            tracing::warn!(reason = %lost.reason, "lock lost");
            self.common.manager_subscribers.tell(&lost);
        }
    }

    fn declare_lost(&mut self, reason: LossReason, ctx: &mut Context<Self>) {
        if matches!(self.status, LockStatus::Lost { .. } | LockStatus::Released) {
            return;
        }
        self.announce_loss(reason.clone());
        // A write whose answer never came may have landed after all: if the key still holds
        // this tenure's value, delete it rather than leave it to expire. Not for a lease let
        // run out on purpose: its key is left to the server's expiry.
        if !self.expiring {
            let (common, lease) = self.for_request();
            actix::spawn(
                async move { tenure::release_if_ours(&common.store, lease.tenure()).await },
            );
        }
        let err = ended_error(self.key(), Some(&reason));
        self.finish(LockStatus::Lost { reason }, None, Err(err), ctx);
    }

    /// Ends a tenure whose release was never confirmed: lost with
    /// [`LossReason::ReleaseUnconfirmed`], and `release_error` (the unknown outcome) for the
    /// caller who asked to release.
    fn end_unconfirmed(&mut self, release_error: LockError, ctx: &mut Context<Self>) {
        self.announce_loss(LossReason::ReleaseUnconfirmed);
        // The end told first wins (a shutdown announces its loss before it releases).
        let reason = match self.lease.ended() {
            Some(crate::lock::lease::LeaseEnd::Lost { reason }) => reason,
            _ => LossReason::ReleaseUnconfirmed,
        };
        // The delete may still land; if the key shows this tenure's value when the server
        // answers again, clear it rather than leave it to expire.
        let (common, lease) = self.for_request();
        actix::spawn(async move { tenure::release_if_ours(&common.store, lease.tenure()).await });
        self.finish(LockStatus::Lost { reason }, None, Err(release_error), ctx);
    }

    fn reply_future(
        rx: oneshot::Receiver<Result<(), LockError>>,
        key: String,
    ) -> ResponseFuture<Result<(), LockError>> {
        Box::pin(async move { rx.await.unwrap_or(Err(LockError::NotHeld { key })) })
    }
}

impl Actor for LockActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.common.store.meter().tenure_began();
        let _e = self.span.clone().entered();
        tracing::debug!(revision = self.revision, "acquired");
        if self.common.config.keep_alive {
            // TTL/factor: with the default factor 3, two refreshes can fail before the lease
            // deadline is near.
            self.next_refresh = Some(deadline_after(self.refresh_interval()));
        }
        self.arm(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.common.store.meter().tenure_ended();
        if matches!(self.status, LockStatus::Held | LockStatus::Releasing) {
            // The actor system is going away under a held lock: no delete can be sent any
            // more; the key expires after its TTL. Tell whoever still listens.
            self.announce_loss(LossReason::Shutdown);
            self.status = LockStatus::Lost {
                reason: LossReason::Shutdown,
            };
        }
    }
}

impl Handler<Release> for LockActor {
    type Result = ResponseFuture<Result<(), LockError>>;

    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.release(tx, ctx);
        Self::reply_future(rx, self.key().to_owned())
    }
}

impl Handler<ReleaseForShutdown> for LockActor {
    type Result = ResponseFuture<Result<(), LockError>>;

    fn handle(&mut self, _: ReleaseForShutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.expire_if_due(ctx);
        // A release the holder already asked for ends as a release; any other held lock is
        // taken away by the shutdown.
        if self.status == LockStatus::Held {
            // Told before the delete is sent: work racing `lost()` stops before anyone else
            // can be granted the key.
            self.announce_loss(LossReason::Shutdown);
            if self.expiring {
                // Its holder asked not to hand the key over early: it expires on the server.
                let _e = self.span.clone().entered();
                tracing::warn!("manager shutdown: leaving the key to expire, not deleting it");
                let key = self.key().to_owned();
                let err = ended_error(&key, Some(&LossReason::Shutdown));
                let reason = LossReason::Shutdown;
                self.finish(LockStatus::Lost { reason }, None, Err(err), ctx);
                return Box::pin(
                    async move { Err(ended_error(&key, Some(&LossReason::Shutdown))) },
                );
            }
        }
        let (tx, rx) = oneshot::channel();
        self.release(tx, ctx);
        Self::reply_future(rx, self.key().to_owned())
    }
}

impl Handler<Refresh> for LockActor {
    type Result = ResponseFuture<Result<(), LockError>>;

    fn handle(&mut self, _: Refresh, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.expire_if_due(ctx);
        match &self.status {
            LockStatus::Held => {
                self.replies.push((Asked::Refresh, tx));
                self.start_refresh(ctx);
            }
            LockStatus::Lost { reason } => {
                let _ = tx.send(Err(ended_error(self.key(), Some(reason))));
            }
            LockStatus::Releasing | LockStatus::Released => {
                let _ = tx.send(Err(ended_error(self.key(), None)));
            }
        }
        Self::reply_future(rx, self.key().to_owned())
    }
}

impl Handler<ForeignWrite> for LockActor {
    type Result = ();

    fn handle(&mut self, msg: ForeignWrite, ctx: &mut Context<Self>) {
        if self.status != LockStatus::Held || msg.revision <= self.revision {
            return;
        }
        let _e = self.span.clone().entered();
        tracing::debug!(
            revision = msg.revision,
            "foreign write on the key; checking now"
        );
        // The check is a refresh: only a compare-and-set can tell whether the key is still
        // ours (the write may be one of ours whose answer is still on its way, and a read
        // may come from a follower that has not seen it).
        if self.refreshing {
            self.recheck = true;
        } else {
            self.start_refresh(ctx);
        }
    }
}

impl Handler<GetState> for LockActor {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, _: GetState, ctx: &mut Context<Self>) -> Self::Result {
        // Never report a lease past its deadline as held.
        self.expire_if_due(ctx);
        MessageResult(LockState {
            key: self.key().to_owned(),
            token: self.token(),
            revision: self.revision,
            ttl: self.ttl(),
            acquired_at: self.acquired_at,
            last_refresh: self.last_refresh,
            time_left: self.deadline.saturating_duration_since(Instant::now()),
            status: self.status.clone(),
            holder: self.tenure().holder(),
        })
    }
}

impl Handler<Subscribe> for LockActor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, Subscribe(who): Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.lease.subscribe(who))
    }
}
