//! `nlock leader KEY`: who leads an election, and with `--watch` every change of leadership
//! as it lands (elected, resigned, deleted, expired, ended), as `etcdctl elect -l` does. A
//! reader: it never campaigns and never creates the bucket.

use futures::StreamExt;
use nlock::{Leader, LeaderChange, LeaderChangeKind, LockManager};

use crate::show::{clock, print_json};
use crate::spinner::{human, now_ms};
use crate::{Ctx, Failure};

/// A leader in a few words: `ID key=value... (pid P on HOST), token N, since HH:MM:SS.mmm`.
fn leader_text(l: &Leader) -> String {
    let since = if l.since_ms == 0 {
        String::new()
    } else {
        format!(
            ", since {} UTC ({} ago)",
            clock(l.since_ms),
            human(now_ms().saturating_sub(l.since_ms))
        )
    };
    format!(
        "{}{} (pid {} on {}), token {}{since}",
        l.identity,
        crate::spinner::meta_text(&l.metadata),
        l.holder.pid,
        l.holder.host,
        l.token
    )
}

fn kind_text(kind: LeaderChangeKind) -> &'static str {
    match kind {
        LeaderChangeKind::Elected => "elected",
        LeaderChangeKind::Resigned => "resigned",
        LeaderChangeKind::Deleted => "deleted",
        LeaderChangeKind::Expired => "expired",
        LeaderChangeKind::Ended => "ended",
        _ => "changed",
    }
}

/// One line per change: `HH:MM:SS.mmm KEY elected ID ... token N`.
fn change_line(c: &LeaderChange) -> String {
    let at = c
        .stored_at_ms
        .map(clock)
        .unwrap_or_else(|| "--:--:--.---".into());
    let mut line = format!("{at} {} {}", c.key, kind_text(c.kind));
    if let Some(l) = &c.leader {
        line.push_str(&format!(
            " {}{} (pid {} on {}) token {}",
            l.identity,
            crate::spinner::meta_text(&l.metadata),
            l.holder.pid,
            l.holder.host,
            l.token
        ));
    }
    line
}

/// Prints the leader of `key` (exit 6 when none), or with `watch` every change from now on.
pub async fn leader(
    ctx: &Ctx,
    manager: &LockManager,
    key: &str,
    watch: bool,
) -> Result<u8, Failure> {
    if !watch {
        let Some(l) = manager.leader(key).await? else {
            if ctx.json {
                print_json(&serde_json::Value::Null)?;
            } else {
                println!("{key} has no leader");
            }
            return Err(Failure::Exit(crate::exit::NOT_HELD));
        };
        if ctx.json {
            print_json(&l)?;
        } else {
            println!("{key} is led by {}", leader_text(&l));
        }
        return Ok(0);
    }
    let mut changes = manager.leader_changes(key).await?;
    ctx.say(format!("watching the leadership of {key}; Ctrl-C to stop"));
    while let Some(c) = changes.next().await {
        if ctx.json {
            print_json(&c)?;
        } else {
            println!("{}", change_line(&c));
        }
    }
    Ok(0)
}
