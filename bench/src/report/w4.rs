//! Section 4 of BENCHMARKS.md: acquire + release over many keys, 64 in flight.

use std::fmt::Write as _;

use anyhow::Result;

use super::{find, verdict, Results, Summary};
use crate::stats::{fmt_dur, fmt_rate, fmt_ratio};
use crate::w4;

/// Workload 4, if it ran.
pub(super) fn write(body: &mut String, summary: &mut Summary, r: &Results) -> Result<()> {
    // ---- Workload 4
    if let Some((batches, ops, rows)) = &r.w4 {
        let _ = writeln!(
            body,
            "## 4. Acquire + release over many keys, 64 in flight\n"
        );
        let _ = writeln!(
            body,
            "One process, one connection per contender; 64 tasks each cycle through 16 keys of \
             their own (1024 keys), so nothing contends and everything pipelines. A first \
             unmeasured pass over every key, then {batches} batches of {} cycles per \
             contender, batches of different contenders alternating. ops/s = cycles / wall \
             time of that contender's batches; latency is per cycle.\n",
            ops * w4::IN_FLIGHT
        );
        let nl = find(rows, |x| x.name == "nlock")
            .map(|x| x.samples.summary())
            .unwrap_or_default();
        let _ = writeln!(body, "| contender | what | cycles | ops/s | p50 | p99 | client CPU / cycle | nats-server CPU / cycle | ops/s / nlock's |");
        let _ = writeln!(body, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for row in rows {
            let x = row.samples.summary();
            let server = if row.name == "etcd" || row.name == "Redis" {
                "—".to_owned()
            } else {
                fmt_dur(row.samples.server_cpu / row.samples.ops.max(1) as u32)
            };
            let _ = writeln!(
                body,
                "| {} | {} | {} | {} | {} | {} | {} | {server} | {} |",
                row.name,
                row.what,
                row.samples.ops,
                fmt_rate(x.ops_per_sec),
                fmt_dur(x.p50),
                fmt_dur(x.p99),
                fmt_dur(x.cpu_per_op),
                fmt_ratio((nl.ops_per_sec > 0.0).then(|| x.ops_per_sec / nl.ops_per_sec))
            );
        }
        let raw = find(rows, |x| x.name == "raw floor").map(|x| x.samples.summary());
        let r4 = raw
            .filter(|x| x.ops_per_sec > 0.0)
            .map(|x| nl.ops_per_sec / x.ops_per_sec);
        let _ = writeln!(
            body,
            "\nnlock ops/s / raw floor ops/s = **{}** (goal at least 0.85x).\n",
            fmt_ratio(r4)
        );
        summary.push((
            "4".into(),
            "64 in flight: at least 0.85x of the raw floor's throughput".into(),
            format!(
                "{} ({} vs {} ops/s)",
                fmt_ratio(r4),
                fmt_rate(nl.ops_per_sec),
                raw.map(|x| fmt_rate(x.ops_per_sec)).unwrap_or_default()
            ),
            verdict(r4.map(|v| v >= 0.85)),
        ));
    }
    Ok(())
}
