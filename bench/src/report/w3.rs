//! Section 3 of BENCHMARKS.md: takeover after the holder is killed.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::{verdict, Results, Summary};
use crate::stats::{fmt_dur, fmt_ratio, ratio};
use crate::w3;

/// Workload 3, if it ran.
pub(super) fn write(
    body: &mut String,
    summary: &mut Summary,
    plots: &Path,
    r: &Results,
) -> Result<()> {
    // ---- Workload 3
    if let Some(o) = &r.w3 {
        let _ = writeln!(body, "## 3. Takeover after the holder is killed\n");
        let _ = writeln!(
            body,
            "In each trial a child process takes one key with nlock (TTL {} s, the shortest \
             nlock allows) and is killed with SIGKILL 100 ms later, while one waiter in the \
             benchmark process waits for the key; each round of four trials takes the contenders \
             in a random order, one key at a time (keys expiring together are expired in one server sweep), with 1.3 s \
             to 2.3 s (random) between trials for the previous key's messages to expire and \
             to keep trials out of step with the server's expiry timer. Latency: from the server-side expiry (the server's timestamp of the \
             holder's last write + TTL) to the moment the waiter has the key, both on this \
             machine's wall clock. {} trials in all. Limit markers (expiry events) on this server: \
             {}.{}\n",
            w3::TTL.as_secs(),
            o.trials,
            if o.expiry_events { "yes" } else { "no" },
            if o.early > 0 {
                format!(" {} waiter(s) had the key before the computed expiry (timestamp rounding) and count as 0.", o.early)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            body,
            "| contender | what | trials | within 20 ms | p50 | p99 | min | max |"
        );
        let _ = writeln!(body, "|---|---|---:|---:|---:|---:|---:|---:|");
        for (name, what, s) in &o.rows {
            let x = s.summary();
            let _ = writeln!(
                body,
                "| {name} | {what} | {} | {} | {} | {} | {} | {} |",
                x.n,
                crate::w3::within(s, crate::w3::PROMPT),
                fmt_dur(x.p50),
                fmt_dur(x.p99),
                fmt_dur(x.min),
                fmt_dur(x.max)
            );
        }
        let nl = o.rows.first().map(|r| r.2.summary()).unwrap_or_default();
        let poll = o.rows.get(2).map(|r| r.2.summary()).unwrap_or_default();
        let _ = writeln!(
            body,
            "\nnlock p50 = **{}** (goal under 20 ms with limit markers); polling p50 / nlock p50 = {}.\n",
            fmt_dur(nl.p50),
            fmt_ratio(ratio(poll.p50, nl.p50))
        );
        let _ = writeln!(
            body,
            "![takeover latencies, cumulative](bench/plots/takeover.svg)\n"
        );
        super::plots::takeover(plots, o)?;
        summary.push((
            "3".into(),
            "takeover p50 under 20 ms with limit markers".into(),
            format!(
                "{} ({} prompt; raw floor p50 {}, {} prompt: the server's expiry is bimodal, see 3)",
                fmt_dur(nl.p50),
                o.rows.first().map(|r| crate::w3::within(&r.2, crate::w3::PROMPT)).unwrap_or_default(),
                fmt_dur(o.rows.get(1).map(|r| r.2.summary()).unwrap_or_default().p50),
                o.rows.get(1).map(|r| crate::w3::within(&r.2, crate::w3::PROMPT)).unwrap_or_default(),
            ),
            verdict((nl.n > 0 && o.expiry_events).then_some(nl.p50 < Duration::from_millis(20))),
        ));
    }
    Ok(())
}
