//! Section 2 of BENCHMARKS.md: handoff from a release to the next waiter's acquire, and its plot.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::{find, verdict, Results, Summary};
use crate::stats::{fmt_dur, fmt_ratio, ratio};
use crate::svg::{self, Chart, Series, COLORS};
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
             fall into step with a poller's period or a server's internal loop; the first \
             waiters of a batch arrive at random moments over that span too. Event-driven contenders: {} batches of {} rounds per waiter \
             count; polling ones: {} batches of {} rounds; batches of different contenders \
             alternate, each on a fresh key with fresh waiters.\n",
            plan.batches, plan.rounds, plan.poll_batches, plan.poll_rounds
        );
        for row in rows {
            let _ = writeln!(body, "- {}: {}", row.name, row.what);
        }
        let _ = writeln!(body);
        let _ = writeln!(
            body,
            "| waiters | contender | samples | p50 | p99 | p50 / nlock's |"
        );
        let _ = writeln!(body, "|---:|---|---:|---:|---:|---:|");
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
                    let _ = writeln!(
                        body,
                        "| {n} | {} | {} | {} | {} | {} |",
                        row.name,
                        x.n,
                        fmt_dur(x.p50),
                        fmt_dur(x.p99),
                        fmt_ratio(ratio(x.p50, nl.p50))
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
        let series = rows
            .iter()
            .enumerate()
            .flat_map(|(ci, row)| {
                let pts = |p50: bool| -> Vec<(f64, f64)> {
                    plan.waiters
                        .iter()
                        .zip(&row.by_waiters)
                        .map(|(n, s)| (n, s.summary()))
                        .filter(|(_, x)| x.n > 0)
                        .map(|(n, x)| {
                            let d = if p50 { x.p50 } else { x.p99 };
                            (*n as f64, d.as_secs_f64() * 1000.0)
                        })
                        .collect()
                };
                [
                    Series {
                        name: format!("{} p50", row.name),
                        color: COLORS[ci % COLORS.len()],
                        dashed: false,
                        points: pts(true),
                    },
                    Series {
                        name: format!("{} p99", row.name),
                        color: COLORS[ci % COLORS.len()],
                        dashed: true,
                        points: pts(false),
                    },
                ]
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        let chart = Chart {
            title: "Handoff latency (release to next acquire)".into(),
            x_label: "waiters (each on its own connection)".into(),
            y_label: "latency, ms (log scale)".into(),
            log_x: true,
            log_y: true,
            x_ticks: plan.waiters.iter().map(|n| *n as f64).collect(),
            series,
            guides: vec![],
        };
        std::fs::write(plots.join("handoff.svg"), svg::render(&chart))?;
    }
    Ok(())
}
