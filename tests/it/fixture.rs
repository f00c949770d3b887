//! Shared set-up for the lock tests: one real server per test, managers on separate
//! connections, unique bucket names, and a probe actor that records `LockLost` messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use nlock::{Config, ConfigBuilder, LockError, LockHandle, LockLost, LockManager};
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

    /// A config builder for this env's bucket with short, test-friendly timings.
    pub fn config(&self) -> ConfigBuilder {
        Config::builder()
            .bucket(self.bucket.clone())
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
) -> tokio::task::JoinHandle<Result<LockHandle, LockError>> {
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

/// How many local requests wait for `key` at `m`.
pub async fn waiting_on(m: &LockManager, key: &str) -> usize {
    let report = m.locks().await.unwrap();
    report
        .waiting
        .iter()
        .find(|(k, _)| k == key)
        .map_or(0, |(_, n)| *n)
}

/// An actor that forwards every `LockLost` it gets into a channel the test reads.
pub struct LossProbe {
    tx: mpsc::UnboundedSender<LockLost>,
}

impl LossProbe {
    pub fn start() -> (Recipient<LockLost>, mpsc::UnboundedReceiver<LockLost>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (LossProbe { tx }.start().recipient(), rx)
    }
}

impl Actor for LossProbe {
    type Context = Context<Self>;
}

impl Handler<LockLost> for LossProbe {
    type Result = ();
    fn handle(&mut self, msg: LockLost, _: &mut Context<Self>) {
        let _ = self.tx.send(msg);
    }
}
