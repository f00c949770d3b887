//! Workload 5: many held locks with keep-alive, in one process. Each (variant, count) runs in
//! its own child process (this binary, as `hold`), so that its RSS holds nothing but what
//! that variant needs: resident memory and live heap are read before the locks are taken and
//! after they are held, and the difference is divided by the count.
//!
//! Variants, all refreshing every TTL/3 = 10 s with a compare-and-set on the lock's revision:
//! - `nlock`: `LockManager::acquire`, the handles kept in a `Vec`.
//! - `nlock-nofollow`: the same with `follow_changes(false)`: no change consumer, so the
//!   difference to `nlock` is what following the bucket's changes costs.
//! - `task`: a plain tokio task per lock, sleeping and refreshing in a loop.
//! - `timer`: one task for all locks, a queue of due times and one small record per lock.

use std::cell::Cell;
use std::collections::VecDeque;
use std::process::Stdio;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::alloc;
use crate::contenders::RawKv;
use crate::stats::{process_cpu, rss_bytes};
use crate::Env;

pub const VARIANTS: [&str; 4] = ["nlock", NOFOLLOW, "task", "timer"];
/// nlock with `follow_changes(false)`.
pub const NOFOLLOW: &str = "nlock-nofollow";
/// nlock's default: refresh every TTL/3.
const TTL: Duration = nlock::config::DEFAULT_TTL;
const IN_FLIGHT: usize = 64;
/// Time for the allocator and the runtime to settle after the locks are taken.
const SETTLE: Duration = Duration::from_secs(2);

/// What a `hold` child reports.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub variant: String,
    pub n: usize,
    pub acquire: Duration,
    pub hold: Duration,
    pub rss_before: u64,
    pub rss_held: u64,
    pub rss_end: u64,
    pub heap_before: i64,
    pub heap_held: i64,
    pub allocs_added: i64,
    pub cpu_hold: Duration,
    /// Stream writes during the hold: the refreshes that were made.
    pub refreshes: u64,
    pub lost: u64,
    /// Live allocations added, by size: (size, count added, bytes added).
    pub grown: Vec<(usize, i64, i64)>,
    /// nats-server CPU during the hold (measured by the parent).
    pub server_cpu_hold: Duration,
    /// Consumers on the bucket's stream during the hold (server's count).
    pub consumers: u64,
    /// Messages the stream's consumers delivered during the hold (only those at its end:
    /// a consumer that was replaced during the hold takes its count with it).
    pub delivered: u64,
    /// Consumers at the end of the hold that were not there at its start: an ordered
    /// consumer that was recreated (a gap or missed heartbeats) shows here.
    pub consumers_new: u64,
}

impl Report {
    pub fn rss_per_lock(&self) -> f64 {
        (self.rss_held as f64 - self.rss_before as f64) / self.n as f64
    }
    pub fn rss_end_per_lock(&self) -> f64 {
        (self.rss_end as f64 - self.rss_before as f64) / self.n as f64
    }
    pub fn heap_per_lock(&self) -> f64 {
        (self.heap_held - self.heap_before) as f64 / self.n as f64
    }
    pub fn expected_refreshes(&self) -> f64 {
        self.n as f64 * self.hold.as_secs_f64()
            / (TTL / nlock::config::DEFAULT_KEEP_ALIVE_FACTOR).as_secs_f64()
    }
}

/// The bucket and TTL of every variant; `follow`: the manager follows the bucket's changes.
pub fn config(bucket: &str, follow: bool) -> Result<nlock::Config> {
    Ok(nlock::Config::builder()
        .bucket(bucket)
        // The bench's own fresh servers: no earlier holders; measure the steady state.
        .restart_grace(false)
        .ttl(TTL)
        .follow_changes(follow)
        .build()?)
}

struct Snap {
    rss: u64,
    heap: alloc::Snapshot,
}

fn snap() -> Snap {
    Snap {
        rss: rss_bytes(),
        heap: alloc::snapshot(),
    }
}

