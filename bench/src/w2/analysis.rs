//! Workload 2's paragraph of the closing analysis: what the handoff's time goes to, with this
//! run's counts of writes and of grants out of arrival order.

use std::fmt::Write as _;

use super::{Counts, Plan, Row, ETCD, NLOCK, RAW};

/// The counts of `name` at the largest waiter count, if it ran there.
fn at_most<'a>(plan: &Plan, rows: &'a [Row], name: &str) -> Option<&'a Counts> {
    let i = plan.waiters.iter().enumerate().max_by_key(|(_, n)| **n)?.0;
    rows.iter()
        .find(|r| r.name == name)?
        .counts
        .get(i)
        .filter(|c| c.handoffs > 0)
}

fn per(c: Option<&Counts>) -> String {
    c.and_then(Counts::writes_per_handoff)
        .map_or_else(|| "—".into(), |v| format!("{v:.1}"))
}

fn order(c: Option<&Counts>) -> String {
    c.map_or_else(
        || "—".into(),
        |c| format!("{} of {}", c.out_of_order, c.handoffs),
    )
}

/// Appends the paragraph to `out`.
pub fn write(out: &mut String, plan: &Plan, rows: &[Row]) {
    let big = plan.waiters.iter().copied().max().unwrap_or(0);
    let (nl, raw, etcd) = (
        at_most(plan, rows, NLOCK),
        at_most(plan, rows, RAW),
        at_most(plan, rows, ETCD),
    );
    let nl_per = nl.and_then(Counts::writes_per_handoff);
    // Waking every waiter shows as about one write per waiter per handoff.
    let wakes_all = nl_per.is_some_and(|v| v >= big as f64 / 2.0);
    let _ = write!(out, "**Workload 2.** ");
    if wakes_all {
        let _ = write!(
            out,
            "nlock follows the raw watch floor at every waiter count: both wake every waiter \
             on the delete marker, and every waiter sends its compare-and-set, so at {big} \
             waiters the winner's answer queues behind the others' (and here all waiters \
             share the benchmark's one client thread, which reads {big} watch events and \
             sends {big} writes per handoff). "
        );
    } else {
        let _ = write!(
            out,
            "nlock does not wake every waiter on a release: at {big} waiters it sends {} \
             writes per handoff besides the release, where the raw watch floor, which wakes \
             them all, sends {}. ",
            per(nl),
            per(raw)
        );
    }
    let _ = write!(
        out,
        "Writes per handoff at {big} waiters (besides the release, arrivals included): nlock \
         {}, raw floor {}, etcd {}. Grants out of arrival order at {big} waiters: nlock {}, raw \
         floor {}, etcd {}; a waiter picked at random among N is out of order with \
         probability 1 − 1/N. ",
        per(nl),
        per(raw),
        per(etcd),
        order(nl),
        order(raw),
        order(etcd)
    );
    let _ = writeln!(
        out,
        "etcd's server queues waiters and wakes only the next. Polling improves with the \
         waiter count because N pollers at random phases poll N times as often: the expected \
         wait is about one poll period (250 ms + jitter) / (N + 1), so the goal of 100x over \
         polling holds only while N is small.{}\n",
        if rows.iter().any(|r| r.name == ETCD) {
            " etcd's first waiter after a quiet spell can wait up to 100 ms: a new watcher \
             starts unsynced and etcd catches unsynced watchers up every 100 ms, which is \
             its p99 and, at 1 waiter, its p50."
        } else {
            ""
        }
    );
}
