//! Section 5 of BENCHMARKS.md: held locks with keep-alive, memory per lock, and its plot.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::w5_follow::write_follow_cost;
use super::{kib, verdict, Summary};
use crate::stats::fmt_dur;
use crate::svg::{self, Chart, Series, COLORS};
use crate::w5;

pub(super) fn write_w5(
    body: &mut String,
    summary: &mut Summary,
    reports: &[w5::Report],
    plots: &Path,
) -> Result<()> {
    let _ = writeln!(body, "## 5. Held locks with keep-alive\n");
    let longest = reports.iter().map(|r| r.hold).max().unwrap_or_default();
    let _ = writeln!(
        body,
        "Each variant and count runs in its own child process: it connects, takes the locks \
         with 64 in flight, waits 2 s, and holds them for the time in the *held* column, \
         refreshing each every 10 s (TTL 30 s / 3) with a compare-and-set. *nlock, \
         follow_changes off* is nlock with `Config::builder().follow_changes(false)`: its \
         manager has no change consumer (see *Cost of following the bucket's changes* \
         below). The issue asks for 3 minutes of holding; the longest hold here is {:.0} s \
         (nlock, with and without following changes, at the largest count, where a spurious \
         loss would show first), and the others are cut to 2.5 to 4.5 refresh periods so the \
         whole run stays near 18 minutes. Memory per lock = (RSS after \
         taking the locks − RSS before) / locks; heap per lock is the same from a counting \
         allocator (live bytes). Refreshes are the stream writes during the hold; client CPU \
         is the child's CPU time during the hold; server CPU is nats-server's over the same \
         window. Lost: locks no longer held at the end (nlock: `is_held()`; baselines: a \
         failed refresh).\n",
        longest.as_secs_f64()
    );
    let _ = writeln!(
        body,
        "| variant | locks | held | RSS / lock | RSS / lock after the hold | heap / lock | allocations / lock | take all | refreshes (expected) | lost | client CPU / refresh | client CPU, % of a core | server CPU / refresh |"
    );
    let _ = writeln!(
        body,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut sorted: Vec<&w5::Report> = reports.iter().collect();
    sorted.sort_by_key(|r| (r.n, w5::VARIANTS.iter().position(|v| *v == r.variant)));
    for r in &sorted {
        let per_refresh = |d: Duration| {
            if r.refreshes > 0 {
                fmt_dur(d / r.refreshes as u32)
            } else {
                "—".into()
            }
        };
        let _ = writeln!(
            body,
            "| {} | {} | {:.0} s | {} | {} | {} | {:.1} | {:.1} s | {} ({:.0}) | {} | {} | {:.1} % | {} |",
            variant_name(&r.variant),
            r.n,
            r.hold.as_secs_f64(),
            kib(r.rss_per_lock()),
            kib(r.rss_end_per_lock()),
            kib(r.heap_per_lock()),
            r.allocs_added as f64 / r.n as f64,
            r.acquire.as_secs_f64(),
            r.refreshes,
            r.expected_refreshes(),
            r.lost,
            per_refresh(r.cpu_hold),
            100.0 * r.cpu_hold.as_secs_f64() / r.hold.as_secs_f64().max(1e-9),
            per_refresh(r.server_cpu_hold),
        );
    }
    let largest = reports.iter().map(|r| r.n).max().unwrap_or(0);
    let nl = reports
        .iter()
        .find(|r| r.variant == "nlock" && r.n == largest);
    if let Some(nl) = nl {
        let _ = writeln!(
            body,
            "\nWhere nlock's memory per lock goes at {} locks: live allocations added per lock, by \
             size (heap total {} per lock, RSS {} per lock):\n",
            nl.n,
            kib(nl.heap_per_lock()),
            kib(nl.rss_per_lock())
        );
        let _ = writeln!(
            body,
            "| allocation size | per lock | bytes per lock |\n|---:|---:|---:|"
        );
        for (size, count, bytes) in &nl.grown {
            let per = *count as f64 / nl.n as f64;
            let bytes_per = *bytes as f64 / nl.n as f64;
            if bytes_per < 4.0 {
                continue;
            }
            let label = if *size >= 4096 {
                "≥ 4096 B (tables, vectors)".to_owned()
            } else {
                format!("{size} B")
            };
            let count = if *size >= 4096 {
                "—".to_owned()
            } else {
                format!("{per:.2}")
            };
            let _ = writeln!(body, "| {label} | {count} | {bytes_per:.0} |");
        }
        let _ = writeln!(
            body,
            "\nSizes of the types behind them (`size_of`, this build):\n"
        );
        for (name, size) in type_sizes() {
            let _ = writeln!(body, "- `{name}`: {size} B");
        }
        let _ = writeln!(body);
        let goal = nl.rss_per_lock() <= 1024.0;
        summary.push((
            "5".into(),
            format!("at most 1 KiB client memory per held lock at {largest}"),
            kib(nl.rss_per_lock()),
            verdict(Some(goal)),
        ));
    }
    let lost: u64 = reports
        .iter()
        .filter(|r| r.variant == "nlock" || r.variant == w5::NOFOLLOW)
        .map(|r| r.lost)
        .sum();
    summary.push((
        "5".into(),
        "no spurious loss of held locks".into(),
        format!("{lost} lost"),
        verdict(Some(lost == 0)),
    ));
    let _ = writeln!(
        body,
        "![client memory per held lock](bench/plots/memory.svg)\n"
    );
    let mut sizes: Vec<usize> = reports.iter().map(|r| r.n).collect();
    sizes.sort();
    sizes.dedup();
    // nlock without following changes: nlock's colour, dashed.
    let series = w5::VARIANTS
        .iter()
        .map(|v| Series {
            name: variant_name(v).into(),
            color: COLORS[match *v {
                "task" => 1,
                "timer" => 2,
                _ => 0,
            }],
            dashed: *v == w5::NOFOLLOW,
            points: sizes
                .iter()
                .filter_map(|n| reports.iter().find(|r| r.variant == *v && r.n == *n))
                .map(|r| (r.n as f64, r.rss_per_lock() / 1024.0))
                .collect(),
        })
        .collect();
    let chart = Chart {
        title: "Client memory per held lock (RSS delta / locks)".into(),
        x_label: "held locks in one process".into(),
        y_label: "KiB per lock".into(),
        log_x: true,
        log_y: false,
        x_ticks: sizes.iter().map(|n| *n as f64).collect(),
        series,
        guides: vec![(1.0, "goal: 1 KiB".into())],
    };
    std::fs::write(plots.join("memory.svg"), svg::render(&chart))?;
    write_follow_cost(body, reports);
    Ok(())
}

fn variant_name(v: &str) -> &'static str {
    match v {
        "nlock" => "nlock",
        w5::NOFOLLOW => "nlock, follow_changes off",
        "task" => "tokio task per lock",
        "timer" => "one shared timer task",
        _ => "?",
    }
}

fn type_sizes() -> Vec<(&'static str, usize)> {
    use std::mem::size_of;
    type Ctx = actix::Context<nlock::actor::LockActor>;
    vec![
        (
            "nlock::actor::LockActor",
            size_of::<nlock::actor::LockActor>(),
        ),
        ("actix::Context<LockActor>", size_of::<Ctx>()),
        (
            "actix::dev::ContextFut<LockActor, _> (the actor's task future)",
            size_of::<actix::dev::ContextFut<nlock::actor::LockActor, Ctx>>(),
        ),
        ("nlock::LockHandle", size_of::<nlock::LockHandle>()),
        ("nlock::Holder", size_of::<nlock::Holder>()),
        ("nlock::LockState", size_of::<nlock::LockState>()),
    ]
}
