//! `nlock watch`: each key's last change, then every change as it lands; and when the
//! connection drops, a line saying so, and once it is back a line saying that and what
//! changed meanwhile (the holders now against what was last shown).

use std::collections::BTreeMap;

use futures::StreamExt;
use nlock::{ConnectionState, KeyHolder, LockEvent, LockEventKind, LockManager};

use crate::show::{event_line, print_json};
use crate::spinner::holder_text;
use crate::{Ctx, Failure};

/// What the watch has shown as held: key → token.
type Shown = BTreeMap<String, u64>;

/// Folds an event into what was shown, and says whether to print it: after a reconnect the
/// resumed stream can repeat what the catch-up already told (an acquire shown from the
/// snapshot) or end a tenure this watch never showed (one that began and ended while the
/// connection was down); those are left out.
fn absorb(shown: &mut Shown, e: &LockEvent, resynced: bool) -> bool {
    match e.kind {
        LockEventKind::Acquired | LockEventKind::Refreshed => {
            let Some(token) = e.token else { return true };
            let known = shown.insert(e.key.clone(), token) == Some(token);
            !(resynced && known && e.kind == LockEventKind::Acquired)
        }
        LockEventKind::Released | LockEventKind::Deleted | LockEventKind::Expired => {
            let was = shown.remove(&e.key);
            !(resynced && (was.is_none() || (e.token.is_some() && was != e.token)))
        }
        _ => true,
    }
}

/// A line for the status of the connection, on standard output (with the events it explains)
/// as text or JSON.
fn status(ctx: &Ctx, text: &str, json: serde_json::Value) -> Result<(), Failure> {
    if ctx.json {
        print_json(&json)
    } else {
        println!("nlock: {text}");
        Ok(())
    }
}

/// What changed between what was shown and the holders now: the tenures shown that are no
/// longer there (key, token), and the keys held now by a tenure not shown.
fn differences(shown: &Shown, now: &Shown) -> (Vec<(String, u64)>, Vec<String>) {
    let ended = shown
        .iter()
        .filter(|(key, token)| now.get(*key) != Some(*token))
        .map(|(key, token)| (key.clone(), *token))
        .collect();
    let acquired = now
        .iter()
        .filter(|(key, token)| shown.get(*key) != Some(*token))
        .map(|(key, _)| key.clone())
        .collect();
    (ended, acquired)
}

/// After a reconnect: the holders now against what was shown, one line per difference.
fn catch_up(ctx: &Ctx, shown: &mut Shown, now: &[KeyHolder]) -> Result<(), Failure> {
    let current: Shown = now.iter().map(|h| (h.key.clone(), h.token)).collect();
    let (ended, acquired) = differences(shown, &current);
    for (key, token) in ended {
        status(
            ctx,
            &format!("{key} token {token} ended while disconnected"),
            serde_json::json!({ "key": key, "kind": "ended_while_disconnected", "token": token }),
        )?;
    }
    for h in now.iter().filter(|h| acquired.contains(&h.key)) {
        status(
            ctx,
            &format!(
                "{} acquired while disconnected: token {} by {}",
                h.key,
                h.token,
                holder_text(&h.holder)
            ),
            serde_json::json!({
                "key": h.key, "kind": "acquired_while_disconnected", "token": h.token,
                "holder": h.holder,
            }),
        )?;
    }
    *shown = current;
    Ok(())
}

pub async fn watch(
    ctx: &Ctx,
    manager: &LockManager,
    filter: Option<&str>,
    refreshes: bool,
) -> Result<u8, Failure> {
    let filter = filter.unwrap_or(">");
    let mut events = manager.events(filter).await?;
    let mut connection = manager.connection_state();
    let mut shown = Shown::new();
    let mut resynced = false;
    loop {
        let changed = async {
            match connection.as_mut() {
                Some(c) => c.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            e = events.next() => {
                let Some(e) = e else { return Ok(0) };
                if !absorb(&mut shown, &e, resynced) {
                    continue;
                }
                if e.kind == LockEventKind::Refreshed && !refreshes {
                    continue;
                }
                if ctx.json {
                    print_json(&e)?;
                } else {
                    println!("{}", event_line(&e));
                }
            }
            alive = changed => {
                if !alive {
                    connection = None;
                    continue;
                }
                let state = connection.as_mut().map(|c| *c.borrow_and_update());
                match state {
                    Some(ConnectionState::Disconnected) => status(
                        ctx,
                        "connection lost; reconnecting (changes meanwhile are shown once it is back)",
                        serde_json::json!({ "connection": "lost" }),
                    )?,
                    Some(ConnectionState::Connected) => {
                        status(ctx, "reconnected", serde_json::json!({ "connection": "reconnected" }))?;
                        let Some(held) = holders_when_back(ctx, manager).await else {
                            continue;
                        };
                        let now: Vec<KeyHolder> = held
                            .into_iter()
                            .filter(|h| nlock_matches(filter, &h.key))
                            .collect();
                        catch_up(ctx, &mut shown, &now)?;
                        resynced = true;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The holders once the server answers again: JetStream can take a moment after a
/// reconnect. `None` (said on standard error) when it does not answer within a few tries.
async fn holders_when_back(ctx: &Ctx, manager: &LockManager) -> Option<Vec<KeyHolder>> {
    let mut last = None;
    for _ in 0..10 {
        match manager.holders().await {
            Ok(held) => return Some(held),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    if let Some(e) = last {
        ctx.say(format!(
            "cannot read the holders to show what changed meanwhile: {e}"
        ));
    }
    None
}

/// Whether `key` matches the NATS-style `filter` (`*` one token, a final `>` the rest).
fn nlock_matches(filter: &str, key: &str) -> bool {
    let mut keys = key.split('.');
    for f in filter.split('.') {
        if f == ">" {
            return keys.next().is_some();
        }
        match keys.next() {
            Some(k) if f == "*" || f == k => {}
            _ => return false,
        }
    }
    keys.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::{differences, nlock_matches, Shown};

    #[test]
    fn differences_name_ended_and_new_tenures() {
        let shown: Shown = [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)].into();
        // a kept, b gone, c taken over by a new tenure, d new.
        let now: Shown = [("a".into(), 1), ("c".into(), 4), ("d".into(), 5)].into();
        let (ended, acquired) = differences(&shown, &now);
        assert_eq!(ended, vec![("b".into(), 2), ("c".into(), 3)]);
        assert_eq!(acquired, vec!["c".to_owned(), "d".to_owned()]);
        assert_eq!(differences(&now, &now), (vec![], vec![]));
    }

    #[test]
    fn filters_match_as_nats_subjects() {
        assert!(nlock_matches(">", "a.b"));
        assert!(nlock_matches("jobs.>", "jobs.a.b"));
        assert!(!nlock_matches("jobs.>", "jobs"));
        assert!(nlock_matches("*.nightly", "x.nightly"));
        assert!(!nlock_matches("*.nightly", "x.y.nightly"));
        assert!(nlock_matches("jobs.a", "jobs.a"));
        assert!(!nlock_matches("jobs.a", "jobs.ab"));
    }
}
