//! Section 2 of BENCHMARKS.md: handoff from a release to the next waiter's acquire, and its plot.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::{find, verdict, Results, Summary};

/// What the fairness and write columns count.
const FAIRNESS_AND_WRITES: &str = "Out of arrival order: waiters arrive one at a time, each \
     calling `acquire` only once every earlier waiter is known to wait (nlock: its manager \
     lists the request as waiting; the raw floor: refused once and watching; pollers: refused \
     once; etcd: its key is in the server's queue) and a settle (3 ms + a random part) has \
     passed; the old holder arrives again after each handoff the same way, before the next \
     release. A grant is out of order when it goes to a waiter while one that arrived earlier \
     still waits; with 1 waiter none can be. Each waiter is a client on a connection of its \
     own, as in a process of its own. Writes / handoff: every write on the lock key over the \
     measured rounds, refused or not, less one release per handoff, divided by the handoffs; \
     for the NATS contenders these are the publishes on the key's subject that a plain core \
     subscription on `$KV.>` sees (it sees refused compare-and-sets too), subscribed and \
     flushed before the first batch and read after a flush at each end of the rounds. Other \
     KV writes / handoff: publishes to any other `$KV.` subject over the same rounds (another \
     key or bucket a contender might keep a queue in). The waiters' arrivals after each \
     handoff are in the count, so a contender that makes each waiter write once on arrival \
     and wakes one waiter per release sends 2 writes per handoff.";

/// Writes per handoff, or a dash.
fn fmt_per(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1}"))
}
use crate::stats::{fmt_dur, fmt_ratio, ratio};
use crate::w2;

