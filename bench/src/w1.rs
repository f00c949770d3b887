//! Workload 1: acquire + release of one key, sequential, memory storage. Every contender
//! runs one cycle per iteration, in an order that rotates each iteration, so that all of
//! them see the same server and machine state.

use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::seq::SliceRandom;

use crate::contenders::{Contender, GoAlgorithm, LocalFut, Nlock, RawDirect};
use crate::stats::{thread_cpu, thread_write_syscalls, Samples};
use crate::Env;

pub struct Row {
    pub name: &'static str,
    pub what: &'static str,
    pub samples: Samples,
}

type Cycle = Box<dyn Fn() -> LocalFut<()>>;

/// One acquire and one release of `key` by party 0.
fn cycle<C: Contender>(c: Rc<C>, key: &str) -> Cycle {
    let key: Rc<str> = key.into();
    Box::new(move || {
        let (c, key) = (c.clone(), key.clone());
        Box::pin(async move {
            let held = c.acquire(0, key.clone()).await?;
            c.release(0, key, held).await
        })
    })
}

/// A manager whose metrics go to a Prometheus recorder: it registers its bucket's series
/// while the switch is on; every other manager registers them with it off (no-op handles,
/// as with no recorder installed).
async fn metered_manager(env: &Env) -> Result<nlock::LockManager> {
    let switch = crate::metrics_switch::Switch::get();
    switch.set(true);
    let manager = env.manager().await;
    switch.set(false);
    manager
}

/// The name of the row of nlock with metrics recorded (Prometheus).
pub const WITH_METRICS: &str = "nlock + Prometheus";

/// `idle`: a pause before every cycle (None: cycles back to back).
pub async fn run(
    env: &Env,
    warmup: usize,
    iterations: usize,
    idle: Option<Duration>,
) -> Result<Vec<Row>> {
    // Each run on keys of its own: a fresh contender knows no marker revisions.
    let tag = if idle.is_some() { "idle" } else { "b2b" };
    let mut list: Vec<(&'static str, &'static str, Cycle)> = vec![
        (
            "nlock",
            "`acquire` + `release` (one compare-and-set on the remembered marker, one delete)",
            cycle(
                Rc::new(Nlock {
                    managers: vec![env.manager().await?],
                }),
                &format!("w1.{tag}.nlock"),
            ),
        ),
        (
            WITH_METRICS,
            "nlock's cycle with its metrics recorded (metrics-exporter-prometheus's recorder; \
             the other rows' managers have no-op handles, as with no recorder)",
            cycle(
                Rc::new(Nlock {
                    managers: vec![metered_manager(env).await?],
                }),
                &format!("w1.{tag}.nlockm"),
            ),
        ),
        (
            "raw floor",
            "`kv.update(key, v, marker_rev)` + delete expecting the revision",
            cycle(
                Rc::new(RawDirect::new(vec![env.raw().await?], env.value.clone())),
                &format!("w1.{tag}.raw"),
            ),
        ),
        (
            "raw floor + Nats-TTL",
            "the raw floor, its update also carrying `Nats-TTL: 30s` as nlock's does (diagnostic)",
            cycle(
                Rc::new(RawDirect::with_ttl(
                    vec![env.raw().await?],
                    env.value.clone(),
                    nlock::config::DEFAULT_TTL,
                )),
                &format!("w1.{tag}.rawttl"),
            ),
        ),
        (
            "Go algorithm",
            "`kv.create` + `kv.delete_expect_revision`",
            cycle(
                Rc::new(GoAlgorithm::new(vec![env.raw().await?], env.value.clone())),
                &format!("w1.{tag}.go"),
            ),
        ),
    ];
    #[cfg(feature = "etcd")]
    if let Some(url) = &env.etcd_url {
        let etcd = crate::peers::Etcd::connect(url, 1).await?;
        list.push((
            "etcd",
            "`lock` with a lease + `unlock`",
            cycle(Rc::new(etcd), &format!("w1.{tag}.etcd")),
        ));
    }
    if let Some(url) = &env.redis_url {
        let redis = crate::peers::Redis::connect(url, 1).await?;
        list.push((
            "Redis",
            "`SET NX PX` + compare-and-delete script",
            cycle(Rc::new(redis), &format!("w1.{tag}.redis")),
        ));
    }
    let k = list.len();
    let mut samples = vec![Samples::default(); k];
    let mut order: Vec<usize> = (0..k).collect();
    for i in 0..warmup + iterations {
        // A fresh random order every iteration: each contender follows each other equally
        // often, so leftover work of one (its stopping tasks, a peer client's background
        // frames) does not always land on the same neighbour.
        order.shuffle(&mut rand::rng());
        for &idx in &order {
            if let Some(idle) = idle {
                tokio::time::sleep(idle).await;
            }
            // Read outside the timed part (reading the file makes no write syscall).
            let w0 = thread_write_syscalls();
            let t0 = Instant::now();
            let c0 = thread_cpu();
            (list[idx].2)().await?;
            let cpu = thread_cpu() - c0;
            let w1 = thread_write_syscalls();
            let d = t0.elapsed();
            if i >= warmup {
                samples[idx].push(d);
                samples[idx].cpu += cpu;
                samples[idx].syscalls_write += w1 - w0;
            }
        }
    }
    // The "on" row recorded for real: its grants are in what a scrape would show.
    let scrape = crate::metrics_switch::Switch::get().handle().render();
    anyhow::ensure!(
        scrape.contains("nlock_grants_total"),
        "the {WITH_METRICS} row recorded no metrics"
    );
    Ok(list
        .into_iter()
        .zip(samples)
        .map(|((name, what, _), samples)| Row {
            name,
            what,
            samples,
        })
        .collect())
}

