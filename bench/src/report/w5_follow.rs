//! Section 5's part on the cost of following the bucket's changes.

use std::fmt::Write as _;
use std::time::Duration;

use super::kib;
use crate::stats::fmt_dur;
use crate::w5;

/// Workload 5's `nlock` against `nlock, follow_changes off`: what the change consumer costs.
pub(super) fn write_follow_cost(body: &mut String, reports: &[w5::Report]) {
    let mut pairs: Vec<(&w5::Report, &w5::Report)> = reports
        .iter()
        .filter(|on| on.variant == "nlock")
        .filter_map(|on| {
            let off = reports
                .iter()
                .find(|r| r.variant == w5::NOFOLLOW && r.n == on.n)?;
            Some((on, off))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    pairs.sort_by_key(|(on, _)| on.n);
    let _ = writeln!(body, "### Cost of following the bucket's changes\n");
    let _ = writeln!(
        body,
        "By default a `LockManager` follows its bucket's changes with one JetStream ordered \
         consumer (deliver policy New, filter `$KV.<bucket>.>`), so that a write by someone \
         else on a key it holds is noticed within milliseconds. Every write to the bucket is \
         delivered to it, its own refreshes included (it skips its own puts by a byte-prefix \
         check). The rows *nlock* and *nlock, follow_changes off* above differ only in that; \
         here they are side by side, with Δ = on − off. Consumers: the consumers on the \
         bucket's stream during the hold, as the server lists them; delivered: the messages \
         they delivered during the hold (their consumer info), and that per refresh; where the \
         consumer was recreated during the hold (the ordered consumer does that after a gap \
         or missed heartbeats), the count is only the new consumer's, since the old one's left \
         with it, and the row says so. The consumer is created when the manager starts, before the \"before\" snapshot, so its \
         fixed memory is not in the per-lock columns.\n"
    );
    let _ = writeln!(
        body,
        "| locks | held | consumers on / off | delivered on / off (per refresh, on) | client CPU / refresh on / off (Δ) | server CPU / refresh on / off (Δ) | RSS / lock on / off | heap / lock on / off |"
    );
    let _ = writeln!(body, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    let per_refresh = |r: &w5::Report, d: Duration| d.as_secs_f64() / r.refreshes.max(1) as f64;
    let us = |s: f64| fmt_dur(Duration::from_secs_f64(s.abs()));
    let signed = |s: f64| {
        let sign = if s < 0.0 { "−" } else { "+" };
        format!("{sign}{}", us(s))
    };
    for (on, off) in &pairs {
        let (c_on, c_off) = (per_refresh(on, on.cpu_hold), per_refresh(off, off.cpu_hold));
        let (s_on, s_off) = (
            per_refresh(on, on.server_cpu_hold),
            per_refresh(off, off.server_cpu_hold),
        );
        let _ = writeln!(
            body,
            "| {} | {:.0} s / {:.0} s | {} / {}{} | {} / {} ({:.2}) | {} / {} ({}) | {} / {} ({}) | {} / {} | {} / {} |",
            on.n,
            on.hold.as_secs_f64(),
            off.hold.as_secs_f64(),
            on.consumers,
            off.consumers,
            if on.consumers_new > 0 {
                format!(
                    " ({} recreated during the hold: delivered counts only since then)",
                    on.consumers_new
                )
            } else {
                String::new()
            },
            on.delivered,
            off.delivered,
            on.delivered as f64 / on.refreshes.max(1) as f64,
            us(c_on),
            us(c_off),
            signed(c_on - c_off),
            us(s_on),
            us(s_off),
            signed(s_on - s_off),
            kib(on.rss_per_lock()),
            kib(off.rss_per_lock()),
            kib(on.heap_per_lock()),
            kib(off.heap_per_lock()),
        );
    }
    let (on, off) = pairs[pairs.len() - 1];
    let pct = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:+.0} %", (a / b - 1.0) * 100.0)
        } else {
            "—".into()
        }
    };
    let (c_on, c_off) = (per_refresh(on, on.cpu_hold), per_refresh(off, off.cpu_hold));
    let (s_on, s_off) = (
        per_refresh(on, on.server_cpu_hold),
        per_refresh(off, off.server_cpu_hold),
    );
    let _ = writeln!(
        body,
        "\nAt {} locks, following changes costs {} of client CPU per refresh ({}) and {} of \
         nats-server CPU per refresh ({}); heap per lock differs by {} and RSS per lock by {}. \
         The cost is per message delivered, and so per write to the bucket: here the manager \
         is the bucket's only writer, so every delivered message is one of its own refreshes \
         coming back, which the server sends and the client reads, decodes and skips. There \
         is one consumer per manager, not per lock (the consumer count does not grow with the \
         locks), so the memory per lock stays where it was. On a bucket that other processes \
         write to, a following manager receives all of their writes too, whatever keys it \
         holds: a process that holds many locks on a busy shared bucket may turn following \
         off (`Config::builder().follow_changes(false)`), and a write by someone else on a \
         key it holds is then noticed at the lock's next refresh (every TTL/3) instead of \
         within milliseconds.\n",
        on.n,
        signed(c_on - c_off),
        pct(c_on, c_off),
        signed(s_on - s_off),
        pct(s_on, s_off),
        signed_kib(on.heap_per_lock() - off.heap_per_lock()),
        signed_kib(on.rss_per_lock() - off.rss_per_lock()),
    );
}
fn signed_kib(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "−" } else { "+" };
    format!("{sign}{}", kib(bytes.abs()))
}
