//! `LockActor`: one per held key. It owns the revision, the refresh timer and the local lease
//! deadline of one tenure, and tells its subscribers when the lock is lost.
//!
//! Shutdown: the actor stops after a release completes or the lock is lost. It is never
//! restarted: a restarted actor could not know whether it still holds the lock, so the
//! manager starts a fresh tenure instead. If the actix system stops while a lock is held,
//! nothing is deleted (the key expires after its TTL) and the lock is reported lost with
//! [`LossReason::Shutdown`](crate::LossReason::Shutdown).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{LockError, LossReason};
use crate::holder::Holder;
use crate::lease::{self, Confirmed, Released, Tenure};
use crate::store::Store;

/// Sent to every subscriber, and to the manager, when a held lock is lost.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct LockLost {
    /// The key.
    pub key: String,
    /// The fencing token of the tenure that was lost.
    pub token: u64,
    /// Why it was lost.
    pub reason: LossReason,
}

/// Releases the lock: a delete that expects the current revision. Answers `NotHeld` when the
/// lock is already released, being released, or lost.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LockError>")]
pub struct Release;

/// Refreshes the lock now (for keep-alive off, or to extend the lease early).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LockError>")]
pub struct Refresh;

/// Asks for a [`LockState`].
#[derive(Debug, Message)]
#[rtype(result = "LockState")]
pub struct GetState;

/// Adds a subscriber that gets [`LockLost`] if the lock is lost.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<LockLost>);

/// Where a lock is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStatus {
    /// Held and (with keep-alive) refreshed.
    Held,
    /// A release is under way.
    Releasing,
    /// Released by its holder.
    Released,
    /// Lost; see the reason.
    Lost(LossReason),
}

/// A snapshot of one held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    /// The key.
    pub key: String,
    /// The fencing token: the revision that created this tenure.
    pub token: u64,
    /// The current revision (changes on every refresh).
    pub revision: u64,
    /// The lock's TTL.
    pub ttl: Duration,
    /// When it was acquired (this host's wall clock).
    pub acquired_at: SystemTime,
    /// When it was last refreshed, if ever.
    pub last_refresh: Option<SystemTime>,
    /// Time until the local lease deadline; zero once it has passed.
    pub time_left: Duration,
    /// Held, releasing, released or lost.
    pub status: LockStatus,
    /// The record stored in the key.
    pub holder: Holder,
}

/// Told to the manager when a lock actor ends, however it ends.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct LockEnded {
    pub key: String,
    pub token: u64,
    /// The delete marker's revision after a clean release: the next acquire by this process
    /// can take the key with one compare-and-set on it.
    pub marker: Option<u64>,
    pub lost: Option<LockLost>,
}

/// Everything a lock actor is started with.
pub(crate) struct LockSetup {
    pub store: Arc<Store>,
    pub tenure: Tenure,
    pub token: u64,
    pub confirmed: Confirmed,
    pub keep_alive: bool,
    pub refresh_interval: Duration,
    pub margin: Duration,
    pub request_timeout: Duration,
    pub manager: Recipient<LockEnded>,
}

type Reply = oneshot::Sender<Result<(), LockError>>;

/// The actor that holds one lock. Start it only through the manager.
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
    /// The deadline again, readable by the handle without a message: `is_held()` turns false
    /// at the deadline even if this actor's thread is too busy to run its timer.
    shared_deadline: Arc<SharedDeadline>,
    keep_alive: bool,
    refresh_interval: Duration,
    margin: Duration,
    request_timeout: Duration,
    status: LockStatus,
    /// A refresh is in flight; a release waits for it, since it changes the revision.
    refreshing: bool,
    release_replies: Vec<Reply>,
    refresh_replies: Vec<Reply>,
    /// The one timer of this lock, due at the earlier of the next refresh and the lease
    /// deadline (one timer rather than two: a held lock's memory is mostly fixed costs).
    timer: Option<SpawnHandle>,
    /// When keep-alive refreshes next; `None` with keep-alive off.
    next_refresh: Option<Instant>,
    subscribers: Vec<Recipient<LockLost>>,
    /// Feeds `LockHandle::lost()`; a watch channel so a late reader still sees the loss.
    lost_tx: watch::Sender<Option<LockLost>>,
    manager: Recipient<LockEnded>,
    span: tracing::Span,
}

