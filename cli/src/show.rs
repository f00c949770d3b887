//! The bucket as it is: `ls`, `who`, `watch`, `info`, and the operator's `release --force`.
//! Text by default (the same on a terminal or in a pipe), JSON (one value per line) with
//! `--json`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use nlock::{KeyHolder, LockError, LockEvent, LockManager};
use serde::Serialize;

use crate::spinner::{held_for_ms, holder_text, human, now_ms};
use crate::{BucketArgs, Ctx, Failure};

/// A held key with what a reader wants to know about it now.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    held: &'a KeyHolder,
    /// Since the holder acquired it (holder's clock); absent for a foreign holder.
    held_for_ms: Option<u64>,
    /// Until the key expires unless refreshed: the last write's server time plus the bucket
    /// TTL, against this machine's clock (a lock with a shorter per-lock TTL expires sooner).
    expires_in_ms: Option<u64>,
    /// An elector's candidate, read from the holder's description: `{"id", "meta"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<serde_json::Value>,
}

fn row(held: &KeyHolder, ttl: Duration) -> Row<'_> {
    Row {
        held,
        leader: nlock::Leader::candidate_of(&held.holder)
            .map(|(id, meta)| serde_json::json!({ "id": id, "meta": meta })),
        held_for_ms: held_for_ms(held),
        expires_in_ms: held
            .stored_at_ms
            .map(|at| (at + ttl.as_millis() as u64).saturating_sub(now_ms())),
    }
}

pub fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string(value).map_err(|e| Failure::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn opt_human(ms: Option<u64>) -> String {
    ms.map(human).unwrap_or_else(|| "-".into())
}

pub async fn ls(ctx: &Ctx, manager: &LockManager, ttl: Duration) -> Result<u8, Failure> {
    let held = manager.holders().await?;
    let rows: Vec<Row> = held.iter().map(|h| row(h, ttl)).collect();
    if ctx.json {
        print_json(&rows)?;
        return Ok(0);
    }
    if rows.is_empty() {
        ctx.say("no locks held");
        return Ok(0);
    }
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.held.key.clone(),
                r.held.token.to_string(),
                opt_human(r.held_for_ms),
                opt_human(r.expires_in_ms),
                holder_text(&r.held.holder),
            ]
        })
        .collect();
    let header = ["KEY", "TOKEN", "HELD FOR", "LEFT", "HOLDER"].map(String::from);
    let mut widths = [0usize; 5];
    for line in std::iter::once(&header).chain(&table) {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for line in std::iter::once(&header).chain(&table) {
        let text = format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}",
            line[0],
            line[1],
            line[2],
            line[3],
            line[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        let _ = writeln!(out, "{}", text.trim_end());
    }
    Ok(0)
}

pub async fn who(
    ctx: &Ctx,
    manager: &LockManager,
    key: &str,
    ttl: Duration,
) -> Result<u8, Failure> {
    let Some(held) = manager.holder(key).await? else {
        if ctx.json {
            print_json(&serde_json::Value::Null)?;
        } else {
            println!("{key} is free");
        }
        return Err(Failure::Exit(crate::exit::NOT_HELD));
    };
    let r = row(&held, ttl);
    if ctx.json {
        print_json(&r)?;
    } else {
        println!(
            "{key} is held by {}\n  token {}, revision {}, held for {}, expires in {} unless refreshed",
            holder_text(&held.holder),
            held.token,
            held.revision,
            opt_human(r.held_for_ms),
            opt_human(r.expires_in_ms)
        );
    }
    Ok(0)
}

/// `HH:MM:SS.mmm` (UTC) of a time in milliseconds since the epoch.
pub fn clock(ms: u64) -> String {
    let day = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3_600_000,
        day / 60_000 % 60,
        day / 1000 % 60,
        day % 1000
    )
}

pub fn event_line(e: &LockEvent) -> String {
    let kind = e.kind.as_str();
    let mut line = format!(
        "{} {} {kind}",
        e.stored_at_ms
            .map(clock)
            .unwrap_or_else(|| "--:--:--.---".into()),
        e.key
    );
    if let Some(token) = e.token {
        line.push_str(&format!(" token {token}"));
    }
    if let Some(h) = &e.holder {
        line.push_str(&format!(" by {}", holder_text(h)));
    }
    line
}

