//! Workload 2: handoff. One party holds the key and N waiters, each on its own connection,
//! wait for it. A round: the holder releases (t0); the first waiter to get the key notes the
//! time (t1) and becomes the holder; the old holder starts waiting again, so N waiters wait
//! in every round; after a short settle (the new waiter opens its watch) the next round.
//! Besides latency, each batch counts grants out of arrival order and writes sent per
//! handoff (`batch.rs`).
//!
//! Batches of rounds alternate between contenders, each batch on a fresh key with fresh
//! waiters, so that no contender's idle waiters load the server while another is measured.

pub mod analysis;
mod batch;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Result;

use crate::contenders::{Contender, GoAlgorithm, Nlock, RawKv, RawWatch};
use crate::stats::Samples;
use crate::tap::WriteTap;
use crate::Env;

/// A round that takes longer than this is a failure, not a sample. Polling rounds take
/// about 150 ms; 10 s only ends a run that is stuck.
pub(super) const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Plan {
    pub waiters: Vec<usize>,
    /// Batches (and rounds per batch) of the event-driven contenders.
    pub batches: usize,
    pub rounds: usize,
    /// Batches and rounds of the polling contenders (each round takes about 150 ms).
    pub poll_batches: usize,
    pub poll_rounds: usize,
}

pub struct Row {
    pub name: &'static str,
    pub what: &'static str,
    /// One entry per waiter count, in `Plan::waiters` order.
    pub by_waiters: Vec<Samples>,
    /// Fairness and writes, one entry per waiter count like `by_waiters`.
    pub counts: Vec<Counts>,
    /// How its writes are counted.
    pub writes_how: &'static str,
}

/// What the batches of one contender at one waiter count showed besides latency.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Rounds measured.
    pub handoffs: u64,
    /// Grants to a waiter while one that arrived earlier still waited.
    pub out_of_order: u64,
    /// Writes on the lock key over the measured rounds, the releases included (one per
    /// round); for the peers, the write requests the contender sent.
    pub writes: u64,
    /// Publishes to other `$KV.` subjects over the same rounds (another key, another bucket).
    pub other_writes: u64,
}

impl Counts {
    /// Writes per handoff besides the release: (writes − releases) / handoffs.
    pub fn writes_per_handoff(&self) -> Option<f64> {
        (self.handoffs > 0)
            .then(|| self.writes.saturating_sub(self.handoffs) as f64 / self.handoffs as f64)
    }

    /// Other `$KV.` writes per handoff.
    pub fn other_per_handoff(&self) -> Option<f64> {
        (self.handoffs > 0).then(|| self.other_writes as f64 / self.handoffs as f64)
    }
}

/// How the NATS contenders' writes are counted.
pub const ON_THE_WIRE: &str = "publishes on the key's subject, seen by a core subscription";

/// A contender's samples at one waiter count.
#[derive(Default)]
struct Cell {
    lat: Samples,
    counts: Counts,
}

pub const NLOCK: &str = "nlock";
pub const RAW: &str = "raw floor";
pub const POLL: &str = "Go algorithm (polling)";
pub const ETCD: &str = "etcd";
pub const REDIS: &str = "Redis (polling)";

/// The random part of the settle: event-driven contenders, and pollers.
const RANDOM_SETTLE: Duration = Duration::from_millis(100);
const RANDOM_SETTLE_POLL: Duration = Duration::from_millis(300);

/// One contender's row, empty.
fn row(name: &'static str, what: &'static str, writes_how: &'static str) -> Row {
    Row {
        name,
        what,
        by_waiters: vec![],
        counts: vec![],
        writes_how,
    }
}

/// Runs one batch of `c` on `key` into `cells[name]`.
async fn batch<C: Contender>(
    c: &Rc<C>,
    cells: &mut HashMap<&'static str, Cell>,
    name: &'static str,
    b: batch::Batch,
    tap: &mut WriteTap,
) -> Result<()> {
    let cell = cells.entry(name).or_default();
    batch::run(c.clone(), &b, tap, &mut cell.lat, &mut cell.counts).await
}