impl LockActor {
    pub(crate) fn new(
        setup: LockSetup,
    ) -> (Self, watch::Receiver<Option<LockLost>>, Arc<SharedDeadline>) {
        let (lost_tx, lost_rx) = watch::channel(None);
        let span = tracing::info_span!(
            "lock",
            key = %setup.tenure.key,
            token = setup.token,
            owner = %setup.tenure.holder.owner,
            ttl_s = setup.tenure.ttl.as_secs(),
        );
        let deadline = setup.confirmed.sent_at + setup.tenure.ttl - setup.margin;
        let shared_deadline = Arc::new(SharedDeadline::new(deadline));
        let actor = LockActor {
            store: setup.store,
            token: setup.token,
            revision: setup.confirmed.revision,
            acquired_at: SystemTime::now(),
            last_refresh: None,
            deadline,
            shared_deadline: shared_deadline.clone(),
            keep_alive: setup.keep_alive,
            refresh_interval: setup.refresh_interval,
            margin: setup.margin,
            request_timeout: setup.request_timeout,
            status: LockStatus::Held,
            refreshing: false,
            release_replies: Vec::new(),
            refresh_replies: Vec::new(),
            timer: None,
            next_refresh: None,
            subscribers: Vec::new(),
            lost_tx,
            manager: setup.manager,
            span,
            tenure: setup.tenure,
        };
        (actor, lost_rx, shared_deadline)
    }

    /// (Re)arms the timer for the earlier of the next refresh and the lease deadline.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let wake = self
            .next_refresh
            .map_or(self.deadline, |r| r.min(self.deadline));
        let wait = wake.saturating_duration_since(Instant::now());
        self.timer = Some(ctx.run_later(wait, |act, ctx| act.on_timer(ctx)));
    }

    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        let now = Instant::now();
        if now >= self.deadline {
            // Fires even if NATS never answers: the holder is told before the server could
            // hand the key to anyone else.
            return self.declare_lost(LossReason::Expired, ctx);
        }
        if self.next_refresh.is_some_and(|r| now >= r) {
            self.next_refresh = Some(now + self.refresh_interval);
            self.start_refresh(ctx);
        }
        self.arm(ctx);
    }

    fn start_refresh(&mut self, ctx: &mut Context<Self>) {
        // Only a held lock refreshes; a release in flight owns the revision until it ends.
        if self.refreshing || self.status != LockStatus::Held {
            return;
        }
        self.refreshing = true;
        let (store, tenure) = (self.store.clone(), self.tenure.clone());
        let (rev, deadline, timeout) = (self.revision, self.deadline, self.request_timeout);
        let work = async move { lease::refresh(&store, &tenure, rev, deadline, timeout).await }
            .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.refreshing = false;
            act.on_refreshed(result, ctx)
        }));
    }

    fn on_refreshed(&mut self, result: Result<Confirmed, LossReason>, ctx: &mut Context<Self>) {
        let _e = self.span.clone().entered();
        match result {
            Ok(c) if matches!(self.status, LockStatus::Held | LockStatus::Releasing) => {
                self.revision = c.revision;
                self.deadline = c.sent_at + self.tenure.ttl - self.margin;
                self.shared_deadline.set(self.deadline);
                self.last_refresh = Some(SystemTime::now());
                tracing::trace!(revision = c.revision, "refreshed");
                self.arm(ctx);
                for r in self.refresh_replies.drain(..) {
                    let _ = r.send(Ok(()));
                }
                if self.status == LockStatus::Releasing {
                    self.start_release(ctx);
                }
            }
            // The tenure already ended. (The actor stops when it ends, which drops this
            // future, so this is only a guard.)
            Ok(_) => {}
            Err(reason) => self.declare_lost(reason, ctx),
        }
    }

    fn start_release(&mut self, ctx: &mut Context<Self>) {
        let (store, tenure) = (self.store.clone(), self.tenure.clone());
        let (rev, deadline, timeout) = (self.revision, self.deadline, self.request_timeout);
        let work = async move { lease::release(&store, &tenure, rev, deadline, timeout).await }
            .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|outcome, act, ctx| {
            let _e = act.span.clone().entered();
            match outcome {
                Released::Freed(marker) => {
                    tracing::debug!(marker, "released");
                    act.finish(LockStatus::Released, Some(marker), Ok(()), ctx);
                }
                Released::WasLost(reason) => act.declare_lost(reason, ctx),
                Released::Unknown(e) => {
                    tracing::warn!("release unconfirmed before the lease deadline");
                    let err = e.into_lock_error(&act.tenure.key);
                    act.finish(LockStatus::Released, None, Err(err), ctx);
                }
            }
        }));
    }

    /// Ends the actor: answers waiting callers, tells the manager, stops.
    fn finish(
        &mut self,
        status: LockStatus,
        marker: Option<u64>,
        release_result: Result<(), LockError>,
        ctx: &mut Context<Self>,
    ) {
        let reason = match &status {
            LockStatus::Lost(reason) => Some(reason.clone()),
            _ => None,
        };
        let lost = reason.clone().map(|r| self.lost_message(r));
        self.status = status;
        // Callers answered after the first release learn that it was lost (and why), or
        // that it is not held.
        let key = self.tenure.key.clone();
        let later_error = || match &reason {
            Some(reason) => LockError::Lost {
                key: key.clone(),
                reason: reason.clone(),
            },
            None => LockError::NotHeld { key: key.clone() },
        };
        let mut release_result = Some(release_result);
        for r in std::mem::take(&mut self.release_replies) {
            let result = release_result.take().unwrap_or_else(|| Err(later_error()));
            let _ = r.send(result);
        }
        for r in std::mem::take(&mut self.refresh_replies) {
            let _ = r.send(Err(later_error()));
        }
        self.manager.do_send(LockEnded {
            key: self.tenure.key.clone(),
            token: self.token,
            marker,
            lost,
        });
        ctx.stop();
    }

    fn declare_lost(&mut self, reason: LossReason, ctx: &mut Context<Self>) {
        if matches!(self.status, LockStatus::Lost(_) | LockStatus::Released) {
            return;
        }
        let _e = self.span.clone().entered();
        tracing::warn!(%reason, "lock lost");
        let msg = self.lost_message(reason.clone());
        for s in self.subscribers.drain(..) {
            s.do_send(msg.clone());
        }
        self.lost_tx.send_replace(Some(msg));
        // A write whose answer never came may have landed after all: if the key still holds
        // this tenure's value, delete it rather than leave it to expire.
        let (store, tenure) = (self.store.clone(), self.tenure.clone());
        actix::spawn(async move { lease::release_if_ours(&store, &tenure).await });
        let err = LockError::Lost {
            key: self.tenure.key.clone(),
            reason: reason.clone(),
        };
        self.finish(LockStatus::Lost(reason), None, Err(err), ctx);
    }

    fn lost_message(&self, reason: LossReason) -> LockLost {
        LockLost {
            key: self.tenure.key.clone(),
            token: self.token,
            reason,
        }
    }

    fn not_held(&self) -> LockError {
        LockError::NotHeld {
            key: self.tenure.key.clone(),
        }
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
        let _e = self.span.clone().entered();
        tracing::debug!(revision = self.revision, "acquired");
        if self.keep_alive {
            // TTL/factor: with the default factor 3, two refreshes can fail before the lease
            // deadline is near.
            self.next_refresh = Some(Instant::now() + self.refresh_interval);
        }
        self.arm(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if matches!(self.status, LockStatus::Held | LockStatus::Releasing) {
            // The actor system is going away under a held lock: no delete can be sent any
            // more; the key expires after its TTL. Tell whoever still listens.
            let msg = self.lost_message(LossReason::Shutdown);
            for s in self.subscribers.drain(..) {
                s.do_send(msg.clone());
            }
            self.lost_tx.send_replace(Some(msg));
            self.status = LockStatus::Lost(LossReason::Shutdown);
        }
    }
}

