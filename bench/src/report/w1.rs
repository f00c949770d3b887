//! Section 1 of BENCHMARKS.md: acquire + release, one key, sequential (and again with idle
//! time before each cycle).

use std::fmt::Write as _;

use anyhow::Result;

use super::{find, verdict, Results, Summary};
use crate::stats::{fmt_dur, fmt_rate, fmt_ratio, ratio};
use crate::w1;

/// Workload 1, if it ran.
pub(super) fn write(body: &mut String, summary: &mut Summary, r: &Results) -> Result<()> {
    // ---- Workload 1
    if let Some((warmup, iters, rows)) = &r.w1 {
        let s = |name: &str| find(rows, |x| x.name == name).map(|x| x.samples.summary());
        let nl = s("nlock").unwrap_or_default();
        let _ = writeln!(body, "## 1. Acquire + release, one key, sequential\n");
        let _ = writeln!(
            body,
            "Memory storage, one client each, {iters} iterations after {warmup} of warm-up, \
             cycles back to back; in each iteration every contender does one acquire and one \
             release, in a fresh random order. ops/s is one client's rate (1 / mean latency). \
             Client CPU is the CPU time of the benchmark's one thread per cycle.\n"
        );
        w1_table(body, rows);
        let raw = s("raw floor");
        let go = s("Go algorithm");
        let r1 = raw.and_then(|raw| ratio(nl.p50, raw.p50));
        let r2 = go.and_then(|go| ratio(go.p50, nl.p50));
        let _ = writeln!(
            body,
            "\nnlock p50 / raw floor p50 = **{}** (goal at most 1.15x). Go algorithm p50 / nlock \
             p50 = **{}** (goal at least 1.8x).\n",
            fmt_ratio(r1),
            fmt_ratio(r2)
        );
        // Metrics on (a Prometheus recorder) vs off, interleaved in the same iterations.
        let on = s(w1::WITH_METRICS);
        let r3 = on.and_then(|on| ratio(on.p50, nl.p50));
        let _ = writeln!(
            body,
            "Metrics: {} p50 / nlock p50 = **{}** (goal under 1.02x): nlock's metrics recorded \
             into metrics-exporter-prometheus's recorder, against the same cycle with the \
             manager's handles no-ops (as with no recorder installed).\n",
            w1::WITH_METRICS,
            fmt_ratio(r3)
        );
        summary.push((
            "1".into(),
            "metrics on vs off: acquire + release p50 within 1.02x".into(),
            format!(
                "{} ({} vs {})",
                fmt_ratio(r3),
                on.map(|x| fmt_dur(x.p50)).unwrap_or_default(),
                fmt_dur(nl.p50)
            ),
            verdict(r3.map(|v| v < 1.02)),
        ));
        summary.push((
            "1".into(),
            "acquire + release p50 within 1.15x of the raw floor".into(),
            format!(
                "{} ({} vs {})",
                fmt_ratio(r1),
                fmt_dur(nl.p50),
                raw.map(|x| fmt_dur(x.p50)).unwrap_or_default()
            ),
            verdict(r1.map(|v| v <= 1.15)),
        ));
        if let Some((warmup, iters, rows)) = &r.w1_idle {
            let s = |name: &str| find(rows, |x| x.name == name).map(|x| x.samples.summary());
            let nl = s("nlock").unwrap_or_default();
            let _ = writeln!(
                body,
                "The same with 1 ms of idle before every cycle ({iters} iterations after \
                 {warmup}): each cycle then starts from a parked runtime, as in a client that \
                 does other work between locks. Not a goal of the issue; it shows how much of \
                 nlock's overhead is wake-ups (see *Where the time goes* below).\n"
            );
            w1_table(body, rows);
            let _ = writeln!(
                body,
                "\nWith idle: nlock p50 / raw floor p50 = {}; Go algorithm p50 / nlock p50 = {}.\n",
                fmt_ratio(s("raw floor").and_then(|x| ratio(nl.p50, x.p50))),
                fmt_ratio(s("Go algorithm").and_then(|x| ratio(x.p50, nl.p50)))
            );
        }
        summary.push((
            "1".into(),
            "at least 1.8x faster than the Go algorithm".into(),
            format!(
                "{} ({} vs {})",
                fmt_ratio(r2),
                go.map(|x| fmt_dur(x.p50)).unwrap_or_default(),
                fmt_dur(nl.p50)
            ),
            verdict(r2.map(|v| v >= 1.8)),
        ));
    }
    Ok(())
}

fn w1_table(body: &mut String, rows: &[w1::Row]) {
    let nl = find(rows, |x| x.name == "nlock")
        .map(|x| x.samples.summary())
        .unwrap_or_default();
    let _ = writeln!(
        body,
        "| contender | what one cycle is | samples | p50 | p99 | ops/s | client CPU / cycle | client write syscalls / cycle | p50 / nlock's |"
    );
    let _ = writeln!(body, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let x = row.samples.summary();
        let n = x.n.max(1) as f64;
        let _ = writeln!(
            body,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
            row.name,
            row.what,
            x.n,
            fmt_dur(x.p50),
            fmt_dur(x.p99),
            fmt_rate(x.ops_per_sec),
            fmt_dur(x.cpu_per_op),
            row.samples.syscalls_write as f64 / n,
            fmt_ratio(ratio(x.p50, nl.p50))
        );
    }
}
