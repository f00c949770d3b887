//! The front of BENCHMARKS.md: the title, the summary table, the machine and versions, and
//! how it is measured.

use std::fmt::Write as _;
use std::path::Path;

use super::{Results, Summary};

/// Writes the front matter into `md`, with the summary rows the sections collected.
pub(super) fn write(md: &mut String, summary: &Summary, r: &Results) {
    // ---- Header, summary, machine
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench`{} on {}, in {:.0} s. Every number below is from that run. \
         Run to run, numbers on this machine vary by 25 to 30 %: compare the ratios, which come \
         from contenders run interleaved in one process against the same servers.\n",
        if r.quick {
            " --quick (few samples: a smoke test, not a result)"
        } else {
            ""
        },
        r.started_at,
        r.elapsed.as_secs_f64()
    );
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(md, "| # | goal | measured | verdict |\n|---|---|---|---|");
    for (n, goal, measured, v) in summary {
        let _ = writeln!(md, "| {n} | {goal} | {measured} | {v} |");
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "## Machine and versions\n");
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(
        md,
        "- CPU: {} ({cpus} cores available)",
        proc_field("/proc/cpuinfo", "model name")
    );
    let _ = writeln!(md, "- Memory: {}", proc_field("/proc/meminfo", "MemTotal"));
    let _ = writeln!(
        md,
        "- Load average (1, 5, 15 min) at the start: {}; at the end: {}",
        r.load_start, r.load_end
    );
    let _ = writeln!(
        md,
        "- Kernel: {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let _ = writeln!(md, "- Rust: {}", first_line("rustc", &["--version"]));
    let crates = crate_versions(&[
        "nlock",
        "async-nats",
        "actix",
        "tokio",
        "etcd-client",
        "redis",
    ]);
    let _ = writeln!(
        md,
        "- Crates: {}",
        crates
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(c) = &r.caps {
        let _ = writeln!(
            md,
            "- nlock sees server {}: per-lock TTL {}, expiry events (limit markers) {}",
            c.server_version, c.per_lock_ttl, c.expiry_events
        );
    }
    let _ = writeln!(md, "\n| server | version | flags |\n|---|---|---|");
    for (name, version, flags) in &r.servers {
        let _ = writeln!(md, "| {name} | {version} | `{flags}` |");
    }
    let _ = writeln!(md);
    if !r.skipped.is_empty() {
        let _ = writeln!(md, "Skipped:\n");
        for s in &r.skipped {
            let _ = writeln!(md, "- {s}");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "## How it is measured\n");
    let _ = writeln!(
        md,
        "- One command: `scripts/bench` (full) or `scripts/bench --quick`. It builds the \
         `nlock-bench` crate (a workspace member, so etcd, Redis and plotting stay out of \
         nlock's dependency tree), starts nats-server, etcd and redis-server on 127.0.0.1 with \
         temp dirs, runs the workloads, and stops the servers.\n\
         - Every client runs on the benchmark's one actix thread; the servers run in their own \
         processes on the other core.\n\
         - The NATS contenders share one bucket that nlock creates with its defaults (memory \
         storage, history 1, TTL 30 s, limit markers), each on its own keys, and write the \
         same {}-byte value (nlock's own JSON holder record).\n\
         - The raw floor is async-nats used directly: `kv.update` with the expected revision, \
         and `kv.delete_expect_revision`'s message published directly so its ack's revision \
         (the delete marker's) is kept for the next update. The Go algorithm is Go nlock's: \
         `kv.create` (update expecting 0, then on a conflict a read and an update on the \
         marker) and `kv.delete_expect_revision`, polling every 250 ms + up to 25 ms of jitter \
         when held.\n\
         - Percentiles are nearest-rank over all samples of a contender. A warm-up precedes \
         each measured series.",
        r.value_len
    );
    let _ = writeln!(md);
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Versions of the crates that matter, from the workspace's Cargo.lock.
fn crate_versions(names: &[&str]) -> Vec<(String, String)> {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut out = Vec::new();
    for block in text.split("[[package]]") {
        let get = |k: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        if let (Some(name), Some(version)) = (get("name"), get("version")) {
            if names.contains(&name.as_str()) {
                out.push((name, version));
            }
        }
    }
    out.sort();
    out
}
