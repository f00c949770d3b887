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

/// Everything a lock actor is started with.
pub(crate) struct LockSetup {
    pub store: Arc<Store>,
    pub tenure: Tenure,
    pub token: u64,
    pub confirmed: Confirmed,
    /// The key's last revision before this tenure, when known (see `Grant::previous`).
    pub previous: Option<u64>,
    pub keep_alive: bool,
    pub refresh_interval: Duration,
    pub margin: Duration,
    pub request_timeout: Duration,
    pub manager: Recipient<LockEnded>,
    /// The manager's list: told of this lock's loss along with the lock's own subscribers.
    pub manager_subscribers: Arc<Subscribers>,
}

type Reply = oneshot::Sender<Result<(), LockError>>;

/// The actor that holds one lock. Start it only through the manager; its address comes with the
/// handle, for the messages of [`nlock::actor`](crate::actor).
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let addr: actix::Addr<nlock::actor::LockActor> = lock.actor().clone();
/// let state = addr.send(nlock::actor::GetState).await?;
/// # Ok(()) }
/// ```
pub struct LockActor {
    store: Arc<Store>,
    tenure: Tenure,
    token: u64,
    /// The revision every compare-and-set must expect.
    revision: u64,
    acquired_at: SystemTime,
    last_refresh: Option<SystemTime>,
    /// Send time of the last acknowledged write + TTL - margin, on the monotonic clock. Past
    /// it the server may have expired the key, so the lock counts as lost.
    deadline: Instant,
    /// Shared with every `Lease` of this tenure: the deadline (readable without a message, so
    /// `is_held()` turns false even if this actor's thread is too busy to run its timer), how
    /// the tenure ended, and the lock's subscribers.
    lease: Arc<LeaseState>,
    manager_subscribers: Arc<Subscribers>,
    keep_alive: bool,
    refresh_interval: Duration,
    margin: Duration,
    request_timeout: Duration,
    status: LockStatus,
    /// A refresh is in flight; a release waits for it, since it changes the revision.
    refreshing: bool,
    /// Told to let the lease run out ([`LetExpire`]): no refresh and no delete any more.
    expiring: bool,
    /// A foreign write was seen while a refresh was in flight: check again after it, since
    /// that refresh may have been sent before the write landed.
    recheck: bool,
    release_replies: Vec<Reply>,
    refresh_replies: Vec<Reply>,
    /// The one timer of this lock, due at the earlier of the next refresh and the lease
    /// deadline (one timer rather than two: a held lock's memory is mostly fixed costs).
    timer: Option<SpawnHandle>,
    /// When keep-alive refreshes next; `None` with keep-alive off.
    next_refresh: Option<Instant>,
    manager: Recipient<LockEnded>,
    span: tracing::Span,
}

impl LockActor {
    pub(crate) fn new(setup: LockSetup) -> (Self, Arc<LeaseState>) {
        let span = tracing::info_span!(
            "lock",
            key = %setup.tenure.key,
            token = setup.token,
            owner = %setup.tenure.holder.owner,
            ttl_s = setup.tenure.ttl.as_secs(),
        );
        let deadline = crate::deadline::lease_deadline(
            setup.confirmed.sent_at,
            setup.tenure.ttl,
            setup.margin,
        );
        let lease = LeaseState::new(
            setup.tenure.key.clone(),
            setup.token,
            deadline,
            setup.previous,
        );
        let actor = LockActor {
            store: setup.store,
            token: setup.token,
            revision: setup.confirmed.revision,
            acquired_at: SystemTime::now(),
            last_refresh: None,
            deadline,
            lease: lease.clone(),
            manager_subscribers: setup.manager_subscribers,
            keep_alive: setup.keep_alive,
            refresh_interval: setup.refresh_interval,
            margin: setup.margin,
            request_timeout: setup.request_timeout,
            status: LockStatus::Held,
            refreshing: false,
            expiring: false,
            recheck: false,
            release_replies: Vec::new(),
            refresh_replies: Vec::new(),
            timer: None,
            next_refresh: None,
            manager: setup.manager,
            span,
            tenure: setup.tenure,
        };
        (actor, lease)
    }

