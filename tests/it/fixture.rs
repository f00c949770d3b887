//! Shared set-up for the lock tests: one real server per test, managers on separate
//! connections, unique bucket names, and a probe actor that records `LockLost` messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use nlock::{Config, ConfigBuilder, LockHandle, LockLost, LockManager};
use tokio::sync::mpsc;

use crate::harness::NatsServer;

/// A generous bound for things that should happen in milliseconds; only a failure waits it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One server and helpers around it.
pub struct Env {
    pub server: NatsServer,
    pub bucket: String,
}

static BUCKETS: AtomicU64 = AtomicU64::new(0);

impl Env {
    pub async fn start() -> Env {
        Env::start_with(NatsServer::builder()).await
    }

    /// An env whose server is started from `builder` (config text, extra args).
    pub async fn start_with(builder: crate::harness::NatsServerBuilder) -> Env {
        crate::harness::init_tracing();
        let server = builder.start().await;
        let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
        Env {
            server,
            bucket: format!("locks_{}_{n}", std::process::id()),
        }
    }

    /// Whether the server has per-message TTL and limit markers (2.11+).
    pub fn modern(&self) -> bool {
        let (major, minor, _) = self.server.version();
        (major, minor) >= (2, 11)
    }

    /// A config builder for this env's bucket with short, test-friendly timings. The restart
    /// grace is off: the test's own fresh server has no earlier life whose holders could
    /// still count a lease (the restart tests turn it on).
    pub fn config(&self) -> ConfigBuilder {
        Config::builder()
            .bucket(self.bucket.clone())
            .restart_grace(false)
            .ttl(Duration::from_secs(3))
            .request_timeout(Duration::from_millis(500))
    }

    /// A manager on its own NATS connection.
    pub async fn manager(&self, config: ConfigBuilder) -> LockManager {
        let config = config.build().expect("valid config");
        LockManager::connect(&self.server.url(), config)
            .await
            .expect("manager starts")
    }

    /// A plain client, for reading or tampering with the bucket behind nlock's back.
    pub async fn raw(&self) -> async_nats::Client {
        async_nats::connect(self.server.url())
            .await
            .expect("connect")
    }

    pub async fn kv(&self) -> async_nats::jetstream::kv::Store {
        let js = async_nats::jetstream::new(self.raw().await);
        js.get_key_value(&self.bucket).await.expect("bucket exists")
    }

    /// The bucket's keys that begin with `prefix` (deleted ones left out), read behind
    /// nlock's back: line entries, permits, read-write lock members.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        use futures::StreamExt;
        let kv = self.kv().await;
        let mut keys = kv.keys().await.expect("list keys");
        let mut found = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.expect("a key");
            if k.starts_with(prefix) {
                found.push(k);
            }
        }
        found
    }

    /// How many messages the bucket's stream holds (0 if it does not exist).
    pub async fn stream_messages(&self) -> Option<u64> {
        let js = async_nats::jetstream::new(self.raw().await);
        let mut stream = js.get_stream(format!("KV_{}", self.bucket)).await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    }
}

/// Starts `m.acquire(key, timeout)` in the background and returns once the request is queued
/// at `m`, so that a release that follows must be noticed by the waiter, not raced by it.
pub async fn spawn_waiter(
    m: &LockManager,
    key: &str,
    timeout: Duration,
) -> tokio::task::JoinHandle<Result<LockHandle, nlock::AcquireError>> {
    let before = waiting_on(m, key).await;
    let task = {
        let (m, key) = (m.clone(), key.to_owned());
        actix::spawn(async move { m.acquire(&key, Some(timeout)).await })
    };
    crate::harness::must_eventually(PATIENCE, "the waiter is queued", || async {
        waiting_on(m, key).await > before
    })
    .await;
    task
}

/// Watches `lease.is_held()` every millisecond on a task of its own: the holder's own view.
/// The task ends, when the lease stops holding, with the last moment it said "held".
pub fn watch_last_held(lease: nlock::Lease) -> tokio::task::JoinHandle<tokio::time::Instant> {
    tokio::spawn(async move {
        let mut last_held = tokio::time::Instant::now();
        while lease.is_held() {
            last_held = tokio::time::Instant::now();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        last_held
    })
}

/// How many local requests wait for `key` at `m`.
pub async fn waiting_on(m: &LockManager, key: &str) -> usize {
    let report = m.locks().await.unwrap();
    report
        .waiting
        .iter()
        .find(|(k, _)| k == key)
        .map_or(0, |(_, n)| *n)
}

/// The next event of a stream (panics after PATIENCE or if the stream ends).
pub async fn next_event(events: &mut nlock::LockEvents) -> nlock::LockEvent {
    use futures::StreamExt;
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event within PATIENCE")
        .expect("the stream does not end")
}

/// The next event that is not of kind `skip` (refreshes, say).
pub async fn next_event_except(
    events: &mut nlock::LockEvents,
    skip: nlock::LockEventKind,
) -> nlock::LockEvent {
    loop {
        let e = next_event(events).await;
        if e.kind != skip {
            return e;
        }
    }
}

/// A subscriber for tests: an actor that forwards every `LockLost` it gets into a channel the
/// test reads. The probe keeps its actor's address: subscriptions are weak, so a subscriber
/// lives only as long as someone else holds it.
pub struct LossProbe {
    addr: Addr<ProbeActor>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<LockLost>>,
    stopped: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl LossProbe {
    pub fn start() -> LossProbe {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
        let addr = ProbeActor {
            tx,
            stopped: Some(stopped_tx),
        }
        .start();
        LossProbe {
            addr,
            rx: tokio::sync::Mutex::new(rx),
            stopped: tokio::sync::Mutex::new(Some(stopped_rx)),
        }
    }

    pub fn recipient(&self) -> Recipient<LockLost> {
        self.addr.clone().recipient()
    }

    /// The next loss this probe was told of (panics after PATIENCE).
    pub async fn next(&self) -> LockLost {
        let mut rx = self.rx.lock().await;
        tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("a LockLost within PATIENCE")
            .expect("probe alive")
    }

    /// Asserts that nothing more was delivered: a ping through the probe's mailbox comes back
    /// after every message already sent to it.
    pub async fn assert_no_more(&self) {
        self.addr.send(Ping).await.expect("probe alive");
        let mut rx = self.rx.lock().await;
        match rx.try_recv() {
            Err(mpsc::error::TryRecvError::Empty) => {}
            other => panic!("expected no more LockLost, got {other:?}"),
        }
    }

    /// Drops the probe's own address and waits until its actor has stopped: true when it
    /// stopped, false when something else kept it alive for PATIENCE.
    pub async fn drop_and_wait_stopped(self) -> bool {
        let stopped = self.stopped.lock().await.take().expect("first call");
        drop(self.addr);
        tokio::time::timeout(PATIENCE, stopped).await.is_ok()
    }
}

pub struct ProbeActor {
    tx: mpsc::UnboundedSender<LockLost>,
    stopped: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Actor for ProbeActor {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(tx) = self.stopped.take() {
            let _ = tx.send(());
        }
    }
}

impl Handler<LockLost> for ProbeActor {
    type Result = ();
    fn handle(&mut self, msg: LockLost, _: &mut Context<Self>) {
        let _ = self.tx.send(msg);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

impl Handler<Ping> for ProbeActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}
