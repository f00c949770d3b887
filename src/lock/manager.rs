//! `LockManagerActor`: one per bucket. It queues this process's requests per key (first in,
//! first out), runs at most one contender per key, starts a `LockActor` for each lock it
//! gets, and learns from each lock actor how its tenure ended.
//!
//! Shutdown: [`Shutdown`] releases every held lock, fails every waiter with `ManagerGone`,
//! then stops the actor. If the manager stops any other way, waiting requests end with
//! `ManagerGone` and held locks keep running until their handles are dropped.

mod changes;
mod grant;
mod validate;
mod withdraw;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use actix::WeakAddr;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{ErrorKind, LockError};
use crate::lock::actor::{LockActor, LockCommon, LockEnded, ReleaseForShutdown};
use crate::lock::granted::{Granted, Pending};
use crate::lock::lease::Lease;
use crate::lock::line::{Entry, LineView};
use crate::lock::loss::Subscribers;
use crate::lock::queue::{Busy, KeyQueue, Next, Withdrawable};
use crate::lock::requests::{
    Acquire, ListLocks, LockOptions, LocksReport, Shutdown, SubscribeLosses, TryAcquire,
};
use crate::lock::state::{GetState, LockState};
use crate::settings::Config;
use crate::store::{Change, Changes, ChangesCloser, Store};
use crate::telemetry::Waiting;

/// How many delete-marker revisions to remember for one-round-trip re-acquires. Past it the
/// memory is dropped; a forgotten marker only costs one extra round-trip.
const MAX_REMEMBERED_MARKERS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wait,
    Try,
}

struct Waiter {
    tx: oneshot::Sender<Result<Granted, LockError>>,
    options: LockOptions,
    mode: Mode,
    /// Its place in the line across processes, taken when it arrived behind others here
    /// (dropping it leaves the line); else the contender takes one when it has to wait.
    entry: Option<Entry>,
    /// The `nlock_waiters` gauge and the wait's duration (`crate::telemetry`).
    waiting: Waiting,
}