pub async fn run(env: &Env, plan: &Plan) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = vec![
        row(
            NLOCK,
            "`acquire` on N managers (N connections): compare-and-set, then a watch",
            ON_THE_WIRE,
        ),
        row(
            RAW,
            "compare-and-set, then a watch; compare-and-set on each delete marker",
            ON_THE_WIRE,
        ),
        row(
            POLL,
            "`kv.create` every 250 ms + up to 25 ms of jitter",
            ON_THE_WIRE,
        ),
    ];
    #[cfg(feature = "etcd")]
    if env.etcd_url.is_some() {
        rows.push(row(
            ETCD,
            "`lock` with a lease (the server queues waiters in order)",
            "`lock` and `unlock` requests sent",
        ));
    }
    if env.redis_url.is_some() {
        rows.push(row(
            REDIS,
            "`SET NX PX` every 250 ms + up to 25 ms of jitter",
            "`SET NX` and compare-and-delete commands sent",
        ));
    }
    // Flushed before any batch starts: it sees every write of every batch.
    let mut tap = WriteTap::open(&env.nats_url).await?;
    for &n in &plan.waiters {
        eprintln!("  w2: {n} waiters");
        let parties = n + 1;
        let mut managers = Vec::with_capacity(parties);
        let mut raws: Vec<RawKv> = Vec::with_capacity(parties);
        for _ in 0..parties {
            managers.push(env.manager().await?);
            raws.push(env.raw().await?);
        }
        let nlock = Rc::new(Nlock { managers });
        let raw = Rc::new(RawWatch::new(raws.clone(), env.value.clone()));
        let poll = Rc::new(GoAlgorithm::new(raws, env.value.clone()));
        #[cfg(feature = "etcd")]
        let etcd = match &env.etcd_url {
            Some(url) => Some(Rc::new(crate::peers::Etcd::connect(url, parties).await?)),
            None => None,
        };
        let redis = match &env.redis_url {
            Some(url) => Some(Rc::new(crate::peers::Redis::connect(url, parties).await?)),
            None => None,
        };
        let spec =
            |key: String, rounds: usize, random_settle: Duration, drain: bool| batch::Batch {
                parties,
                key,
                rounds,
                random_settle,
                drain,
            };
        let mut s: HashMap<&'static str, Cell> = HashMap::new();
        for b in 0..plan.batches {
            // Rotate who goes first.
            for turn in 0..3 {
                match (b + turn) % 3 {
                    0 => {
                        let key = format!("w2.nlock.{n}.{b}");
                        let spec = spec(key, plan.rounds, RANDOM_SETTLE, false);
                        batch(&nlock, &mut s, NLOCK, spec, &mut tap).await?
                    }
                    1 => {
                        let key = format!("w2.raw.{n}.{b}");
                        let spec = spec(key, plan.rounds, RANDOM_SETTLE, false);
                        batch(&raw, &mut s, RAW, spec, &mut tap).await?
                    }
                    _ => {
                        #[cfg(feature = "etcd")]
                        if let Some(e) = &etcd {
                            let key = format!("w2.etcd.{n}.{b}");
                            let spec = spec(key.clone(), plan.rounds, RANDOM_SETTLE, true);
                            if let Err(err) = batch(e, &mut s, ETCD, spec, &mut tap).await {
                                let keys = e.dump(&key).await;
                                return Err(err.context(format!("etcd keys under {key}:\n{keys}")));
                            }
                            // Cancelled waiters may have left keys in the server.
                            e.renew_leases().await?;
                        }
                    }
                }
            }
        }
        for b in 0..plan.poll_batches {
            let key = format!("w2.go.{n}.{b}");
            let go = spec(key, plan.poll_rounds, RANDOM_SETTLE_POLL, false);
            batch(&poll, &mut s, POLL, go, &mut tap).await?;
            if let Some(r) = &redis {
                let key = format!("w2.redis.{n}.{b}");
                let spec = spec(key, plan.poll_rounds, RANDOM_SETTLE_POLL, false);
                batch(r, &mut s, REDIS, spec, &mut tap).await?;
            }
        }
        for row in &mut rows {
            let cell = s.remove(row.name).unwrap_or_default();
            row.by_waiters.push(cell.lat);
            row.counts.push(cell.counts);
        }
        for m in &nlock.managers {
            m.shutdown().await;
        }
    }
    Ok(rows)
}
