//! Workload 2: handoff. One party holds the key and N waiters, each on its own connection,
//! wait for it. A round: the holder releases (t0); the first waiter to get the key notes the
//! time (t1) and becomes the holder; the old holder starts waiting again, so N waiters wait
//! in every round; after a short settle (the new waiter opens its watch) the next round.
//!
//! Batches of rounds alternate between contenders, each batch on a fresh key with fresh
//! waiters, so that no contender's idle waiters load the server while another is measured.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use rand::Rng;
use tokio::sync::mpsc;

use crate::contenders::{Contender, GoAlgorithm, Nlock, RawKv, RawWatch};
use crate::stats::Samples;
use crate::Env;

/// A round that takes longer than this is a failure, not a sample. Polling rounds take
/// about 150 ms; 10 s only ends a run that is stuck.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

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
}

pub const NLOCK: &str = "nlock";
pub const RAW: &str = "raw floor";
pub const POLL: &str = "Go algorithm (polling)";
pub const ETCD: &str = "etcd";
pub const REDIS: &str = "Redis (polling)";

/// Settle after a handoff: time for the new waiter to write once and open its watch, and for
/// the losers of the round to read their conflict (growing with the waiter count, since every
/// waiter's compare-and-set goes through the one server), plus a random part. The random part
/// keeps rounds from falling into step with anything periodic: a poller's 250 ms cycle, or
/// etcd's 100 ms loop that catches up new watchers; it is longer than those periods.
fn settle(waiters: usize, random_up_to: Duration) -> Duration {
    let random = rand::rng().random_range(0..=random_up_to.as_micros() as u64);
    Duration::from_millis(5) + Duration::from_micros(250 * waiters as u64 + random)
}

/// The random part of the settle: event-driven contenders, and pollers.
const RANDOM_SETTLE: Duration = Duration::from_millis(100);
const RANDOM_SETTLE_POLL: Duration = Duration::from_millis(300);