/// Workload 2, if it ran.
pub(super) fn write(
    body: &mut String,
    summary: &mut Summary,
    plots: &Path,
    r: &Results,
) -> Result<()> {
    // ---- Workload 2
    if let Some((plan, rows)) = &r.w2 {
        let _ = writeln!(
            body,
            "## 2. Handoff: release to the next waiter's acquire\n"
        );
        let _ = writeln!(
            body,
            "N waiters, each on its own connection (nlock: its own `LockManager`), wait for a key \
             that a holder releases. Latency: from the start of the holder's release to the \
             moment the next waiter has the key. After each handoff the old holder waits again \
             (so N wait in every round). The next round starts after a settle of 5 ms + 0.25 ms \
             per waiter + a random 0 to 100 ms (0 to 300 ms for pollers), so that rounds never \
             fall into step with a poller's period or a server's internal loop. The first \
             waiters of a batch arrive one at a time, 3 ms + a random 0 to 100 ms / N (0 to \
             300 ms / N for pollers) apart, each once the one before is known to wait (below). \
             Event-driven contenders: {} batches of {} rounds per waiter count; polling ones: {} batches of {} rounds; batches of different contenders \
             alternate, each on a fresh key with fresh waiters.\n",
            plan.batches, plan.rounds, plan.poll_batches, plan.poll_rounds
        );
        for row in rows {
            let _ = writeln!(
                body,
                "- {}: {}; writes counted: {}",
                row.name, row.what, row.writes_how
            );
        }
        let _ = writeln!(body);
        let _ = writeln!(body, "{FAIRNESS_AND_WRITES}\n");
        let _ = writeln!(
            body,
            "| waiters | contender | samples | p50 | p99 | p50 / nlock's | out of arrival order | writes / handoff | other KV writes / handoff |"
        );
        let _ = writeln!(body, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        let mut worst_raw: Option<f64> = None;
        let mut worst_poll: Option<f64> = None;
        let mut per_n = String::new();
        let (mut list_raw, mut list_poll) = (Vec::new(), Vec::new());
        for (i, n) in plan.waiters.iter().enumerate() {
            let s = |name: &str| {
                find(rows, |x| x.name == name)
                    .and_then(|x| x.by_waiters.get(i))
                    .map(|x| x.summary())
                    .filter(|x| x.n > 0)
            };
            let nl = s(w2::NLOCK).unwrap_or_default();
            for row in rows {
                if let Some(x) = row
                    .by_waiters
                    .get(i)
                    .map(|x| x.summary())
                    .filter(|x| x.n > 0)
                {
                    let c = row.counts.get(i).cloned().unwrap_or_default();
                    let other = if row.writes_how == w2::ON_THE_WIRE {
                        fmt_per(c.other_per_handoff())
                    } else {
                        "—".into()
                    };
                    let _ = writeln!(
                        body,
                        "| {n} | {} | {} | {} | {} | {} | {} of {} | {} | {other} |",
                        row.name,
                        x.n,
                        fmt_dur(x.p50),
                        fmt_dur(x.p99),
                        fmt_ratio(ratio(x.p50, nl.p50)),
                        c.out_of_order,
                        c.handoffs,
                        fmt_per(c.writes_per_handoff()),
                    );
                }
            }
            let a = s(w2::RAW).and_then(|raw| ratio(nl.p50, raw.p50));
            let b = s(w2::POLL).and_then(|p| ratio(p.p50, nl.p50));
            if let Some(a) = a {
                worst_raw = Some(worst_raw.map_or(a, |w: f64| w.max(a)));
            }
            if let Some(b) = b {
                worst_poll = Some(worst_poll.map_or(b, |w: f64| w.min(b)));
            }
            let _ = writeln!(per_n, "| {n} | {} | {} |", fmt_ratio(a), fmt_ratio(b));
            list_raw.push(format!("{} at {n}", fmt_ratio(a)));
            list_poll.push(format!("{} at {n}", fmt_ratio(b)));
        }
        let _ = writeln!(
            body,
            "\n| waiters | nlock p50 / raw floor p50 (goal at most 1.5x) | polling p50 / nlock p50 (goal at least 100x) |\n|---:|---:|---:|\n{per_n}"
        );
        let _ = writeln!(
            body,
            "![handoff latency against waiters](bench/plots/handoff.svg)\n"
        );
        summary.push((
            "2".into(),
            "handoff p50 within 1.5x of the raw floor at every waiter count".into(),
            list_raw.join(", "),
            verdict(worst_raw.map(|v| v <= 1.5)),
        ));
        summary.push((
            "2".into(),
            "handoff at least 100x faster than polling".into(),
            list_poll.join(", "),
            if worst_poll.is_some_and(|v| v >= 100.0) {
                "met"
            } else if list_poll.iter().any(|_| true) && worst_poll.is_some() {
                "**missed** where waiters are many (see 2)"
            } else {
                "not measured"
            },
        ));
        super::plots::handoff(plots, plan, rows)?;
        goals_14(summary, plan, rows);
    }
    Ok(())
}

/// The summary's rows for the goals of issue 14 on workload 2.
fn goals_14(summary: &mut Summary, plan: &w2::Plan, rows: &[w2::Row]) {
    let nl = find(rows, |x| x.name == w2::NLOCK);
    let at = |name: &str, i: usize| {
        find(rows, |x| x.name == name)
            .and_then(|x| x.by_waiters.get(i))
            .map(|x| x.summary())
            .filter(|x| x.n > 0)
    };
    // p50 within 1.10x of the raw floor at 1, 4 and 16 waiters.
    let mut worst: Option<f64> = None;
    let mut list = Vec::new();
    for (i, n) in plan.waiters.iter().enumerate().filter(|(_, n)| **n <= 16) {
        if let (Some(a), Some(b)) = (at(w2::NLOCK, i), at(w2::RAW, i)) {
            let r = ratio(a.p50, b.p50);
            if let Some(r) = r {
                worst = Some(worst.map_or(r, |w: f64| w.max(r)));
            }
            list.push(format!("{} at {n}", fmt_ratio(r)));
        }
    }
    summary.push((
        "2".into(),
        "issue 14: handoff p50 at most 1.10x the raw floor's at 1, 4 and 16 waiters".into(),
        list.join(", "),
        verdict(worst.map(|w| w <= 1.10)),
    ));
    // At 64 waiters, faster than etcd.
    let i64 = plan.waiters.iter().position(|n| *n == 64);
    let vs_etcd = i64.and_then(|i| Some((at(w2::NLOCK, i)?, at(w2::ETCD, i)?)));
    summary.push((
        "2".into(),
        "issue 14: handoff p50 at 64 waiters below etcd's".into(),
        match vs_etcd {
            Some((a, e)) => format!(
                "{} against {} ({})",
                fmt_dur(a.p50),
                fmt_dur(e.p50),
                fmt_ratio(ratio(a.p50, e.p50))
            ),
            None => "etcd did not run (or no run at 64 waiters)".into(),
        },
        verdict(vs_etcd.map(|(a, e)| a.p50 < e.p50)),
    ));
    // Grants out of arrival order.
    let (mut bad, mut all) = (0, 0);
    for c in nl.map(|r| r.counts.as_slice()).unwrap_or_default() {
        bad += c.out_of_order;
        all += c.handoffs;
    }
    summary.push((
        "2".into(),
        "issue 14: no grant out of arrival order across processes".into(),
        format!("nlock: {bad} of {all} handoffs, all waiter counts"),
        verdict((all > 0).then_some(bad == 0)),
    ));
    // Writes per handoff at 64 waiters, on the key and elsewhere.
    let c64 = i64
        .and_then(|i| nl?.counts.get(i))
        .filter(|c| c.handoffs > 0);
    let per = c64.and_then(|c| Some((c.writes_per_handoff()?, c.other_per_handoff()?)));
    summary.push((
        "2".into(),
        "issue 14: at most 2 compare-and-sets per handoff at 64 waiters".into(),
        match per {
            Some((k, o)) => format!("{:.1} ({k:.1} on the key, {o:.1} elsewhere)", k + o),
            None => "no run at 64 waiters".into(),
        },
        verdict(per.map(|(k, o)| k + o <= 2.0)),
    ));
}
