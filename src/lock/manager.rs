//! `LockManagerActor`: one per bucket. It queues this process's requests per key (first in,
//! first out), runs at most one contender per key, starts a `LockActor` for each lock it
//! gets, and learns from each lock actor how its tenure ended.
//!
//! Shutdown: [`Shutdown`] releases every held lock, fails every waiter with `ManagerGone`,
//! then stops the actor. If the manager stops any other way, waiting requests end with
//! `ManagerGone` and held locks keep running until their handles are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use crate::config::{validate_ttl, Config};
use crate::error::{ConfigError, ErrorKind, Feature, LockError};
use crate::handle::LockHandle;
use crate::holder::{unix_ms, Holder, MAX_DESCRIPTION};
use crate::key::validate_key;
use crate::lease::Lease;
use crate::lock::actor::{ForeignWrite, LockActor, LockEnded, LockSetup, ReleaseForShutdown};
use crate::lock::contend::{Contended, Contender};
use crate::lock::queue::{Busy, KeyQueue, Next, Withdrawable};
use crate::lock::state::{GetState, LockLost, LockState};
use crate::lock::tenure::Tenure;
use crate::pending::PendingLock;
use crate::store::{Change, ChangeOp, Changes, Store};
use crate::subscribers::{Subscribers, SubscriptionId};

/// How many delete-marker revisions to remember for one-round-trip re-acquires. Past it the
/// memory is dropped; a forgotten marker only costs one extra round-trip.
const MAX_REMEMBERED_MARKERS: usize = 10_000;

/// Waits for a lock. With a timeout, gives up after it with `AcquireTimedOut`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PendingLock, LockError>")]
pub struct Acquire {
    /// The key.
    pub key: String,
    /// How long to wait; `None` waits until granted or the request is dropped.
    pub timeout: Option<Duration>,
    /// Options for this lock.
    pub options: LockOptions,
}

/// Takes the lock only if it is free right now; `Busy` otherwise, naming the holder.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PendingLock, LockError>")]
pub struct TryAcquire {
    /// The key.
    pub key: String,
    /// Options for this lock.
    pub options: LockOptions,
}

/// Per-lock options.
///
/// ```
/// use std::time::Duration;
/// let options = nlock::LockOptions::default()
///     .ttl(Duration::from_secs(5))
///     .description("compacting segment 42");
/// assert_eq!(options.ttl, Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockOptions {
    /// A TTL for this lock instead of the bucket's (server 2.11+; whole seconds, >= 1 s).
    pub ttl: Option<Duration>,
    /// Stored in the lock value, shown to anyone who finds the lock busy.
    pub description: Option<String>,
}

impl LockOptions {
    /// A TTL for this lock instead of the bucket's.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// A description stored in the lock value, shown to anyone who finds the lock busy.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Asks for every key this process holds or waits for.
#[derive(Debug, Message)]
#[rtype(result = "LocksReport")]
pub struct ListLocks;

/// What [`ListLocks`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LocksReport {
    /// States of the locks held by this process, by key.
    pub held: Vec<LockState>,
    /// Keys this process waits for, with how many local requests wait on each.
    pub waiting: Vec<(String, usize)>,
}

/// Subscribes to every lock loss in this manager (weakly: the subscription does not keep the
/// subscriber alive).
#[derive(Debug, Message)]
#[rtype(result = "SubscriptionId")]
pub struct SubscribeLosses(pub Recipient<LockLost>);

/// Releases every held lock, fails every waiter, and stops the manager.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wait,
    Try,
}

struct Waiter {
    tx: oneshot::Sender<Result<LockHandle, LockError>>,
    options: LockOptions,
    mode: Mode,
}

