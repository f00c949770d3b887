//! One batch of workload 2: a holder and N waiters on a fresh key, some rounds of handoff,
//! and what they showed: latencies, grants out of arrival order, and writes sent.
//!
//! Arrival order. Waiters arrive one at a time: a waiter's `acquire` is called only once
//! every earlier waiter is known to wait ([`Contender::is_waiting`]) and a settle has passed,
//! and it gets the next arrival number. The old holder arrives again right after each
//! handoff, the same way, before the next release. A grant is out of order when it goes to a
//! waiter while one that arrived earlier still waits. Each waiter is its own client on its own
//! connection, as a waiter in another process would be.
//!
//! Writes. From just before the first round's release to just after the last round's settle,
//! the [`WriteTap`] counts every publish on the key's subject (or, for the peers, the
//! contender counts its own write requests), and every other `$KV.` publish besides.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use rand::Rng;
use tokio::sync::mpsc;

use super::{Counts, ROUND_TIMEOUT};
use crate::contenders::Contender;
use crate::stats::Samples;
use crate::tap::{Seen, WriteTap};

/// What one batch does.
pub struct Batch {
    /// The holder and the waiters: N + 1.
    pub parties: usize,
    pub key: String,
    pub rounds: usize,
    /// The random part of each settle (see `settle`).
    pub random_settle: Duration,
    /// Let every waiter have the key once at the end (etcd; see the end of `run`).
    pub drain: bool,
}

/// Settle after an arrival or a handoff: time for the new waiter's first write to be answered
/// and its watch to open, and for the losers of the round to read their conflict (growing
/// with the waiter count, since every waiter's compare-and-set goes through the one server),
/// plus a random part. The random part keeps rounds from falling into step with anything
/// periodic: a poller's 250 ms cycle, or etcd's 100 ms loop that catches up new watchers; it
/// is longer than those periods.
fn settle(waiters: usize, random_up_to: Duration) -> Duration {
    let random = rand::rng().random_range(0..=random_up_to.as_micros() as u64);
    Duration::from_millis(5) + Duration::from_micros(250 * waiters as u64 + random)
}

/// The gap between two first arrivals of a batch: a few milliseconds for the earlier one's
/// first write to be answered, plus a random part so that pollers do not poll in step.
fn arrival_gap(parties: usize, random_settle: Duration) -> Duration {
    let up_to = random_settle.as_micros() as u64 / parties.max(1) as u64;
    Duration::from_millis(3) + Duration::from_micros(rand::rng().random_range(0..=up_to))
}

