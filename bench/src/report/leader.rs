//! The "## Leadership" section: written from the leadership measurements `scripts/bench`
//! made before the workloads, or, when this run made none (`--only`, or
//! `BENCH_LEADERSHIP=0`), the previous BENCHMARKS.md's section kept verbatim, with a line
//! that says so.

use std::fmt::Write as _;
use std::path::Path;

use super::{verdict, Summary};
use crate::leadership::{Measured, Server};

const HEADING: &str = "## Leadership";
/// The first line of a kept section, after the heading; replaced, never stacked.
const KEPT: &str = "_Kept verbatim from the previous BENCHMARKS.md:";

/// The measurements, with how each is taken and its goal, by the start of its name.
const ROWS: [(&str, &str, &str); 6] = [
    (
        "resign to the next role running",
        "`Elector::resign` called → the next candidate's role `started()`; the others already campaign",
        "p50 < 10 ms",
    ),
    (
        "foreign delete to the old role stopped",
        "before `kv.delete` of the leader's key → the old leader's role `stopped()`",
        "p99 < 50 ms",
    ),
    (
        "foreign delete to the new role running",
        "as above → the next role `started()`, after the lock-delay",
        "",
    ),
    (
        "killed leader, server expiry to the next role running",
        "the leader is a child process refreshing every 333 ms (TTL 1 s), SIGKILLed at a random \
         moment; from its last write's server timestamp + TTL to the next role `started()` \
         (wall clock)",
        "p50 < 20 ms on 2.15.1 and 2.9.10 (issue 14)",
    ),
    (
        "killed leader, server expiry to its marker's timestamp",
        "the `Expired` event's `stored_at_ms` − (last write + TTL)",
        "",
    ),
    (
        "killed leader, its marker's timestamp to the next role running",
        "from the marker's server timestamp to the next role `started()`",
        "",
    ),
];

/// The section from this run's measurements; the summary gets its goals.
pub(super) fn write(md: &mut String, summary: &mut Summary, servers: &[Server]) {
    let _ = writeln!(md, "\n{HEADING}\n");
    let _ = writeln!(
        md,
        "Measured by `scripts/bench` before the workloads, with `tests/it/leader_measure.rs` \
         (`cargo test`, so a debug build of nlock; the test prints these numbers and asserts \
         only order: no overlap, increasing tokens), once per server: one nats-server per \
         test on loopback, three candidates on separate connections, TTL 3 s (1 s for the \
         kill). Times within one process are on its monotonic clock; the kill compares the \
         server's timestamps with this machine's wall clock. Load average before each: {}.\n",
        servers
            .iter()
            .map(|s| format!("{} on {}", s.load, s.version))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut head = String::from("| what | how | goal |");
    let mut rule = String::from("|---|---|---|");
    for s in servers {
        let _ = write!(head, " {} ({} trials) |", s.version, s.trials);
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    let mut names: Vec<&str> = Vec::new();
    for m in servers.iter().flat_map(|s| &s.measured) {
        if !names.contains(&m.what.as_str()) {
            names.push(&m.what);
        }
    }
    // In the order of ROWS; any other measurement after them.
    names.sort_by_key(|w| {
        ROWS.iter()
            .position(|(r, _, _)| w.starts_with(r))
            .unwrap_or(usize::MAX)
    });
    for what in &names {
        let (how, goal) = ROWS
            .iter()
            .find(|(w, _, _)| what.starts_with(w))
            .map_or(("", ""), |(_, h, g)| (*h, *g));
        let mut line = format!("| {what} | {how} | {goal} |");
        for s in servers {
            let cell = find(s, what).map_or_else(|| "—".into(), |m| cell(m, s.trials));
            let _ = write!(line, " {cell} |");
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md);
    goals(summary, servers);
}

fn find<'a>(s: &'a Server, what: &str) -> Option<&'a Measured> {
    s.measured.iter().find(|m| m.what.starts_with(what))
}

/// p50, p99 and max, with the note, and the count when it is not every trial.
fn cell(m: &Measured, trials: usize) -> String {
    let mut notes: Vec<String> = m.note.iter().cloned().collect();
    if m.trials != trials {
        notes.push(format!("{} of {trials} trials", m.trials));
    }
    let note = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    format!(
        "p50 **{:.1} ms**, p99 {:.1} ms, max {:.1} ms{note}",
        m.p50_ms, m.p99_ms, m.max_ms
    )
}

/// A goal: (the measurement's name, the goal's words, the statistic, its limit in ms).
type Goal = (&'static str, &'static str, fn(&Measured) -> f64, f64);

/// The summary's rows: one per goal, measured on every server.
fn goals(summary: &mut Summary, servers: &[Server]) {
    let goals: [Goal; 3] = [
        (ROWS[0].0, "resign: p50 under 10 ms", |m| m.p50_ms, 10.0),
        (
            ROWS[1].0,
            "foreign delete: old role stopped, p99 under 50 ms",
            |m| m.p99_ms,
            50.0,
        ),
        (
            ROWS[3].0,
            "issue 14: leader SIGKILLed, p50 from the key's expiry to the next role under 20 ms, on every server",
            |m| m.p50_ms,
            20.0,
        ),
    ];
    for (what, goal, stat, limit) in goals {
        let got: Vec<(String, f64)> = servers
            .iter()
            .filter_map(|s| find(s, what).map(|m| (s.version.clone(), stat(m))))
            .collect();
        let mut measured = got
            .iter()
            .map(|(v, x)| format!("{x:.1} ms on {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        if measured.is_empty() {
            measured = "no such measurement in this run".into();
        }
        let ok = (!got.is_empty()).then(|| got.iter().all(|(_, x)| *x < limit));
        summary.push(("L".into(), goal.into(), measured, verdict(ok)));
    }
}

/// The previous report's leadership section (from its heading to the next `## ` heading or
/// the end), from `out` if it has one, else from the repository's BENCHMARKS.md; with a
/// first line that says it was kept. `None` if neither has one.
pub(super) fn kept(out: &Path) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let section = [out, root.as_path()]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|text| section(&text))?;
    let body = section
        .strip_prefix(HEADING)?
        .trim_start_matches('\n')
        .lines()
        .skip_while(|l| l.starts_with(KEPT))
        .collect::<Vec<_>>()
        .join("\n");
    Some(format!(
        "\n{HEADING}\n\n{KEPT} this run of `scripts/bench` did not measure leadership (it ran \
         with `--only`, or with BENCH_LEADERSHIP=0)._\n\n{}\n",
        body.trim()
    ))
}

/// The text from `## Leadership` to the next second-level heading.
fn section(text: &str) -> Option<String> {
    let start = text.find(&format!("\n{HEADING}\n"))? + 1;
    let rest = &text[start..];
    let end = rest[HEADING.len()..]
        .find("\n## ")
        .map_or(rest.len(), |i| i + HEADING.len() + 1);
    Some(rest[..end].to_owned())
}