async fn batch<C: Contender>(
    c: Rc<C>,
    parties: usize,
    key: &str,
    rounds: usize,
    random_settle: Duration,
    drain: bool,
    out: &mut Samples,
) -> Result<()> {
    let key: Rc<str> = key.into();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spawn_waiter = |p: usize, delay: Duration| {
        let (c, key, tx) = (c.clone(), key.clone(), tx.clone());
        actix::spawn(async move {
            tokio::time::sleep(delay).await;
            let r = c.acquire(p, key).await;
            let _ = tx.send((p, r, Instant::now()));
        })
    };
    let mut holder = 0;
    let mut held = c.acquire(0, key.clone()).await.context("first acquire")?;
    // The first waiters arrive at random moments over one random-settle span, as waiters do;
    // pollers that all started at once would poll in step for many cycles.
    let mut tasks: HashMap<usize, tokio::task::JoinHandle<()>> = (1..parties)
        .map(|p| {
            let delay = rand::rng().random_range(0..=random_settle.as_micros() as u64);
            (p, spawn_waiter(p, Duration::from_micros(delay)))
        })
        .collect();
    tokio::time::sleep(random_settle + settle(parties, random_settle)).await;
    let abort_all = |tasks: &HashMap<usize, tokio::task::JoinHandle<()>>| {
        for t in tasks.values() {
            t.abort();
        }
    };
    for round in 0..rounds {
        let t0 = Instant::now();
        if let Err(e) = c.release(holder, key.clone(), held).await {
            abort_all(&tasks);
            return Err(e.context("release"));
        }
        let next = tokio::time::timeout(ROUND_TIMEOUT, rx.recv()).await;
        let (p, r, t1) = match next {
            Ok(Some(x)) => x,
            _ => {
                abort_all(&tasks);
                return Err(anyhow!(
                    "no waiter got {key} within {ROUND_TIMEOUT:?} (round {round}, holder {holder})"
                ));
            }
        };
        held = match r {
            Ok(h) => h,
            Err(e) => {
                abort_all(&tasks);
                return Err(e.context(format!("waiter {p}")));
            }
        };
        out.push(t1 - t0);
        tasks.remove(&p);
        tasks.insert(holder, spawn_waiter(holder, Duration::ZERO));
        holder = p;
        tokio::time::sleep(settle(parties, random_settle)).await;
    }
    if !drain {
        abort_all(&tasks);
        return c.release(holder, key, held).await;
    }
    // Let every waiter have the key once and give it back: etcd's server keeps a cancelled
    // waiter's watch machinery busy for long enough to stall the next batch's waiters.
    c.release(holder, key.clone(), held).await?;
    for _ in 0..tasks.len() {
        let (p, r, _) = tokio::time::timeout(ROUND_TIMEOUT, rx.recv())
            .await
            .map_err(|_| anyhow!("draining {key}: no waiter got it within {ROUND_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow!("draining {key}: channel closed"))?;
        c.release(p, key.clone(), r?).await?;
    }
    Ok(())
}

pub async fn run(env: &Env, plan: &Plan) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = vec![
        Row {
            name: NLOCK,
            what: "`acquire` on N managers (N connections): compare-and-set, then a watch",
            by_waiters: vec![],
        },
        Row {
            name: RAW,
            what: "compare-and-set, then a watch; compare-and-set on each delete marker",
            by_waiters: vec![],
        },
        Row {
            name: POLL,
            what: "`kv.create` every 250 ms + up to 25 ms of jitter",
            by_waiters: vec![],
        },
    ];
    #[cfg(feature = "etcd")]
    if env.etcd_url.is_some() {
        rows.push(Row {
            name: ETCD,
            what: "`lock` with a lease (the server queues waiters in order)",
            by_waiters: vec![],
        });
    }
    if env.redis_url.is_some() {
        rows.push(Row {
            name: REDIS,
            what: "`SET NX PX` every 250 ms + up to 25 ms of jitter",
            by_waiters: vec![],
        });
    }
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
        let raw = Rc::new(RawWatch {
            parties: raws.clone(),
            value: env.value.clone(),
        });
        let poll = Rc::new(GoAlgorithm {
            parties: raws,
            value: env.value.clone(),
        });
        #[cfg(feature = "etcd")]
        let etcd = match &env.etcd_url {
            Some(url) => Some(Rc::new(crate::peers::Etcd::connect(url, parties).await?)),
            None => None,
        };
        let redis = match &env.redis_url {
            Some(url) => Some(Rc::new(crate::peers::Redis::connect(url, parties).await?)),
            None => None,
        };
        let mut s: HashMap<&str, Samples> = HashMap::new();
        for b in 0..plan.batches {
            // Rotate who goes first.
            for turn in 0..3 {
                match (b + turn) % 3 {
                    0 => {
                        let out = s.entry(NLOCK).or_default();
                        batch(
                            nlock.clone(),
                            parties,
                            &format!("w2.nlock.{n}.{b}"),
                            plan.rounds,
                            RANDOM_SETTLE,
                            false,
                            out,
                        )
                        .await?
                    }
                    1 => {
                        let out = s.entry(RAW).or_default();
                        batch(
                            raw.clone(),
                            parties,
                            &format!("w2.raw.{n}.{b}"),
                            plan.rounds,
                            RANDOM_SETTLE,
                            false,
                            out,
                        )
                        .await?
                    }
                    _ => {
                        #[cfg(feature = "etcd")]
                        if let Some(e) = &etcd {
                            let out = s.entry(ETCD).or_default();
                            let key = format!("w2.etcd.{n}.{b}");
                            let r = batch(
                                e.clone(),
                                parties,
                                &key,
                                plan.rounds,
                                RANDOM_SETTLE,
                                true,
                                out,
                            )
                            .await;
                            if let Err(err) = r {
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
            let out = s.entry(POLL).or_default();
            batch(
                poll.clone(),
                parties,
                &format!("w2.go.{n}.{b}"),
                plan.poll_rounds,
                RANDOM_SETTLE_POLL,
                false,
                out,
            )
            .await?;
            if let Some(r) = &redis {
                let out = s.entry(REDIS).or_default();
                let key = format!("w2.redis.{n}.{b}");
                batch(
                    r.clone(),
                    parties,
                    &key,
                    plan.poll_rounds,
                    RANDOM_SETTLE_POLL,
                    false,
                    out,
                )
                .await?;
            }
        }
        for row in &mut rows {
            row.by_waiters.push(s.remove(row.name).unwrap_or_default());
        }
        for m in &nlock.managers {
            m.shutdown().await;
        }
    }
    Ok(rows)
}
