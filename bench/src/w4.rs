//! Workload 4: acquire + release over many keys, 64 in flight, in one process, on one
//! connection (nlock: one manager; the raw floor: one client; etcd: one channel; Redis: one
//! multiplexed connection). Each of the 64 tasks cycles through its own keys, so there is no
//! contention, only pipelining. Batches alternate between contenders.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::contenders::{Contender, Nlock, RawDirect};
use crate::stats::{thread_cpu, Samples};
use crate::Env;

pub const IN_FLIGHT: usize = 64;
/// Keys per task: 64 x 16 = 1024 keys in all.
pub const KEYS_PER_TASK: usize = 16;

pub struct Row {
    pub name: &'static str,
    pub what: &'static str,
    pub samples: Samples,
}

async fn batch<C: Contender>(
    nats_pid: u32,
    c: Rc<C>,
    prefix: &str,
    ops_per_task: usize,
    out: &mut Samples,
) -> Result<()> {
    let lat = Rc::new(RefCell::new(Vec::with_capacity(IN_FLIGHT * ops_per_task)));
    let t0 = Instant::now();
    let cpu0 = thread_cpu();
    let server0 = crate::servers::process_cpu_precise(nats_pid)?;
    let tasks = (0..IN_FLIGHT).map(|t| {
        let keys: Vec<Rc<str>> = (0..KEYS_PER_TASK)
            .map(|j| Rc::from(format!("{prefix}.{t}.{j}")))
            .collect();
        let (c, lat) = (c.clone(), lat.clone());
        async move {
            for j in 0..ops_per_task {
                let key = keys[j % KEYS_PER_TASK].clone();
                let s = Instant::now();
                let held = c.acquire(0, key.clone()).await?;
                c.release(0, key, held).await?;
                lat.borrow_mut().push(s.elapsed());
            }
            anyhow::Ok(())
        }
    });
    futures::future::try_join_all(tasks).await?;
    out.cpu += thread_cpu() - cpu0;
    out.server_cpu += crate::servers::process_cpu_precise(nats_pid)?.saturating_sub(server0);
    out.wall += t0.elapsed();
    out.ops += (IN_FLIGHT * ops_per_task) as u64;
    out.lat.extend(lat.borrow().iter().copied());
    Ok(())
}

pub async fn run(env: &Env, batches: usize, ops_per_task: usize) -> Result<Vec<Row>> {
    let pid = env.nats_pid;
    let nlock = Rc::new(Nlock {
        managers: vec![env.manager().await?],
    });
    let raw = Rc::new(RawDirect::new(vec![env.raw().await?], env.value.clone()));
    let raw_ttl = Rc::new(RawDirect::with_ttl(
        vec![env.raw().await?],
        env.value.clone(),
        nlock::config::DEFAULT_TTL,
    ));
    #[cfg(feature = "etcd")]
    let etcd = match &env.etcd_url {
        Some(url) => Some(Rc::new(crate::peers::Etcd::connect(url, 1).await?)),
        None => None,
    };
    let redis = match &env.redis_url {
        Some(url) => Some(Rc::new(crate::peers::Redis::connect(url, 1).await?)),
        None => None,
    };
    let mut rows = vec![
        Row {
            name: "nlock",
            what: "`acquire` + `release` on one manager",
            samples: Samples::default(),
        },
        Row {
            name: "raw floor",
            what: "`kv.update(key, v, marker_rev)` + delete expecting the revision, one client",
            samples: Samples::default(),
        },
        Row {
            name: "raw floor + Nats-TTL",
            what: "the raw floor, its update also carrying `Nats-TTL: 30s` as nlock's does (diagnostic)",
            samples: Samples::default(),
        },
        Row {
            name: "etcd",
            what: "`lock` with a lease + `unlock`, one client",
            samples: Samples::default(),
        },
        Row {
            name: "Redis",
            what: "`SET NX PX` + compare-and-delete script, one multiplexed connection",
            samples: Samples::default(),
        },
    ];
    // A first pass over every key, unmeasured: nlock and the raw floor then know each key's
    // marker, as they would in a long-running process.
    let mut warm = Samples::default();
    batch(pid, nlock.clone(), "w4.nlock", KEYS_PER_TASK, &mut warm).await?;
    batch(pid, raw.clone(), "w4.raw", KEYS_PER_TASK, &mut warm).await?;
    batch(pid, raw_ttl.clone(), "w4.rawttl", KEYS_PER_TASK, &mut warm).await?;
    for b in 0..batches {
        for turn in 0..5 {
            let i = (b + turn) % 5;
            let out = &mut rows[i].samples;
            match i {
                0 => batch(pid, nlock.clone(), "w4.nlock", ops_per_task, out).await?,
                1 => batch(pid, raw.clone(), "w4.raw", ops_per_task, out).await?,
                2 => batch(pid, raw_ttl.clone(), "w4.rawttl", ops_per_task, out).await?,
                3 =>
                {
                    #[cfg(feature = "etcd")]
                    if let Some(e) = &etcd {
                        batch(pid, e.clone(), "w4.etcd", ops_per_task, out).await?;
                    }
                }
                _ => {
                    if let Some(r) = &redis {
                        batch(pid, r.clone(), "w4.redis", ops_per_task, out).await?;
                    }
                }
            }
            // A breath between batches: let the previous contender's stragglers settle.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for m in &nlock.managers {
        m.shutdown().await;
    }
    rows.retain(|r| r.samples.ops > 0);
    Ok(rows)
}

/// One contender's pipelined batches in a loop (for profiling); returns cycles per second.
pub async fn profile(env: &Env, which: &str, batches: usize) -> Result<f64> {
    let mut s = Samples::default();
    let pid = env.nats_pid;
    match which {
        "w4nlock" => {
            let c = Rc::new(Nlock {
                managers: vec![env.manager().await?],
            });
            for _ in 0..batches {
                batch(pid, c.clone(), "p4.nlock", 64, &mut s).await?;
            }
        }
        "w4raw" => {
            let c = Rc::new(RawDirect::new(vec![env.raw().await?], env.value.clone()));
            for _ in 0..batches {
                batch(pid, c.clone(), "p4.raw", 64, &mut s).await?;
            }
        }
        other => anyhow::bail!("unknown contender {other}"),
    }
    eprintln!(
        "client CPU {:.1} µs/op, server CPU {:.1} µs/op",
        s.cpu.as_secs_f64() * 1e6 / s.ops as f64,
        s.server_cpu.as_secs_f64() * 1e6 / s.ops as f64
    );
    Ok(s.ops as f64 / s.wall.as_secs_f64())
}