impl Withdrawable for Waiter {
    fn withdrawn(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A lock this process holds, as its key's queue keeps it.
struct HeldLock {
    addr: Addr<LockActor>,
    holder: Holder,
}

/// One key's queue, with this manager's waiters and held locks.
type Queue = KeyQueue<Waiter, HeldLock>;

/// The manager actor. Most code uses it through [`LockManager`](crate::LockManager).
pub struct LockManagerActor {
    store: Arc<Store>,
    config: Config,
    /// Unique per manager: tells this process's locks from others' in the lock values.
    owner: String,
    host: String,
    queues: HashMap<String, Queue>,
    /// Revisions of delete markers this process wrote; a re-acquire expects them.
    markers: HashMap<String, u64>,
    /// Told of every lock's loss, by the lock actors themselves (shared with them and with
    /// the `LockManager` handles, which subscribe without a message).
    loss_subscribers: Arc<Subscribers>,
    /// Every change that lands on the bucket's keys; taken into the actor's context when it
    /// starts. It tells held locks of foreign writes at once instead of at their next refresh.
    feed: Option<Changes>,
    /// How this manager's own lock values begin: writes that start with it are this
    /// manager's refreshes and acquires, not foreign writes.
    own_value_prefix: Vec<u8>,
    shutting_down: bool,
    /// Turned true by `Shutdown`: running contenders stop waiting.
    stop_contenders: watch::Sender<bool>,
    /// Contenders running. Shutdown waits for them to end before it releases what is held,
    /// so that a lock won during shutdown is released too, never left behind.
    contending: usize,
    /// Told when `contending` drops to zero during shutdown.
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl LockManagerActor {
    pub(crate) fn new(
        store: Arc<Store>,
        config: Config,
        owner: String,
        feed: Changes,
        loss_subscribers: Arc<Subscribers>,
    ) -> Self {
        LockManagerActor {
            store,
            config,
            own_value_prefix: crate::holder::value_prefix(&owner),
            owner,
            host: crate::holder::hostname(),
            queues: HashMap::new(),
            markers: HashMap::new(),
            loss_subscribers,
            feed: Some(feed),
            shutting_down: false,
            stop_contenders: watch::channel(false).0,
            contending: 0,
            idle_waiters: Vec::new(),
        }
    }

    /// Checks a request before anything is sent: key, TTL, description, server support.
    fn validate(&self, key: &str, options: &LockOptions) -> Result<(), LockError> {
        validate_key(key)?;
        if let Some(ttl) = options.ttl {
            validate_ttl(ttl)?;
            // The bucket's max_age removes a message whatever its own TTL says: a longer
            // per-lock TTL would let the server free the key under a holder that thinks
            // it still holds it.
            if ttl > self.config.ttl {
                return Err(ConfigError::LockTtlAboveBucketTtl {
                    ttl,
                    bucket_ttl: self.config.ttl,
                }
                .into());
            }
            // A lease shorter than one request could be over before its grant is answered.
            if ttl <= self.config.request_timeout {
                return Err(ConfigError::LockTtlNotAboveRequestTimeout {
                    ttl,
                    request_timeout: self.config.request_timeout,
                }
                .into());
            }
            let caps = self.store.capabilities();
            if !caps.per_lock_ttl {
                return Err(LockError::Unsupported {
                    feature: Feature::PerLockTtl,
                    server_version: caps.server_version.clone(),
                });
            }
        }
        if let Some(d) = &options.description {
            if d.len() > MAX_DESCRIPTION {
                return Err(ConfigError::DescriptionTooLong(d.len()).into());
            }
        }
        if self.shutting_down {
            return Err(LockError::ManagerGone);
        }
        Ok(())
    }

    fn enqueue(
        &mut self,
        key: String,
        options: LockOptions,
        mode: Mode,
        timeout: Option<Duration>,
        ctx: &mut Context<Self>,
    ) -> Result<PendingLock, LockError> {
        self.validate(&key, &options)?;
        let (tx, rx) = oneshot::channel();
        let queue = self.queues.entry(key.clone()).or_insert_with(KeyQueue::new);
        if mode == Mode::Try {
            // Local waiters go first; a try never jumps the queue.
            if let Some(busy) = queue.busy() {
                let holder = match busy {
                    Busy::Held(lock) => Some(Box::new(lock.holder.clone())),
                    Busy::Contending | Busy::Queued => None,
                };
                return Err(LockError::Busy { key, holder });
            }
        }
        queue.push(Waiter { tx, options, mode });
        self.pump(&key, ctx);
        Ok(PendingLock::new(key, rx, timeout))
    }

    /// Starts a contender for the first live waiter of `key`, if the key is idle here.
    fn pump(&mut self, key: &str, ctx: &mut Context<Self>) {
        let Some(queue) = self.queues.get_mut(key) else {
            return;
        };
        if self.shutting_down {
            return;
        }
        match queue.next() {
            Next::Start(waiter) => self.contend(key.to_owned(), waiter, ctx),
            Next::Wait => {}
            Next::Unused => {
                self.queues.remove(key);
            }
        }
    }

    fn contend(&mut self, key: String, mut waiter: Waiter, ctx: &mut Context<Self>) {
        self.contending += 1;
        let ttl = waiter.options.ttl.unwrap_or(self.config.ttl);
        let tenure_id = crate::holder::random_id();
        let holder = Holder {
            owner: self.owner.clone(),
            host: self.host.clone(),
            pid: std::process::id(),
            acquired_at_ms: unix_ms(SystemTime::now()),
            description: waiter.options.description.clone(),
            tenure: tenure_id.clone(),
            token: None,
            foreign: false,
        };
        let tenure = Tenure {
            key: key.clone(),
            value: holder.encode(),
            holder,
            tenure_id,
            ttl,
            // Only a TTL other than the bucket's needs the header: the bucket's max_age
            // expires the key at the same moment, and the server then tracks no
            // per-message TTL on every acquire and refresh.
            send_ttl: self.store.capabilities().per_lock_ttl && ttl != self.config.ttl,
        };
        let hint = self.markers.remove(&key);
        let store = self.store.clone();
        let (retry_interval, resolve_for) =
            (self.config.retry_interval, self.config.request_timeout);
        let span = tracing::info_span!("lock", key = %key, owner = %self.owner);
        let mut shutdown = self.stop_contenders.subscribe();
        let work = async move {
            let contender = Contender {
                store: &store,
                tenure: &tenure,
                retry_interval,
                resolve_for,
            };
            let outcome = match waiter.mode {
                Mode::Try => contender.try_once(hint).await,
                Mode::Wait => {
                    // Stop when the caller goes away or the manager shuts down.
                    let stop = async {
                        tokio::select! {
                            _ = waiter.tx.closed() => {}
                            _ = shutdown.wait_for(|stop| *stop) => {}
                        }
                    };
                    contender.wait(hint, stop).await
                }
            };
            (waiter, tenure, outcome)
        }
        .instrument(span);
        ctx.spawn(
            work.into_actor(self)
                .map(move |(waiter, tenure, outcome), act, ctx| {
                    act.on_contended(waiter, tenure, outcome, ctx)
                }),
        );
    }

    fn on_contended(
        &mut self,
        waiter: Waiter,
        mut tenure: Tenure,
        outcome: Contended,
        ctx: &mut Context<Self>,
    ) {
        self.contending -= 1;
        let key = tenure.key.clone();
        let won = match outcome {
            Contended::Acquired(grant) => {
                let holder = grant.holder.clone();
                // From the first refresh on, the value names its token, so that observers
                // (and `nlock ls`) see the fencing token of a lock they did not see taken.
                tenure.holder = grant.holder;
                tenure.holder.token = Some(grant.token);
                tenure.value = tenure.holder.encode();
                let setup = LockSetup {
                    store: self.store.clone(),
                    tenure,
                    token: grant.token,
                    confirmed: grant.confirmed,
                    keep_alive: self.config.keep_alive,
                    refresh_interval: self
                        .config
                        .refresh_interval(holder_ttl(&self.config, &waiter)),
                    margin: self.config.lease_margin(holder_ttl(&self.config, &waiter)),
                    request_timeout: self.config.request_timeout,
                    manager: ctx.address().recipient(),
                    manager_subscribers: self.loss_subscribers.clone(),
                };
                let (actor, lease) = LockActor::new(setup);
                let addr = actor.start();
                if self.shutting_down {
                    // Won while shutting down: kept as held so that shutdown releases it.
                    let _ = waiter.tx.send(Err(LockError::ManagerGone));
                } else {
                    let handle = LockHandle::new(Lease::new(lease), addr.clone());
                    // If the caller is gone, the handle comes back and its drop releases it.
                    if let Err(Ok(handle)) = waiter.tx.send(Ok(handle)) {
                        drop(handle);
                    }
                }
                Some((HeldLock { addr, holder }, grant.token))
            }
            Contended::Busy(h) => {
                let _ = waiter.tx.send(Err(LockError::Busy {
                    key: key.clone(),
                    holder: h.map(Box::new),
                }));
                None
            }
            Contended::Stopped => None,
            Contended::Failed(e) => {
                let _ = waiter.tx.send(Err(e));
                None
            }
        };
        if let Some(q) = self.queues.get_mut(&key) {
            q.contended(won);
        }
        if self.shutting_down && self.contending == 0 {
            for tx in self.idle_waiters.drain(..) {
                let _ = tx.send(());
            }
        }
        self.pump(&key, ctx);
    }

    fn held_addrs(&self) -> Vec<Addr<LockActor>> {
        self.queues
            .values()
            .filter_map(|q| q.held().map(|lock| lock.addr.clone()))
            .collect()
    }
}

fn holder_ttl(config: &Config, waiter: &Waiter) -> Duration {
    waiter.options.ttl.unwrap_or(config.ttl)
}

impl Actor for LockManagerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(feed) = self.feed.take() {
            ctx.add_stream(feed);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Dropping the queues drops every waiter's sender: their PendingLock ends ManagerGone.
        self.queues.clear();
    }
}

impl Handler<Acquire> for LockManagerActor {
    type Result = Result<PendingLock, LockError>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        self.enqueue(msg.key, msg.options, Mode::Wait, msg.timeout, ctx)
    }
}

impl Handler<TryAcquire> for LockManagerActor {
    type Result = Result<PendingLock, LockError>;