impl Handler<Release> for LockActor {
    type Result = ResponseFuture<Result<(), LockError>>;

    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.status != LockStatus::Held {
            let _ = tx.send(Err(self.not_held()));
        } else {
            self.status = LockStatus::Releasing;
            self.release_replies.push(tx);
            if !self.refreshing {
                self.start_release(ctx);
            }
        }
        Self::reply_future(rx, self.tenure.key.clone())
    }
}

impl Handler<Refresh> for LockActor {
    type Result = ResponseFuture<Result<(), LockError>>;

    fn handle(&mut self, _: Refresh, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.status != LockStatus::Held {
            let _ = tx.send(Err(self.not_held()));
        } else {
            self.refresh_replies.push(tx);
            self.start_refresh(ctx);
        }
        Self::reply_future(rx, self.tenure.key.clone())
    }
}

impl Handler<GetState> for LockActor {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, _: GetState, ctx: &mut Context<Self>) -> Self::Result {
        if self.status == LockStatus::Held && Instant::now() >= self.deadline {
            // The timer is due but has not run yet: never report a lease past its deadline.
            self.declare_lost(LossReason::Expired, ctx);
        }
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
    type Result = ();

    fn handle(&mut self, Subscribe(who): Subscribe, _: &mut Context<Self>) {
        match &self.status {
            // Subscribing after the loss still delivers it.
            LockStatus::Lost(reason) => who.do_send(self.lost_message(reason.clone())),
            _ => self.subscribers.push(who),
        }
    }
}

/// A lock's lease deadline, shared between its actor (which moves it) and its handle (which
/// reads it). Nanoseconds after `base` in an atomic: no lock, nothing to await.
#[derive(Debug)]
pub(crate) struct SharedDeadline {
    base: Instant,
    nanos: AtomicU64,
}

impl SharedDeadline {
    fn new(deadline: Instant) -> Self {
        let d = SharedDeadline {
            base: Instant::now(),
            nanos: AtomicU64::new(0),
        };
        d.set(deadline);
        d
    }

    fn set(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.base).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.nanos.store(nanos, Ordering::Release);
    }

    /// Whether the deadline is still ahead.
    pub(crate) fn ahead(&self) -> bool {
        let nanos = self.nanos.load(Ordering::Acquire);
        Instant::now() < self.base + Duration::from_nanos(nanos)
    }
}
