//! BENCHMARKS.md and its plots, from the results of one run. Every number written here comes
//! from that run's samples; the only fixed numbers are the goals of issue 4.
//!
//! One file per section: `front` (title, summary, machine, how it is measured), `w1` to `w5`
//! (with `w5_follow`), `peers` and `leader`; `plots` draws the plots of workloads 2 and 3.
//! The analysis after the workloads is `crate::analysis`, which reads the results and knows
//! nothing of this module; the leadership section ends the page.

use std::path::Path;

use anyhow::{Context as _, Result};

pub use crate::results::Results;

mod front;
mod leader;
mod peers;
mod plots;
mod w1;
mod w2;
mod w3;
mod w4;
mod w5;
mod w5_follow;

/// The summary table's rows, collected by the sections: (number, goal, measured, verdict).
type Summary = Vec<(String, String, String, &'static str)>;

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
    let mut summary: Summary = Vec::new();
    let mut body = String::new();

    w1::write(&mut body, &mut summary, r)?;
    w2::write(&mut body, &mut summary, &plots, r)?;
    w3::write(&mut body, &mut summary, &plots, r)?;
    w4::write(&mut body, &mut summary, r)?;
    if let Some(reports) = &r.w5 {
        w5::write_w5(&mut body, &mut summary, reports, &plots)?;
    }
    peers::write(&mut body, &mut summary, r)?;
    let mut tail = String::new();
    match &r.leadership {
        Some(servers) => leader::write(&mut tail, &mut summary, servers),
        None => tail.push_str(&leader::kept(out).unwrap_or_default()),
    }
    front::write(&mut md, &summary, r);
    md.push_str(&body);
    crate::analysis::write(&mut md, r);
    md.push_str(&tail);
    std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