    fn handle(&mut self, msg: TryAcquire, ctx: &mut Context<Self>) -> Self::Result {
        self.enqueue(msg.key, msg.options, Mode::Try, None, ctx)
    }
}

impl Handler<LockEnded> for LockManagerActor {
    type Result = ();

    fn handle(&mut self, msg: LockEnded, ctx: &mut Context<Self>) {
        if let Some(marker) = msg.marker {
            if self.markers.len() >= MAX_REMEMBERED_MARKERS {
                self.markers.clear();
            }
            self.markers.insert(msg.key.clone(), marker);
        }
        if let Some(q) = self.queues.get_mut(&msg.key) {
            // Only the tenure this queue is in may reset it.
            q.ended(msg.token);
        }
        tracing::debug!(key = %msg.key, token = msg.token, "tenure ended");
        self.pump(&msg.key, ctx);
    }
}

impl Handler<ListLocks> for LockManagerActor {
    type Result = ResponseFuture<LocksReport>;

    fn handle(&mut self, _: ListLocks, _: &mut Context<Self>) -> Self::Result {
        let mut addrs = Vec::new();
        let mut waiting = Vec::new();
        for (key, q) in &self.queues {
            if let Some(lock) = q.held() {
                addrs.push(lock.addr.clone());
            }
            let live = q.waiting();
            if live > 0 {
                waiting.push((key.clone(), live));
            }
        }
        waiting.sort();
        Box::pin(async move {
            let states = futures::future::join_all(addrs.iter().map(|a| a.send(GetState))).await;
            let mut held: Vec<LockState> = states.into_iter().filter_map(Result::ok).collect();
            held.sort_by(|a, b| a.key.cmp(&b.key));
            LocksReport { held, waiting }
        })
    }
}

impl Handler<SubscribeLosses> for LockManagerActor {
    type Result = MessageResult<SubscribeLosses>;

