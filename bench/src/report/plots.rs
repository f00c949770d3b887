//! The plots of workloads 2 and 3: handoff latency against the waiter count for every
//! contender, and the distribution of takeover latencies.

use std::path::Path;

use anyhow::Result;

use crate::svg::{self, Chart, Series, COLORS};
use crate::{w2, w3};

/// bench/plots/handoff.svg: p50 (solid) and p99 (dashed) of each contender by waiter count.
pub(super) fn handoff(plots: &Path, plan: &w2::Plan, rows: &[w2::Row]) -> Result<()> {
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
    Ok(())
}

/// bench/plots/takeover.svg: for each contender, the share of trials that had the key within
/// a given time of the server-side expiry (a cumulative distribution; early trials count as
/// 0 and are drawn at the axis's low end).
pub(super) fn takeover(plots: &Path, o: &w3::Outcome) -> Result<()> {
    let series = o
        .rows
        .iter()
        .enumerate()
        .map(|(ci, (name, _, s))| {
            let mut v: Vec<f64> = s.lat.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            Series {
                name: (*name).to_owned(),
                color: COLORS[ci % COLORS.len()],
                dashed: false,
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, ms)| (ms.max(0.1), (i + 1) as f64 / n))
                    .collect(),
            }
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let chart = Chart {
        title: "Takeover after SIGKILL: server-side expiry to the key taken".into(),
        x_label: "latency, ms (log scale; 0 drawn at 0.1)".into(),
        y_label: "share of trials taken by then".into(),
        log_x: true,
        log_y: false,
        x_ticks: vec![],
        series,
        guides: vec![(1.0, "all trials".into())],
    };
    std::fs::write(plots.join("takeover.svg"), svg::render(&chart))?;
    Ok(())
}
