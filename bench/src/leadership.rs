//! Leadership measurements from `tests/it/leader_measure.rs`, as `scripts/bench` saved them:
//! one file per server in the `--leadership` directory, named so that they sort in column
//! order, each a few header lines (`server:`, `trials:`, `load:`) and then the test's
//! `measured: WHAT: p50 X ms, p99 Y ms, max Z ms (N trials)` lines.

use std::path::Path;

use anyhow::{anyhow, Context as _, Result};

/// One measurement of one server.
#[derive(Debug, Clone)]
pub struct Measured {
    /// What was measured, without the parenthesised note at its end.
    pub what: String,
    /// That note, if any: e.g. "limit markers" or "no markers, 100 ms poll".
    pub note: Option<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub trials: usize,
}

/// The measurements on one server.
#[derive(Debug, Clone)]
pub struct Server {
    /// The server's version, e.g. "2.15.1".
    pub version: String,
    pub trials: usize,
    /// /proc/loadavg before the measurement.
    pub load: String,
    pub measured: Vec<Measured>,
}

/// Reads every `*.txt` in `dir`, in name order.
pub fn read(dir: &Path) -> Result<Vec<Server>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        out.push(parse(&text).with_context(|| format!("in {}", f.display()))?);
    }
    if out.is_empty() {
        return Err(anyhow!("no leadership measurements in {}", dir.display()));
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Server> {
    let mut s = Server {
        version: String::new(),
        trials: 0,
        load: String::new(),
        measured: Vec::new(),
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("server: ") {
            s.version = v
                .rsplit(' ')
                .next()
                .unwrap_or(v)
                .trim_start_matches('v')
                .into();
        } else if let Some(v) = line.strip_prefix("trials: ") {
            s.trials = v.trim().parse()?;
        } else if let Some(v) = line.strip_prefix("load: ") {
            s.load = v.trim().into();
        } else if let Some(v) = line.strip_prefix("measured: ") {
            s.measured
                .push(measured(v).with_context(|| format!("line {line:?}"))?);
        }
    }
    if s.measured.is_empty() {
        return Err(anyhow!("no `measured:` lines"));
    }
    Ok(s)
}

/// `WHAT: p50 X ms, p99 Y ms, max Z ms (N trials)`.
fn measured(line: &str) -> Result<Measured> {
    let (what, rest) = line
        .rsplit_once(": p50 ")
        .ok_or_else(|| anyhow!("no p50"))?;
    let num = |after: &str| -> Result<f64> {
        let at = rest.find(after).ok_or_else(|| anyhow!("no {after}"))? + after.len();
        let v = rest[at..].split_whitespace().next().unwrap_or("");
        Ok(v.parse()?)
    };
    let trials = rest
        .rsplit_once('(')
        .and_then(|(_, t)| t.split_whitespace().next())
        .ok_or_else(|| anyhow!("no trial count"))?
        .parse()?;
    let (what, note) = match what.strip_suffix(')').and_then(|w| w.rsplit_once(" (")) {
        Some((w, n)) => (w.to_owned(), Some(n.to_owned())),
        None => (what.to_owned(), None),
    };
    Ok(Measured {
        what,
        note,
        p50_ms: rest
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse()
            .context("p50")?,
        p99_ms: num("p99 ")?,
        max_ms: num("max ")?,
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_with_a_note() {
        let m = measured(
            "killed leader, server expiry to the next role running (limit markers): \
             p50 225.10 ms, p99 238.10 ms, max 240.00 ms (50 trials)",
        )
        .unwrap();
        assert_eq!(
            m.what,
            "killed leader, server expiry to the next role running"
        );
        assert_eq!(m.note.as_deref(), Some("limit markers"));
        assert_eq!((m.p50_ms, m.p99_ms, m.max_ms), (225.1, 238.1, 240.0));
        assert_eq!(m.trials, 50);
    }

    #[test]
    fn a_file() {
        let s = parse(
            "server: nats-server: v2.9.10\ntrials: 20\nload: 1.0 2.0 3.0\n\
             measured: resign to the next role running: p50 4.60 ms, p99 9.00 ms, max 9.00 ms (20 trials)\n",
        )
        .unwrap();
        assert_eq!(s.version, "2.9.10");
        assert_eq!(s.trials, 20);
        assert_eq!(s.measured[0].what, "resign to the next role running");
        assert_eq!(s.measured[0].note, None);
    }
}