    fn handle(&mut self, msg: SubscribeLosses, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.loss_subscribers.subscribe(msg.0))
    }
}

impl StreamHandler<Change> for LockManagerActor {
    fn handle(&mut self, change: Change, _: &mut Context<Self>) {
        // This manager's own writes: refreshes and acquires of its own tenures. (Its own
        // deletes reach a lock actor that is releasing, which ignores them.)
        if change.op == ChangeOp::Put && change.value.starts_with(&self.own_value_prefix) {
            return;
        }
        if let Some(lock) = self.queues.get(&change.key).and_then(|q| q.held()) {
            lock.addr.do_send(ForeignWrite {
                revision: change.revision,
            });
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The change stream never ends by itself (it reopens); should it end, held locks
        // still notice foreign writes at their next refresh, and the manager carries on
        // (the default would stop it).
        tracing::warn!("the bucket's change stream ended; foreign writes are noticed at refresh");
    }
}

impl Handler<Shutdown> for LockManagerActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        // Contenders waiting on a key held elsewhere stop at once (their callers get
        // ManagerGone); one in the middle of a write finishes it first.
        self.stop_contenders.send_replace(true);
        for q in self.queues.values_mut() {
            // Dropping the senders ends every queued acquire with ManagerGone, and makes the
            // waiting contenders stop.
            q.clear_waiters();
        }
        // First let running contenders finish (a lock they win now is kept as held), then
        // release everything held.
        let idle = (self.contending > 0).then(|| {
            let (tx, rx) = oneshot::channel();
            self.idle_waiters.push(tx);
            rx
        });
        let contenders_done = async move {
            if let Some(rx) = idle {
                let _ = rx.await;
            }
        };
        Box::pin(
            contenders_done
                .into_actor(self)
                .then(|(), act, _| release_all(act.held_addrs()).into_actor(act))
                .map(|(), _, ctx| ctx.stop()),
        )
    }
}

async fn release_all(addrs: Vec<Addr<LockActor>>) {
    // Each holder is told (LockLost { Shutdown }) before its delete is sent.
    let results = futures::future::join_all(addrs.iter().map(|a| a.send(ReleaseForShutdown))).await;
    for r in results.into_iter().flatten() {
        if let Err(e) = r {
            if e.kind() != ErrorKind::NotHeld {
                tracing::warn!(error = %e, "release at shutdown failed");
            }
        }
    }
}