async fn last_seq(raw: &RawKv, bucket: &str) -> Result<u64> {
    let mut stream = raw.js.get_stream(format!("KV_{bucket}")).await?;
    Ok(stream.info().await?.state.last_sequence)
}

/// The stream's consumers and how many messages each has delivered so far, by name.
async fn consumers(raw: &RawKv, bucket: &str) -> Result<Vec<(String, u64)>> {
    let stream = raw.js.get_stream(format!("KV_{bucket}")).await?;
    let infos: Vec<_> = stream.consumers().try_collect().await?;
    Ok(infos
        .into_iter()
        .map(|c| (c.name, c.delivered.consumer_sequence))
        .collect())
}

/// Messages delivered between two [`consumers`] readings; a consumer that was created in
/// between (an ordered consumer reopened) counts from 0.
fn delivered_between(before: &[(String, u64)], after: &[(String, u64)]) -> u64 {
    after
        .iter()
        .map(|(name, n)| {
            let n0 = before
                .iter()
                .find(|(b, _)| b == name)
                .map_or(0, |(_, n0)| *n0);
            n.saturating_sub(n0)
        })
        .sum()
}

fn key(i: usize) -> String {
    format!("held.{i}")
}

/// The child process: takes `n` locks the `variant` way, holds them `hold`, prints a JSON
/// report, and exits without releasing (the parent deletes the bucket).
pub async fn child(variant: &str, url: &str, bucket: &str, n: usize, hold: Duration) -> Result<()> {
    // nlock opens (or creates) the bucket, so every variant's stream has the same settings.
    // Only the `nlock` variant follows the bucket's changes (one consumer per manager).
    let manager = nlock::LockManager::connect(url, config(bucket, variant == "nlock")?).await?;
    let info = RawKv::open(url, bucket).await?;
    let value = lock_value();
    let refresh_every = TTL / nlock::config::DEFAULT_KEEP_ALIVE_FACTOR;
    let lost: Rc<Cell<u64>> = Rc::default();
    let lost_tasks = Arc::new(AtomicU64::new(0));
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let before;
    let t0;
    let mut nlock_handles: Vec<nlock::LockHandle> = Vec::new();
    match variant {
        "nlock" | NOFOLLOW => {
            let m = manager;
            m.acquire("warm", None).await?.release().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            before = snap();
            t0 = Instant::now();
            nlock_handles = futures::stream::iter(0..n)
                .map(|i| {
                    let m = m.clone();
                    async move { m.acquire(&key(i), None).await }
                })
                .buffer_unordered(IN_FLIGHT)
                .try_collect()
                .await?;
            keep.push(Box::new(m));
        }
        "task" => {
            manager.shutdown().await;
            let raw = RawKv::open(url, bucket).await?;
            let kv = Arc::new(raw.kv.clone());
            kv.create("warm", value.clone()).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            before = snap();
            t0 = Instant::now();
            let tasks: Vec<tokio::task::JoinHandle<()>> = futures::stream::iter(0..n)
                .map(|i| {
                    let kv = kv.clone();
                    async move {
                        let value = lock_value();
                        kv.update(key(i), value.clone(), 0)
                            .await
                            .map(|rev| (i, rev, value))
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .map_ok(|(i, rev, value)| {
                    let (kv, lost) = (kv.clone(), lost_tasks.clone());
                    tokio::spawn(async move {
                        let key = key(i);
                        let mut rev = rev;
                        loop {
                            tokio::time::sleep(refresh_every).await;
                            match kv.update(&key, value.clone(), rev).await {
                                Ok(r) => rev = r,
                                Err(_) => {
                                    lost.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            }
                        }
                    })
                })
                .try_collect()
                .await?;
            keep.push(Box::new(tasks));
        }
        "timer" => {
            manager.shutdown().await;
            let raw = RawKv::open(url, bucket).await?;
            let kv = Rc::new(raw.kv.clone());
            kv.create("warm", value.clone()).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            before = snap();
            t0 = Instant::now();
            let mut acquired: Vec<(usize, u64, Instant, Bytes)> = futures::stream::iter(0..n)
                .map(|i| {
                    let kv = kv.clone();
                    async move {
                        let value = lock_value();
                        let sent = Instant::now();
                        kv.update(key(i), value.clone(), 0)
                            .await
                            .map(|rev| (i, rev, sent, value))
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .try_collect()
                .await?;
            acquired.sort_by_key(|(_, _, sent, _)| *sent);
            let mut locks: Vec<Held> = Vec::with_capacity(n);
            let mut due: VecDeque<(Instant, u32)> = VecDeque::with_capacity(n);
            for (i, rev, sent, value) in acquired {
                due.push_back((sent + refresh_every, locks.len() as u32));
                locks.push(Held {
                    key: key(i).into_boxed_str(),
                    value,
                    rev,
                });
            }
            let task = actix::spawn(shared_timer(kv, locks, due, refresh_every, lost.clone()));
            keep.push(Box::new(task));
        }
        other => bail!("unknown variant {other}"),
    }
    let acquire = t0.elapsed();
    tokio::time::sleep(SETTLE).await;
    let held = snap();
    println!("holding");
    let seq0 = last_seq(&info, bucket).await?;
    let consumers0 = consumers(&info, bucket).await?;
    let cpu0 = process_cpu();
    let h0 = Instant::now();
    tokio::time::sleep(hold).await;
    let cpu_hold = process_cpu() - cpu0;
    let hold = h0.elapsed();
    let seq1 = last_seq(&info, bucket).await?;
    let consumers1 = consumers(&info, bucket).await?;
    let end = snap();
    let lost = match variant {
        "nlock" | NOFOLLOW => nlock_handles.iter().filter(|h| !h.is_held()).count() as u64,
        "task" => lost_tasks.load(Ordering::Relaxed),
        _ => lost.get(),
    };
    let grown = held.heap.grown_since(&before.heap, 14);
    let report = json!({
        "variant": variant,
        "n": n,
        "acquire_s": acquire.as_secs_f64(),
        "hold_s": hold.as_secs_f64(),
        "rss_before": before.rss,
        "rss_held": held.rss,
        "rss_end": end.rss,
        "heap_before": before.heap.live_bytes,
        "heap_held": held.heap.live_bytes,
        "heap_end": end.heap.live_bytes,
        "allocs_added": held.heap.live_allocs - before.heap.live_allocs,
        "cpu_hold_s": cpu_hold.as_secs_f64(),
        "refreshes": seq1.saturating_sub(seq0),
        "lost": lost,
        "consumers": consumers1.len(),
        "delivered": delivered_between(&consumers0, &consumers1),
        "consumers_new": consumers1
            .iter()
            .filter(|(name, _)| !consumers0.iter().any(|(n0, _)| n0 == name))
            .count(),
        "grown": grown,
    });
    println!("{report}");
    drop(keep);
    // Leave without releasing: 100k deletes would only slow the run down.
    std::process::exit(0);
}

/// One lock's record in the shared-timer baseline.
struct Held {
    key: Box<str>,
    value: Bytes,
    rev: u64,
}

/// A lock value like nlock's (a JSON holder record with a tenure id), one per lock, so the
/// baselines carry what nlock carries.
fn lock_value() -> Bytes {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Bytes::from(format!(
        r#"{{"owner":"{:032x}","host":"bench","pid":{},"acquired_at_ms":{ms},"tenure":"{:032x}"}}"#,
        rand::random::<u128>(),
        std::process::id(),
        rand::random::<u128>(),
    ))
}

/// The shared-timer baseline: every lock has the same interval, so a FIFO of due times is
/// in order; at most 256 refreshes are in flight.
async fn shared_timer(
    kv: Rc<kv::Store>,
    mut locks: Vec<Held>,
    mut due: VecDeque<(Instant, u32)>,
    every: Duration,
    lost: Rc<Cell<u64>>,
) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        let now = Instant::now();
        while in_flight.len() < 256 && due.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, idx)) = due.pop_front() else {
                break;
            };
            let lock = &locks[idx as usize];
            let (kv, key, value, rev) =
                (kv.clone(), lock.key.clone(), lock.value.clone(), lock.rev);
            in_flight.push(async move {
                let sent = Instant::now();
                (idx, sent, kv.update(&*key, value, rev).await)
            });
        }
        let next_due = due.front().map(|(t, _)| *t);
        tokio::select! {
            Some((idx, sent, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(rev) => {
                        locks[idx as usize].rev = rev;
                        due.push_back((sent + every, idx));
                    }
                    Err(_) => lost.set(lost.get() + 1),
                }
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or(now + every).into()),
                if in_flight.len() < 256 => {}
        }
    }
}

/// The parent: one child per (count, variant), `variants` (some of [`VARIANTS`]) in rotating
/// order per count.
pub async fn run(
    env: &Env,
    sizes: &[usize],
    variants: &[&str],
    hold_for: impl Fn(&str, usize) -> Duration,
) -> Result<Vec<Report>> {
    let exe = std::env::current_exe()?;
    let mut out = Vec::new();
    for (si, &n) in sizes.iter().enumerate() {
        for turn in 0..variants.len() {
            let variant = variants[(si + turn) % variants.len()];
            let hold = hold_for(variant, n);
            eprintln!("  w5: {variant}, {n} locks, held {hold:?}");
            let bucket = format!("bench_hold_{variant}_{n}");
            // nlock creates the bucket, so every variant's stream has the same settings; this
            // manager does not follow changes, so it leaves no consumer behind.
            let m = nlock::LockManager::connect(&env.nats_url, config(&bucket, false)?).await?;
            m.shutdown().await;
            let mut child = tokio::process::Command::new(&exe)
                .arg("hold")
                .args([variant, env.nats_url.as_str(), bucket.as_str()])
                .arg(n.to_string())
                .arg(hold.as_secs().to_string())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| anyhow!("no child stdout"))?;
            let mut lines = BufReader::new(stdout).lines();
            let limit = hold + Duration::from_secs(300);
            let started = Instant::now();
            let mut server_cpu0 = None;
            let mut report = None;
            while let Some(line) =
                tokio::time::timeout(limit.saturating_sub(started.elapsed()), lines.next_line())
                    .await
                    .context("hold child took too long")??
            {
                if line == "holding" {
                    server_cpu0 = Some(crate::servers::process_cpu_precise(env.nats_pid)?);
                } else if line.starts_with('{') {
                    let server_cpu = crate::servers::process_cpu_precise(env.nats_pid)?
                        .saturating_sub(server_cpu0.unwrap_or_default());
                    report = Some(parse_report(&line, server_cpu)?);
                }
            }
            child.wait().await?;
            let report =
                report.ok_or_else(|| anyhow!("hold child ({variant}, {n}) sent no report"))?;
            out.push(report);
            let raw = env.raw().await?;
            raw.js.delete_stream(format!("KV_{bucket}")).await?;
        }
    }
    Ok(out)
}

fn parse_report(line: &str, server_cpu_hold: Duration) -> Result<Report> {
    let v: serde_json::Value = serde_json::from_str(line)?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    let i = |k: &str| v[k].as_i64().unwrap_or(0);
    Ok(Report {
        variant: v["variant"].as_str().unwrap_or("").to_owned(),
        n: u("n") as usize,
        acquire: Duration::from_secs_f64(f("acquire_s")),
        hold: Duration::from_secs_f64(f("hold_s")),
        rss_before: u("rss_before"),
        rss_held: u("rss_held"),
        rss_end: u("rss_end"),
        heap_before: i("heap_before"),
        heap_held: i("heap_held"),
        allocs_added: i("allocs_added"),
        cpu_hold: Duration::from_secs_f64(f("cpu_hold_s")),
        refreshes: u("refreshes"),
        lost: u("lost"),
        consumers: u("consumers"),
        delivered: u("delivered"),
        consumers_new: u("consumers_new"),
        grown: v["grown"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p[0].as_u64()? as usize, p[1].as_i64()?, p[2].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default(),
        server_cpu_hold,
    })
}
