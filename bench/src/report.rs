//! BENCHMARKS.md and its plots, from the results of one run. Every number written here comes
//! from that run's samples; the only fixed numbers are the goals of issue 4.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::stats::{fmt_dur, fmt_rate, fmt_ratio, ratio};
use crate::svg::{self, Chart, Series, COLORS};
use crate::{w1, w2, w3, w4, w5};

#[derive(Default)]
pub struct Results {
    pub quick: bool,
    pub started_at: String,
    /// /proc/loadavg at the start and the end: other work on the machine shows here.
    pub load_start: String,
    pub load_end: String,
    pub elapsed: Duration,
    pub caps: Option<nlock::Capabilities>,
    pub value_len: usize,
    /// (name, version, flags)
    pub servers: Vec<(String, String, String)>,
    pub skipped: Vec<String>,
    /// (warm-up, iterations, rows)
    pub w1: Option<(usize, usize, Vec<w1::Row>)>,
    /// Workload 1 again with 1 ms of idle before each cycle.
    pub w1_idle: Option<(usize, usize, Vec<w1::Row>)>,
    pub w2: Option<(w2::Plan, Vec<w2::Row>)>,
    pub w3: Option<w3::Outcome>,
    /// (batches, operations per task, rows)
    pub w4: Option<(usize, usize, Vec<w4::Row>)>,
    pub w5: Option<Vec<w5::Report>>,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
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

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn find<T>(rows: &[T], name: impl Fn(&T) -> bool) -> Option<&T> {
    rows.iter().find(|r| name(r))
}

fn kib(bytes: f64) -> String {
    format!("{:.2} KiB", bytes / 1024.0)
}

pub fn write(out: &Path, r: &Results) -> Result<()> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let plots = dir.join("bench").join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let mut md = String::new();
    let mut summary: Vec<(String, String, String, &'static str)> = Vec::new();
    let mut body = String::new();

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
        w1_table(&mut body, rows);
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
            w1_table(&mut body, rows);
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

    // ---- Workload 5
    if let Some(reports) = &r.w5 {
        write_w5(&mut body, &mut summary, reports, &plots)?;
    }

    // ---- Workload 6
    if r.w1.is_some() || r.w2.is_some() || r.w4.is_some() {
        let _ = writeln!(body, "## 6. The peers: etcd and Redis\n");
        let mut have = vec![];
        for (name, _, _) in &r.servers {
            if name != "nats-server" {
                have.push(name.clone());
            }
        }
        if have.is_empty() {
            let _ = writeln!(body, "No peer ran in this run (see *Skipped* above).\n");
        } else {
            let _ = writeln!(
                body,
                "{} ran side by side with nlock in workloads 1, 2 and 4 above, interleaved in \
                 the same process (their rows in those tables). etcd: the v3 lock API \
                 (`etcd-client` `lock` with a lease granted per client, `unlock`); Redis: \
                 `SET key token NX PX 30000` and a Lua compare-and-delete. Neither can wait for a \
                 key the way a watch does: etcd's `lock` blocks in the server (which queues \
                 waiters in order), and Redis clients poll, here every 250 ms + jitter like the \
                 Go algorithm.\n",
                have.join(" and ")
            );
        }
        summary.push((
            "6".into(),
            "etcd and Redis reported side by side".into(),
            if have.is_empty() {
                "skipped".into()
            } else {
                have.join(", ")
            },
            if have.is_empty() {
                "not measured"
            } else {
                "reported"
            },
        ));
    }

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
    for (n, goal, measured, v) in &summary {
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
    md.push_str(&body);
    crate::analysis::write(&mut md, r);
    std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
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

fn write_w5(
    body: &mut String,
    summary: &mut Vec<(String, String, String, &'static str)>,
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

/// Workload 5's `nlock` against `nlock, follow_changes off`: what the change consumer costs.
fn write_follow_cost(body: &mut String, reports: &[w5::Report]) {
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