    fn start_release(&mut self, ctx: &mut Context<Self>) {
        let (store, tenure) = (self.store.clone(), self.tenure.clone());
        let (rev, deadline, timeout) = (self.revision, self.deadline, self.request_timeout);
        let work = async move { tenure::release(&store, &tenure, rev, deadline, timeout).await }
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
                    let err = e.into_lock_error(&act.tenure.key);
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
                self.release_replies.push(reply);
                if !self.refreshing {
                    self.start_release(ctx);
                }
            }
            LockStatus::Releasing => self.release_replies.push(reply),
            LockStatus::Lost { reason } => {
                let _ = reply.send(Err(ended_error(&self.tenure.key, Some(reason))));
            }
            LockStatus::Released => {
                let _ = reply.send(Err(ended_error(&self.tenure.key, None)));
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
        let key = self.tenure.key.clone();
        let mut release_result = Some(release_result);
        for r in std::mem::take(&mut self.release_replies) {
            let result = release_result
                .take()
                .unwrap_or_else(|| Err(ended_error(&key, lost.as_ref())));
            let _ = r.send(result);
        }
        for r in std::mem::take(&mut self.refresh_replies) {
            let _ = r.send(Err(ended_error(&key, lost.as_ref())));
        }
        self.manager.do_send(LockEnded {
            key,
            token: self.token,
            marker,
        });
        ctx.stop();
    }

    /// Tells the lease, the lock's subscribers and the manager's, once per tenure.
    fn announce_loss(&mut self, reason: LossReason) {
        let lost = LockLost {
            key: self.tenure.key.clone(),
            token: self.token,
            reason,
        };
        if self.lease.end_lost(&lost) {
            self.store.meter().lost(&lost.reason);
            let _e = self.span.clone().entered();
            tracing::warn!(reason = %lost.reason, "lock lost");
            self.manager_subscribers.tell(&lost);
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
            let (store, tenure) = (self.store.clone(), self.tenure.clone());
            actix::spawn(async move { tenure::release_if_ours(&store, &tenure).await });
        }
        let err = ended_error(&self.tenure.key, Some(&reason));
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
        let (store, tenure) = (self.store.clone(), self.tenure.clone());
        actix::spawn(async move { tenure::release_if_ours(&store, &tenure).await });
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
        self.store.meter().tenure_began();
        let _e = self.span.clone().entered();
        tracing::debug!(revision = self.revision, "acquired");
        if self.keep_alive {
            // TTL/factor: with the default factor 3, two refreshes can fail before the lease
            // deadline is near.
            self.next_refresh = Some(deadline_after(self.refresh_interval));
        }
        self.arm(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.store.meter().tenure_ended();
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
        Self::reply_future(rx, self.tenure.key.clone())
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
                let key = self.tenure.key.clone();
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
        Self::reply_future(rx, self.tenure.key.clone())
    }
}

impl Handler<Refresh> for LockActor {
    type Result = ResponseFuture<Result<(), LockError>>;

    fn handle(&mut self, _: Refresh, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.expire_if_due(ctx);
        match &self.status {
            LockStatus::Held => {
                self.refresh_replies.push(tx);
                self.start_refresh(ctx);
            }
            LockStatus::Lost { reason } => {
                let _ = tx.send(Err(ended_error(&self.tenure.key, Some(reason))));
            }
            LockStatus::Releasing | LockStatus::Released => {
                let _ = tx.send(Err(ended_error(&self.tenure.key, None)));
            }
        }
        Self::reply_future(rx, self.tenure.key.clone())
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
            key: self.tenure.key.clone(),
            token: self.token,
            revision: self.revision,
            ttl: self.tenure.ttl,
            acquired_at: self.acquired_at,
            last_refresh: self.last_refresh,
            time_left: self.deadline.saturating_duration_since(Instant::now()),
            status: self.status.clone(),
            holder: self.tenure.holder.clone(),
        })
    }
}

impl Handler<Subscribe> for LockActor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, Subscribe(who): Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.lease.subscribers().subscribe(who))
    }
}