/// One contender's cycle in a loop (for profiling); returns the seconds it took.
pub async fn profile(env: &Env, which: &str, iters: usize) -> Result<f64> {
    let c: Cycle = match which {
        "nlock" => cycle(
            Rc::new(Nlock {
                managers: vec![env.manager().await?],
            }),
            "p.nlock",
        ),
        // nlock without its change stream: what following the bucket costs a cycle (the
        // server delivers each write of the cycle to the manager's consumer).
        "nlock-nofollow" => {
            let config = nlock::Config::builder()
                .bucket(crate::BUCKET)
                .restart_grace(false)
                .follow_changes(false)
                .build()?;
            let manager = nlock::LockManager::connect(&env.nats_url, config).await?;
            cycle(
                Rc::new(Nlock {
                    managers: vec![manager],
                }),
                "p.nlock",
            )
        }
        "raw" => cycle(
            Rc::new(RawDirect::new(vec![env.raw().await?], env.value.clone())),
            "p.raw",
        ),
        "rawttl" => cycle(
            Rc::new(RawDirect::with_ttl(
                vec![env.raw().await?],
                env.value.clone(),
                nlock::config::DEFAULT_TTL,
            )),
            "p.rawttl",
        ),
        // Diagnostics for where nlock's extra wake-ups come from: the raw floor with a far
        // timer armed while "held" (as a lock actor's refresh and deadline timers are), and
        // the raw floor with each write run in a spawned task (an actor hop).
        "rawtimer" | "rawhop" => {
            let raw = Rc::new(RawDirect::new(vec![env.raw().await?], env.value.clone()));
            let hop = which == "rawhop";
            let key: Rc<str> = "p.diag".into();
            Box::new(move || {
                let (raw, key) = (raw.clone(), key.clone());
                Box::pin(async move {
                    if hop {
                        let (r2, k2) = (raw.clone(), key.clone());
                        let rev = actix::spawn(async move { r2.acquire(0, k2).await }).await??;
                        let (r2, k2) = (raw.clone(), key.clone());
                        actix::spawn(async move { r2.release(0, k2, rev).await }).await??;
                        return Ok(());
                    }
                    let rev = raw.acquire(0, key.clone()).await?;
                    let mut far = Box::pin(tokio::time::sleep(std::time::Duration::from_secs(10)));
                    let _ = futures::poll!(&mut far);
                    tokio::task::yield_now().await;
                    raw.release(0, key, rev).await?;
                    drop(far);
                    Ok(())
                })
            })
        }
        other => anyhow::bail!("unknown contender {other}"),
    };
    for _ in 0..200 {
        c().await?;
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        c().await?;
    }
    Ok(t0.elapsed().as_secs_f64())
}
