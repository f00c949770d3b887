//! Workload 3: takeover after the holder is killed. In each trial a child process (this
//! binary, as `takeover-holder`) takes one key, with nlock (or, for one diagnostic row, with a
//! plain `kv.create`), and is killed with SIGKILL while one waiter in this process waits:
//! nlock, the raw watch floor, or the Go algorithm's poll, in turn. The latency is from the
//! server-side expiry (the last write's server timestamp + TTL) to the moment the waiter has
//! the key, on the one wall clock of this machine.

use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::contenders::{Contender, GoAlgorithm, LocalFut, Nlock, RawKv, RawWatch};
use crate::stats::Samples;
use crate::Env;

/// The lock TTL here: the shortest nlock allows, so that a trial takes about a second.
pub const TTL: Duration = Duration::from_secs(1);
pub const BUCKET: &str = "bench_takeover";

pub struct Outcome {
    pub rows: Vec<(&'static str, &'static str, Samples)>,
    pub trials: usize,
    pub expiry_events: bool,
    /// Waiters that had the key before the computed expiry (clock rounding); counted as 0.
    pub early: usize,
}

pub fn config() -> Result<nlock::Config> {
    Ok(nlock::Config::builder()
        .bucket(BUCKET)
        // The bench's own fresh servers: no earlier holders; measure the steady state.
        .restart_grace(false)
        .ttl(TTL)
        // Must be under the TTL; a loopback server answers in well under a millisecond.
        .request_timeout(Duration::from_millis(500))
        .build()?)
}

/// The child: takes `key` with nlock, or with a plain `kv.create` (no `Nats-TTL`: only the
/// bucket's max_age expires it) when the key is a `w3.plain.` one; says `held`, and waits to
/// be killed (at most 60 s).
pub async fn holder(url: &str, key: &str) -> Result<()> {
    let m = nlock::LockManager::connect(url, config()?).await?;
    let _held = if key.starts_with(PLAIN) {
        let raw = RawKv::open(url, BUCKET).await?;
        raw.kv
            .create(key, bytes::Bytes::from_static(b"plain holder"))
            .await?;
        None
    } else {
        Some(m.try_acquire(key).await?)
    };
    println!("held");
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

const PLAIN: &str = "w3.plain.";

/// The goal's bound: a takeover within this of the expiry counts as prompt.
pub const PROMPT: Duration = Duration::from_millis(20);

/// How many samples are within `bound`, as "k of n".
pub fn within(s: &Samples, bound: Duration) -> String {
    let k = s.lat.iter().filter(|d| **d <= bound).count();
    format!("{k} of {}", s.lat.len())
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

type Waiter = tokio::task::JoinHandle<(SystemTime, Result<LocalFut<()>>)>;

/// Waits for `key`; answers when it had it, and the future that gives it back.
fn spawn_waiter<C: Contender>(c: Rc<C>, key: Rc<str>) -> Waiter {
    actix::spawn(async move {
        let r = c.acquire(0, key.clone()).await;
        let at = SystemTime::now();
        (at, r.map(|held| c.release(0, key, held)))
    })
}

/// Trials rotate through the contenders, one key and one waiter per trial: several keys
/// expiring together would be expired by the server in one sweep, which measures the sweep,
/// not a takeover.
pub async fn run(env: &Env, trials: usize) -> Result<Outcome> {
    let manager = nlock::LockManager::connect(&env.nats_url, config()?).await?;
    let expiry_events = manager.capabilities().expiry_events;
    let nlock = Rc::new(Nlock {
        managers: vec![manager],
    });
    let raw_kv = RawKv::open(&env.nats_url, BUCKET).await?;
    let raw = Rc::new(RawWatch::new(vec![raw_kv.clone()], env.value.clone()));
    let poll = Rc::new(GoAlgorithm::new(
        vec![RawKv::open(&env.nats_url, BUCKET).await?],
        env.value.clone(),
    ));
    let exe = std::env::current_exe()?;
    let mut s: [Samples; 4] = Default::default();
    let mut early = 0;
    // Each round of four trials takes the contenders in a fresh random order, so that no
    // contender always follows the same one (the previous trial's messages expire in the same
    // server timer as this trial's key).
    let mut order = [0usize, 1, 2, 3];
    for t in 0..trials {
        if t % 4 == 0 {
            order.shuffle(&mut rand::rng());
        }
        let which = order[t % 4];
        let key = match which {
            0 => format!("w3.nlock.{t}"),
            1 => format!("w3.raw.{t}"),
            2 => format!("w3.go.{t}"),
            _ => format!("{PLAIN}{t}"),
        };
        let mut child = tokio::process::Command::new(&exe)
            .arg("takeover-holder")
            .arg(&env.nats_url)
            .arg(&key)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no child stdout"))?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .context("holder did not report within 10 s")??;
        if line.trim() != "held" {
            bail!("holder said {line:?}");
        }
        let k: Rc<str> = Rc::from(key.as_str());
        let waiter = match which {
            0 => spawn_waiter(nlock.clone(), k),
            1 | 3 => spawn_waiter(raw.clone(), k),
            _ => spawn_waiter(poll.clone(), k),
        };
        // Let the waiter find the key held and start watching; well before the holder's
        // first refresh (TTL/3 after its acquire).
        tokio::time::sleep(Duration::from_millis(100)).await;
        child.kill().await?;
        // The server's timestamp of the key's last write: the lease runs from there.
        let entry = raw_kv
            .kv
            .entry(key.as_str())
            .await?
            .ok_or_else(|| anyhow!("{key} has no message"))?;
        let nanos = u64::try_from(entry.created.unix_timestamp_nanos())?;
        let deadline = Duration::from_nanos(nanos) + TTL;
        let (at, release) = tokio::time::timeout(TTL + Duration::from_secs(5), waiter).await??;
        let at = since_epoch(at);
        if at < deadline {
            early += 1;
        }
        s[which].push(at.saturating_sub(deadline));
        release?.await?;
        // Let this trial's value and delete marker expire before the next trial's key does,
        // then a random 0 to 1 s more, so that trials do not fall into step with the server's
        // expiry timer.
        let jitter = Duration::from_millis(rand::rng().random_range(0..=1000));
        tokio::time::sleep(TTL + Duration::from_millis(300) + jitter).await;
    }
    for m in &nlock.managers {
        m.shutdown().await;
    }
    let [a, b, c, d] = s;
    Ok(Outcome {
        rows: vec![
            (
                "nlock",
                "`acquire`: takeover at the end of the holder's lease (compare-and-set on its \
                 last write), or the expiry marker, whichever first",
                a,
            ),
            ("raw floor", "watch, `kv.update` on the expiry marker", b),
            (
                "Go algorithm (polling)",
                "`kv.create` every 250 ms + jitter",
                c,
            ),
            (
                "raw floor, plain holder",
                "the holder wrote with `kv.create` instead of nlock (diagnostic: the same server \
                 expiry for a value nlock did not write)",
                d,
            ),
        ],
        trials,
        expiry_events,
        early,
    })
}