/// Waits until `party`'s acquire of `key` is known to wait.
async fn until_waiting<C: Contender>(c: &C, party: usize, key: &Rc<str>) -> Result<()> {
    let deadline = Instant::now() + ROUND_TIMEOUT;
    while !c.is_waiting(party, key.clone()).await? {
        if Instant::now() > deadline {
            bail!("waiter {party} on {key}: not known to wait after {ROUND_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Writes so far: counted by the contender itself if it does, else seen by the tap.
async fn writes<C: Contender>(c: &C, tap: &mut WriteTap, subject: &str) -> Result<Seen> {
    match c.writes_sent() {
        Some(n) => Ok(Seen { on_key: n, all: n }),
        None => tap.seen(subject).await,
    }
}

type Outcome<H> = (usize, Result<H>, Instant);

/// Runs one batch of `b.rounds` handoffs; latencies go to `lat`, the rest to `counts`.
pub async fn run<C: Contender>(
    c: Rc<C>,
    b: &Batch,
    tap: &mut WriteTap,
    lat: &mut Samples,
    counts: &mut Counts,
) -> Result<()> {
    let key: Rc<str> = b.key.as_str().into();
    let subject = WriteTap::subject(crate::BUCKET, &b.key);
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome<C::Held>>();
    let spawn_waiter = |p: usize| {
        let (c, key, tx) = (c.clone(), key.clone(), tx.clone());
        actix::spawn(async move {
            let r = c.acquire(p, key).await;
            let _ = tx.send((p, r, Instant::now()));
        })
    };
    let mut tasks: HashMap<usize, tokio::task::JoinHandle<()>> = HashMap::new();
    let r = rounds(&c, b, &key, &subject, tap, lat, counts, &mut rx, |p| {
        tasks.insert(p, spawn_waiter(p));
    })
    .await;
    let abort_all = || tasks.values().for_each(|t| t.abort());
    let (holder, held, waiting) = match r {
        Ok(x) => x,
        Err(e) => {
            abort_all();
            return Err(e);
        }
    };
    if !b.drain {
        abort_all();
        return c.release(holder, key, held).await;
    }
    // Let every waiter have the key once and give it back: etcd's server keeps a cancelled
    // waiter's watch machinery busy for long enough to stall the next batch's waiters.
    c.release(holder, key.clone(), held).await?;
    for _ in 0..waiting {
        let (p, r, _) = tokio::time::timeout(ROUND_TIMEOUT, rx.recv())
            .await
            .map_err(|_| anyhow!("draining {key}: no waiter got it within {ROUND_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow!("draining {key}: channel closed"))?;
        c.release(p, key.clone(), r?).await?;
    }
    Ok(())
}

/// The rounds of a batch; `arrive(p)` calls party `p`'s acquire in a task of its own. Returns
/// the last holder, its lock, and how many still wait.
#[allow(clippy::too_many_arguments)]
async fn rounds<C: Contender>(
    c: &Rc<C>,
    b: &Batch,
    key: &Rc<str>,
    subject: &str,
    tap: &mut WriteTap,
    lat: &mut Samples,
    counts: &mut Counts,
    rx: &mut mpsc::UnboundedReceiver<Outcome<C::Held>>,
    mut arrive: impl FnMut(usize),
) -> Result<(usize, C::Held, usize)> {
    // Waiting parties and their arrival numbers.
    let mut arrivals: HashMap<usize, u64> = HashMap::new();
    let mut next_arrival = 0;
    let mut holder = 0;
    let mut held = c.acquire(0, key.clone()).await.context("first acquire")?;
    for p in 1..b.parties {
        arrive(p);
        arrivals.insert(p, next_arrival);
        next_arrival += 1;
        until_waiting(&**c, p, key).await?;
        tokio::time::sleep(arrival_gap(b.parties, b.random_settle)).await;
    }
    tokio::time::sleep(settle(b.parties, b.random_settle)).await;
    let before = writes(&**c, tap, subject).await?;
    for round in 0..b.rounds {
        let t0 = Instant::now();
        c.release(holder, key.clone(), held)
            .await
            .context("release")?;
        let (p, r, t1) = tokio::time::timeout(ROUND_TIMEOUT, rx.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                anyhow!(
                    "no waiter got {key} within {ROUND_TIMEOUT:?} (round {round}, holder {holder})"
                )
            })?;
        held = r.with_context(|| format!("waiter {p}"))?;
        lat.push(t1 - t0);
        let mine = arrivals
            .remove(&p)
            .ok_or_else(|| anyhow!("{key}: party {p} was granted without waiting"))?;
        counts.handoffs += 1;
        if arrivals.values().any(|&a| a < mine) {
            counts.out_of_order += 1;
        }
        // The old holder waits again: it arrives last.
        arrive(holder);
        arrivals.insert(holder, next_arrival);
        next_arrival += 1;
        until_waiting(&**c, holder, key).await?;
        holder = p;
        tokio::time::sleep(settle(b.parties, b.random_settle)).await;
    }
    let (on_key, elsewhere) = writes(&**c, tap, subject).await?.since(before);
    counts.writes += on_key;
    counts.other_writes += elsewhere;
    Ok((holder, held, arrivals.len()))
}
