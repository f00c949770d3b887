//! nlock's benchmarks: starts its own servers on loopback, runs the workloads of
//! BENCHMARKS.md interleaved with their baselines, and writes BENCHMARKS.md and its plots.
//!
//! ```text
//! nlock-bench [--quick] [--out FILE] [--only 1,2,3,4,5] [--leadership DIR]
//! ```
//! Run it through `scripts/bench`, which builds it (with etcd when `protoc` is installed) and
//! points it at the pinned nats-server. `--quick` writes to target/bench-quick/ unless
//! `--out` says otherwise, so a smoke run never replaces the committed numbers.
//! `--leadership DIR`: the leadership measurements scripts/bench made (`leadership.rs`);
//! without it the report keeps the previous "## Leadership" section verbatim.
//!
//! Layout: `servers.rs` (child server processes), `contenders/` (nlock, raw async-nats
//! floors, the Go algorithm), `peers.rs` (etcd, Redis), `w1.rs`..`w5.rs` (workloads),
//! `stats.rs`, `alloc.rs` (counting allocator), `svg.rs` (plots), `tap.rs` (writes seen on
//! the wire), `report/` (markdown).
//!
//! Two internal subcommands are child processes of a run: `hold` (workload 5) and
//! `takeover-holder` (workload 3).
//!
//! Development aids (environment): `BENCH_W2_WAITERS=1,4` (workload 2's waiter counts);
//! `BENCH_W5_SIZES=10000`, `BENCH_W5_VARIANTS=nlock,nlock-nofollow` and `BENCH_W5_HOLD_S=45`
//! (workload 5's counts, variants and one hold time for all).

mod alloc;
mod analysis;
mod cli;
mod contenders;
mod leadership;
mod metrics_switch;
mod peers;
mod report;
mod results;
mod servers;
mod stats;
mod svg;
mod tap;
mod w1;
mod w2;
mod w3;
mod w4;
mod w5;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;

use crate::contenders::RawKv;

/// How long workload 5 holds `n` locks of one variant.
type HoldFor = fn(&str, usize) -> Duration;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// What every workload needs: where the servers are, and the lock value nlock writes.
pub struct Env {
    pub nats_url: String,
    pub nats_pid: u32,
    pub value: Bytes,
    pub etcd_url: Option<String>,
    pub redis_url: Option<String>,
}

/// The bucket of workloads 1, 2 and 4: nlock's defaults (memory storage, TTL 30 s, limit
/// markers); nlock creates it, and the raw contenders use it too.
pub const BUCKET: &str = "bench";

impl Env {
    pub fn config(&self) -> Result<nlock::Config> {
        Ok(nlock::Config::builder()
            .bucket(BUCKET)
            // The bench's own fresh servers: no earlier holders; measure the steady state.
            .restart_grace(false)
            .build()?)
    }

    /// An nlock manager on its own connection.
    pub async fn manager(&self) -> Result<nlock::LockManager> {
        Ok(nlock::LockManager::connect(&self.nats_url, self.config()?).await?)
    }

    /// A raw async-nats client on its own connection.
    pub async fn raw(&self) -> Result<RawKv> {
        RawKv::open(&self.nats_url, BUCKET).await
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("hold") => {
            // Count heap from the first allocation on: this process exists to be measured.
            alloc::enable();
            let [_, variant, url, bucket, n, secs] = args.as_slice() else {
                bail!("hold VARIANT URL BUCKET N SECS");
            };
            let (n, secs) = (n.parse()?, secs.parse()?);
            actix::System::new().block_on(w5::child(
                variant,
                url,
                bucket,
                n,
                Duration::from_secs(secs),
            ))
        }
        Some("profile") => {
            // One contender of workload 1 in a loop, for `perf record`: see BENCHMARKS.md.
            let [_, which, iters] = args.as_slice() else {
                bail!("profile nlock|nlock-nofollow|raw|rawttl ITERATIONS");
            };
            let iters: usize = iters.parse()?;
            actix::System::new().block_on(profile(which.clone(), iters))
        }
        Some("takeover-holder") => {
            let [_, url, key] = args.as_slice() else {
                bail!("takeover-holder URL KEY");
            };
            actix::System::new().block_on(w3::holder(url, key))
        }
        _ => {
            let opts = cli::parse_args(&args)?;
            actix::System::new().block_on(run(opts))
        }
    }
}