/// Asks on the terminal; anything but y or yes declines.
fn confirm(question: &str) -> Result<bool, Failure> {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Other(format!("reading the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub async fn release(
    ctx: &Ctx,
    manager: &LockManager,
    key: &str,
    token: Option<u64>,
    yes: bool,
) -> Result<u8, Failure> {
    let Some(held) = manager.holder(key).await? else {
        return Err(LockError::NotHeld {
            key: key.to_owned(),
        }
        .into());
    };
    if let Some(expected) = token.filter(|t| *t != held.token) {
        return Err(LockError::TokenMismatch {
            key: key.to_owned(),
            expected,
            found: held.token,
        }
        .into());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Usage(format!(
                "not breaking {key} without confirmation: standard input is not a terminal; \
                 pass --yes"
            )));
        }
        let since = held_for_ms(&held)
            .map(|ms| format!(" for {}", human(ms)))
            .unwrap_or_default();
        let question = format!(
            "Break {key}, held by {} with token {}{since}? Its holder is told it lost the lock.",
            holder_text(&held.holder),
            held.token
        );
        if !confirm(&question)? {
            return Err(Failure::Other(format!("{key} not broken: not confirmed")));
        }
    }
    // The token shown (or given) is the tenure broken: a lock that changed hands since is
    // never deleted (token mismatch).
    let broken = manager.force_release(key, Some(held.token)).await?;
    if ctx.json {
        print_json(&broken)?;
    } else {
        ctx.say(format!(
            "broke {key}: token {} held by {}",
            broken.token,
            holder_text(&broken.holder)
        ));
    }
    Ok(0)
}

#[derive(Serialize)]
struct Info<'a> {
    context: Option<&'a str>,
    server_version: &'a str,
    jetstream: bool,
    bucket: BucketInfo<'a>,
    per_lock_ttl: bool,
    expiry_events: bool,
    needs_upgrade: bool,
    /// How long a bucket whose data is new grants nothing (TTL + clock skew); null when off.
    restart_grace_ms: Option<u64>,
    /// The grace in force now: how long it still runs (null when none).
    restart_grace_remaining_ms: Option<u64>,
}

#[derive(Serialize)]
struct BucketInfo<'a> {
    name: &'a str,
    ttl_s: u64,
    storage: &'a str,
    replicas: usize,
    layout: &'a str,
}

/// `2.15.1` → (2, 15); unparsable versions count as old.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

pub async fn info(
    ctx: &Ctx,
    manager: &LockManager,
    bucket: &BucketArgs,
    context: Option<&str>,
) -> Result<u8, Failure> {
    let caps = manager.capabilities();
    let modern = major_minor(&caps.server_version) >= (2, 11);
    let grace_now = manager.restart_grace().await?;
    let info = Info {
        context,
        server_version: &caps.server_version,
        // Starting a manager needs JetStream: it is there, or this is never reached.
        jetstream: true,
        bucket: BucketInfo {
            name: &bucket.bucket,
            ttl_s: bucket.ttl.as_secs(),
            storage: match bucket.storage {
                crate::StorageArg::Memory => "memory",
                crate::StorageArg::File => "file",
            },
            replicas: bucket.replicas,
            layout: if bucket.go_compatible {
                "go-compatible"
            } else {
                "full"
            },
        },
        per_lock_ttl: caps.per_lock_ttl,
        expiry_events: caps.expiry_events,
        // A 2.11+ server, a full-layout manager, and still no limit markers: an old bucket.
        needs_upgrade: modern && !bucket.go_compatible && !caps.expiry_events,
        restart_grace_ms: caps.restart_grace.map(|d| d.as_millis() as u64),
        restart_grace_remaining_ms: grace_now.map(|g| g.remaining.as_millis() as u64),
    };
    if ctx.json {
        print_json(&info)?;
        return Ok(0);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    if let Some(name) = info.context {
        println!("context:        {name}");
    }
    println!("server:         nats-server {}", info.server_version);
    println!("jetstream:      enabled");
    println!(
        "bucket:         {} (ttl {}s, {} storage, {} replica{}, {} layout)",
        info.bucket.name,
        info.bucket.ttl_s,
        info.bucket.storage,
        info.bucket.replicas,
        if info.bucket.replicas == 1 { "" } else { "s" },
        info.bucket.layout
    );
    println!("per-lock TTL:   {}", yes_no(info.per_lock_ttl));
    println!("expiry events:  {}", yes_no(info.expiry_events));
    match (info.restart_grace_ms, info.restart_grace_remaining_ms) {
        (None, _) => println!("restart grace:  off (--no-restart-grace)"),
        (Some(len), None) => println!(
            "restart grace:  {:.1}s after the bucket's data begins; not in force",
            len as f64 / 1000.0
        ),
        (Some(len), Some(left)) => println!(
            "restart grace:  {:.1}s after the bucket's data begins; in force: no lock is \
             granted for {:.1}s more (the bucket is new, or lost its data)",
            len as f64 / 1000.0,
            left as f64 / 1000.0
        ),
    }
    if info.needs_upgrade {
        println!(
            "upgrade:        needed: the bucket lacks per-message TTL and limit markers; \
             `nlock info --upgrade-bucket` adds them (not undoable; Go nlock cannot use it after)"
        );
    } else if !modern {
        println!(
            "upgrade:        not possible: per-lock TTL and expiry events need nats-server 2.11+"
        );
    } else {
        println!("upgrade:        not needed");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_versions() {
        assert_eq!(clock(86_400_000 + 3_723_004), "01:02:03.004");
        assert_eq!(major_minor("2.15.1"), (2, 15));
        assert_eq!(major_minor("v2.9.10"), (2, 9));
        assert_eq!(major_minor("2.11.0-RC.1"), (2, 11));
        assert_eq!(major_minor("junk"), (0, 0));
    }
}