impl Withdrawable for Waiter {
    fn withdrawn(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A lock this process holds, as its key's queue keeps it. The holder record is read from
/// the lease's tenure, not kept twice; the actor's address is weak (a strong actix address
/// costs two allocations; the caller's handle holds one, and the actor's own timer keeps it
/// running until its tenure ends).
struct HeldLock {
    addr: WeakAddr<LockActor>,
    lease: Lease,
}

impl HeldLock {
    /// The lock actor's address, while it runs.
    fn addr(&self) -> Option<Addr<LockActor>> {
        self.addr.upgrade()
    }
}

/// One key's queue, with this manager's waiters and held locks.
type Queue = KeyQueue<Waiter, HeldLock>;

/// The manager actor. Most code uses it through [`LockManager`](crate::LockManager).
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), Box<dyn std::error::Error>> {
/// let addr: actix::Addr<nlock::actor::LockManagerActor> = m.actor().clone();
/// let report = addr.send(nlock::actor::ListLocks).await?;
/// # Ok(()) }
/// ```
pub struct LockManagerActor {
    store: Arc<Store>,
    config: Config,
    /// Unique per manager: tells this process's locks from others' in the lock values.
    owner: String,
    host: String,
    /// This process's id, read once: `getpid` is a system call on every acquire otherwise.
    pid: u32,
    queues: HashMap<String, Queue>,
    /// Revisions of delete markers this process wrote; a re-acquire expects them.
    markers: HashMap<String, u64>,
    /// Told of every lock's loss, by the lock actors themselves (shared with them and with
    /// the `LockManager` handles, which subscribe without a message).
    loss_subscribers: Arc<Subscribers>,
    /// Every change that lands on the bucket's keys; taken into the actor's context when it
    /// starts. It tells held locks of foreign writes at once instead of at their next refresh.
    feed: Option<Changes>,
    /// Ends the change stream and deletes its consumer at shutdown, waiting for the server,
    /// so that a process that exits right after leaves no consumer behind.
    feed_closer: Option<ChangesCloser>,
    /// Whether the manager follows the bucket's changes: then waiters wake from them.
    follows_changes: bool,
    /// The waiting contenders' wake-up channels, per key (at most one contender per key):
    /// the changes of keys someone here waits for. Made before the contender's first round
    /// and removed when it ends.
    wakers: HashMap<String, mpsc::Sender<Change>>,
    /// Every key's line across processes as the change stream tells it; `None` without the
    /// line (`Config::queue(false)`, or no change stream).
    line: Option<Arc<Mutex<LineView>>>,
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
    /// What every lock actor of this manager shares; made with the first one (`grant.rs`).
    lock_common: Option<Arc<LockCommon>>,
}

impl LockManagerActor {
    pub(crate) fn new(
        store: Arc<Store>,
        config: Config,
        owner: String,
        feed: Option<(Changes, ChangesCloser)>,
        entries: Vec<Change>,
        loss_subscribers: Arc<Subscribers>,
    ) -> Self {
        let (feed, feed_closer) = feed.unzip();
        let line = (feed.is_some() && config.queue).then(|| {
            let mut view = LineView::new(config.entry_lifetime(store.max_age()));
            let now = tokio::time::Instant::now();
            for change in &entries {
                view.apply(change, now);
            }
            Arc::new(Mutex::new(view))
        });
        LockManagerActor {
            line,
            store,
            config,
            own_value_prefix: crate::holder::value_prefix(&owner),
            owner,
            host: crate::holder::hostname(),
            pid: std::process::id(),
            queues: HashMap::new(),
            markers: HashMap::new(),
            loss_subscribers,
            follows_changes: feed.is_some(),
            feed,
            feed_closer,
            wakers: HashMap::new(),
            shutting_down: false,
            stop_contenders: watch::channel(false).0,
            contending: 0,
            idle_waiters: Vec::new(),
            lock_common: None,
        }
    }

    fn enqueue(
        &mut self,
        key: String,
        options: LockOptions,
        mode: Mode,
        ctx: &mut Context<Self>,
    ) -> Result<Pending, LockError> {
        self.validate(&key, &options)?;
        let (tx, rx) = oneshot::channel();
        let (every, valid_for) = (self.entry_keep_alive(), self.entry_valid_for());
        let queue = self.queues.entry(key.clone()).or_insert_with(KeyQueue::new);
        if mode == Mode::Try {
            // Local waiters go first; a try never jumps the queue.
            if let Some(busy) = queue.busy() {
                let holder = match busy {
                    Busy::Held(lock) => Some(Box::new(lock.lease.tenure().holder())),
                    Busy::Contending | Busy::Queued => None,
                };
                return Err(LockError::Busy { key, holder });
            }
        }
        // Behind others here already: take a place in the line now, so that requests of
        // other processes that arrive later stay behind it.
        let entry = match (&self.line, mode, queue.busy().is_some()) {
            (Some(_), Mode::Wait, true) => Some(Entry::open(
                self.store.clone(),
                &key,
                &crate::holder::random_id(),
                every,
                valid_for,
            )),
            _ => None,
        };
        let waits = (mode == Mode::Wait).then(|| queue.busy().is_some());
        queue.push(Waiter {
            tx,
            options,
            mode,
            entry,
            waiting: Waiting::new(self.store.meter(), waits),
        });
        let withdraw = self.on_withdrawal(&key, ctx);
        self.pump(&key, ctx);
        Ok(Pending { key, rx, withdraw })
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
    /// How often this manager's line entries are rewritten (as often as a lock is refreshed).
    fn entry_keep_alive(&self) -> std::time::Duration {
        self.config.entry_keep_alive(self.store.max_age())
    }

    /// How long a write keeps one of this manager's line entries alive, by its clock.
    fn entry_valid_for(&self) -> std::time::Duration {
        self.config.entry_valid_for(self.store.max_age())
    }

    fn held_addrs(&self) -> Vec<Addr<LockActor>> {
        self.queues
            .values()
            .filter_map(|q| q.held().and_then(HeldLock::addr))
            .collect()
    }
}
impl Actor for LockManagerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(feed) = self.feed.take() {
            ctx.add_stream(feed);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Dropping the queues drops every waiter's sender: their acquires end ManagerGone.
        self.queues.clear();
    }
}

impl Handler<Acquire> for LockManagerActor {
    type Result = Result<Pending, LockError>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        self.enqueue(msg.key, msg.options, Mode::Wait, ctx)
    }
}

impl Handler<TryAcquire> for LockManagerActor {
    type Result = Result<Pending, LockError>;

    fn handle(&mut self, msg: TryAcquire, ctx: &mut Context<Self>) -> Self::Result {
        self.enqueue(msg.key, msg.options, Mode::Try, ctx)
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
            if let Some(addr) = q.held().and_then(HeldLock::addr) {
                addrs.push(addr);
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
                .then(|(), act, _| {
                    // Last: held locks learn of foreign writes until they are released.
                    let closer = act.feed_closer.take();
                    async move {
                        if let Some(closer) = closer {
                            closer.close().await;
                        }
                    }
                    .into_actor(act)
                })
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