async fn profile(which: String, iters: usize) -> Result<()> {
    let nats_bin = servers::find_bin(
        "NATS_SERVER_BIN",
        "nats-server",
        &[Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.tools/nats-server-2.15.1/bin/nats-server")],
    )
    .ok_or_else(|| anyhow!("nats-server not found"))?;
    let nats = servers::start_nats(&nats_bin)?;
    let mut env = Env {
        nats_url: nats.url.clone(),
        nats_pid: nats.pid(),
        value: Bytes::from_static(&[b'x'; 141]),
        etcd_url: None,
        redis_url: None,
    };
    env.manager().await?.shutdown().await;
    env.value = Bytes::from(vec![b'x'; 141]);
    if which.starts_with("w4") {
        let rate = w4::profile(&env, &which, iters).await?;
        eprintln!("{which}: {rate:.0} cycles/s");
        return Ok(());
    }
    let secs = w1::profile(&env, &which, iters).await?;
    eprintln!(
        "{which}: {iters} cycles in {secs:.2} s ({:.1} µs per cycle)",
        secs * 1e6 / iters as f64
    );
    Ok(())
}

/// A peer that could not run, and why, with how to install it.
fn peer_bin(
    env_var: &str,
    name: &str,
    package: &str,
    skipped: &mut Vec<String>,
) -> Option<PathBuf> {
    let bin = servers::find_bin(env_var, name, &[PathBuf::from(format!("/usr/bin/{name}"))]);
    if bin.is_none() {
        skipped.push(format!(
            "{name}: not installed, skipped. Install it with `apt-get install {package}` \
             (Debian) or set {env_var}."
        ));
    }
    bin
}

async fn run(opts: cli::Options) -> Result<()> {
    let started = Instant::now();
    let started_at = report::now_utc();
    let mut skipped = Vec::new();
    let nats_bin = servers::find_bin(
        "NATS_SERVER_BIN",
        "nats-server",
        &[Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.tools/nats-server-2.15.1/bin/nats-server")],
    )
    .ok_or_else(|| anyhow!("nats-server not found: run scripts/install-nats-server"))?;
    let nats = servers::start_nats(&nats_bin)?;
    eprintln!("nats-server {} at {}", nats.version, nats.url);
    let redis = match peer_bin("REDIS_BIN", "redis-server", "redis-server", &mut skipped) {
        Some(bin) => Some(servers::start_redis(&bin)?),
        None => None,
    };
    let etcd = if cfg!(feature = "etcd") {
        match peer_bin("ETCD_BIN", "etcd", "etcd-server", &mut skipped) {
            Some(bin) => Some(servers::start_etcd(&bin)?),
            None => None,
        }
    } else {
        skipped.push(
            "etcd: the `etcd-client` crate was not built, skipped. Its build needs `protoc`: \
             `apt-get install protobuf-compiler` (Debian), then rerun scripts/bench (it turns \
             on the `etcd` feature when protoc is there); the server is `apt-get install \
             etcd-server`."
                .into(),
        );
        None
    };
    let mut env = Env {
        nats_url: nats.url.clone(),
        nats_pid: nats.pid(),
        value: Bytes::new(),
        etcd_url: etcd.as_ref().map(|s| s.url.clone()),
        redis_url: redis.as_ref().map(|s| s.url.clone()),
    };
    // nlock creates the bucket; its own lock value is what every NATS contender writes.
    let m = env.manager().await?;
    let caps = m.capabilities().clone();
    m.acquire("value.probe", None).await?.release().await?;
    let h = m.acquire("value.probe", None).await?;
    let raw = env.raw().await?;
    env.value = raw
        .kv
        .get("value.probe")
        .await?
        .ok_or_else(|| anyhow!("no value under value.probe"))?;
    h.release().await?;
    m.shutdown().await;

    let quick = opts.quick;
    let mut results = report::Results {
        quick,
        started_at,
        load_start: report::loadavg(),
        caps: Some(caps),
        value_len: env.value.len(),
        servers: [Some(&nats), etcd.as_ref(), redis.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| (s.name.to_owned(), s.version.clone(), s.flags.join(" ")))
            .collect(),
        skipped,
        leadership: opts
            .leadership
            .as_deref()
            .map(leadership::read)
            .transpose()?,
        ..Default::default()
    };
    if opts.only.contains(&1) {
        let (warmup, iters) = if quick { (50, 300) } else { (300, 3000) };
        eprintln!("workload 1: {iters} iterations after {warmup} warm-up");
        results.w1 = Some((warmup, iters, w1::run(&env, warmup, iters, None).await?));
        // The same with 1 ms of idle before every cycle: a client that does other work
        // between locks starts each cycle from a parked runtime.
        let (warmup, iters) = if quick { (20, 100) } else { (100, 1000) };
        eprintln!("workload 1, 1 ms idle before each cycle: {iters} iterations");
        let idle = Some(Duration::from_millis(1));
        results.w1_idle = Some((warmup, iters, w1::run(&env, warmup, iters, idle).await?));
    }
    if opts.only.contains(&2) {
        let plan = if quick {
            w2::Plan {
                waiters: vec![1, 4, 16, 64],
                batches: 2,
                rounds: 15,
                poll_batches: 1,
                poll_rounds: 6,
            }
        } else {
            w2::Plan {
                waiters: vec![1, 4, 16, 64],
                batches: 5,
                rounds: 30,
                poll_batches: 3,
                poll_rounds: 8,
            }
        };
        let mut plan = plan;
        if let Ok(w) = std::env::var("BENCH_W2_WAITERS") {
            // Development aid: only these waiter counts.
            plan.waiters = w.split(',').filter_map(|n| n.trim().parse().ok()).collect();
        }
        eprintln!("workload 2");
        let rows = w2::run(&env, &plan).await?;
        results.w2 = Some((plan, rows));
    }
    if opts.only.contains(&3) {
        let trials = if quick { 8 } else { 40 };
        eprintln!("workload 3: {trials} trials");
        results.w3 = Some(w3::run(&env, trials).await?);
    }
    if opts.only.contains(&4) {
        let (batches, ops) = if quick { (2, 24) } else { (6, 64) };
        eprintln!(
            "workload 4: {batches} batches of {} operations per contender",
            ops * w4::IN_FLIGHT
        );
        results.w4 = Some((batches, ops, w4::run(&env, batches, ops).await?));
    }
    if opts.only.contains(&5) {
        // The issue asks for 3 minutes of holding; that is kept for nlock at 100k, the case the
        // loss check matters most for, with and without following the bucket's changes (the
        // two are compared, so they hold equally long). Everything else holds for 2.5 to 4.5
        // refresh periods, which is enough to measure memory and refresh CPU, so the run stays
        // near 18 minutes.
        let (sizes, hold): (Vec<usize>, HoldFor) = if quick {
            (vec![1_000, 10_000], |_, _| Duration::from_secs(11))
        } else {
            (vec![1_000, 10_000, 100_000], |variant, n| {
                Duration::from_secs(match (variant, n >= 100_000) {
                    ("nlock" | w5::NOFOLLOW, true) => 180,
                    (_, true) => 45,
                    _ => 25,
                })
            })
        };
        // Development aids: only these counts, only these variants, and one hold for all.
        let list = |var: &str| std::env::var(var).ok().map(|v| v.trim().to_owned());
        let mut sizes = sizes;
        if let Some(v) = list("BENCH_W5_SIZES") {
            sizes = v.split(',').filter_map(|n| n.trim().parse().ok()).collect();
        }
        let variants: Vec<&str> = match list("BENCH_W5_VARIANTS") {
            Some(v) => w5::VARIANTS
                .into_iter()
                .filter(|w| v.split(',').any(|x| x.trim() == *w))
                .collect(),
            None => w5::VARIANTS.to_vec(),
        };
        let hold_s: Option<u64> = list("BENCH_W5_HOLD_S").and_then(|v| v.parse().ok());
        let hold =
            move |variant: &str, n| hold_s.map_or_else(|| hold(variant, n), Duration::from_secs);
        eprintln!("workload 5: {sizes:?} held locks, {variants:?}");
        results.w5 = Some(w5::run(&env, &sizes, &variants, hold).await?);
    }
    results.elapsed = started.elapsed();
    results.load_end = report::loadavg();
    report::write(&opts.out, &results)?;
    eprintln!(
        "wrote {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    drop((nats, etcd, redis));
    Ok(())
}
