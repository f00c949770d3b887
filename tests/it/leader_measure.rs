//! Leadership handoffs, measured: prints `measured:` lines (p50, p99, max) for BENCHMARKS.md
//! and asserts only order (no overlap, increasing tokens), never time.
//!
//! `NLOCK_LEADER_TRIALS` sets the number of trials (default 5; BENCHMARKS.md used more);
//! `NLOCK_LEADER_MSG_TTL=1` gives the killed leader's key a TTL of its own (`Nats-TTL`):
//! `NLOCK_LEADER_TRIALS=100 cargo test --test it leader_measure -- --nocapture --test-threads=1`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures::StreamExt;
use nlock::LockEventKind;

use crate::fixture::{Env, PATIENCE};
use crate::harness::child::ChildClient;
use crate::leader::{elect, options, Book, What, KEY};

fn trials() -> usize {
    std::env::var("NLOCK_LEADER_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
}

/// Prints p50, p99 and max of `samples` (milliseconds).
fn report(what: &str, mut samples: Vec<f64>) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "measured: {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} trials)",
        at(0.5),
        at(0.99),
        at(1.0),
        samples.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[actix::test]
async fn resign_to_the_next_role_running() {
    let env = Env::start().await;
    let book = Book::default();
    let mut electors = Vec::new();
    let mut managers = Vec::new();
    for who in ["a", "b", "c"] {
        let m = env.manager(env.config()).await;
        electors.push((who, elect(&m, who, options(who), &book)));
        managers.push(m);
    }
    let mut samples = Vec::new();
    let (mut who, mut token) = book.next_term(0).await;
    for _ in 0..trials() {
        let elector = &electors.iter().find(|(w, _)| *w == who).unwrap().1;
        // Each waits until its competitors campaign again (they stand aside ~100 ms after
        // losing a term): a handoff needs someone waiting.
        crate::harness::must_eventually(PATIENCE, "all campaign", || async {
            electors
                .iter()
                .filter(|(w, _)| *w != who)
                .all(|(_, e)| e.status() == nlock::ElectorStatus::Campaigning)
        })
        .await;
        let asked = Instant::now();
        elector.resign(Duration::ZERO).await;
        (who, token) = book.next_term(token).await;
        let started = book.starts().last().unwrap().at;
        samples.push(ms(started - asked));
    }
    book.check();
    report("resign to the next role running", samples);
}

#[actix::test]
async fn foreign_delete_to_the_old_role_stopped() {
    let env = Env::start().await;
    let book = Book::default();
    let mut electors = Vec::new();
    for who in ["a", "b", "c"] {
        let m = env.manager(env.config()).await;
        let o = options(who).lock_delay(Duration::from_millis(200));
        electors.push((elect(&m, who, o, &book), m));
    }
    let kv = env.kv().await;
    let (mut stopped, mut next) = (Vec::new(), Vec::new());
    let (_, mut token) = book.next_term(0).await;
    for _ in 0..trials() {
        let deleted = Instant::now();
        kv.delete(KEY).await.unwrap();
        (_, token) = book.next_term(token).await;
        let entries = book.entries();
        let stop = entries.iter().rev().find(|e| e.what == What::Stop).unwrap();
        stopped.push(ms(stop.at - deleted));
        next.push(ms(entries.last().unwrap().at - deleted));
    }
    book.check();
    report("foreign delete to the old role stopped", stopped);
    report(
        "foreign delete to the new role running (lock-delay 200 ms)",
        next,
    );
}

#[actix::test]
async fn killed_leader_from_server_expiry_to_the_next_role_running() {
    let env = Env::start().await;
    let ttl = Duration::from_secs(1);
    let config = env.config().ttl(ttl);
    // With limit markers only the expiry marker can wake the waiter (its poll is 10 min);
    // without them, the poll every 100 ms finds the key gone.
    let retry = if env.modern() {
        Duration::from_secs(600)
    } else {
        Duration::from_millis(100)
    };
    let m = env.manager(config.clone().retry_interval(retry)).await;
    // Every write's server timestamp, from the start: (token, kind, stored_at_ms).
    let writes = Arc::new(Mutex::new(Vec::new()));
    let mut events = m.events(KEY).await.unwrap();
    let _follow = {
        let writes = writes.clone();
        actix::spawn(async move {
            while let Some(e) = events.next().await {
                writes
                    .lock()
                    .unwrap()
                    .push((e.token, e.kind, e.stored_at_ms));
            }
        })
    };
    let per_message_ttl = std::env::var("NLOCK_LEADER_MSG_TTL").is_ok() && env.modern();
    let book = Book::default();
    let (mut takeover, mut marker_lag, mut after_marker) = (Vec::new(), Vec::new(), Vec::new());
    let mut token = 0;
    for _ in 0..trials() {
        writes.lock().unwrap().clear();
        let mut child = ChildClient::start(&env.server.url(), &env.bucket, 1, 100).await;
        // On 2.11+ the key carries its own TTL (`Nats-TTL`), as a per-lock TTL would.
        let own_ttl = if per_message_ttl { " 1" } else { "" };
        child.send(&format!("elect {KEY} child{own_ttl}")).await;
        let old = child.expect("role-start").await["token"].as_u64().unwrap();
        assert!(old > token);
        let elector = elect(&m, "a", options("a"), &book);
        crate::harness::must_eventually(PATIENCE, "a campaigns", || async {
            elector.status() == nlock::ElectorStatus::Campaigning
        })
        .await;
        child.kill().await;
        (_, token) = book.next_term(old).await;
        let started = book.starts().last().unwrap().wall;
        let started_ms = started.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0;
        let seen = writes.lock().unwrap().clone();
        let last_write = seen
            .iter()
            .filter(|(t, k, _)| {
                *t == Some(old) && matches!(k, LockEventKind::Acquired | LockEventKind::Refreshed)
            })
            .filter_map(|(_, _, at)| *at)
            .max()
            .expect("the child's writes were seen");
        let expiry = last_write as f64 + ms(ttl);
        takeover.push(started_ms - expiry);
        if let Some(marker) = seen
            .iter()
            .find(|(_, k, _)| *k == LockEventKind::Expired)
            .and_then(|(_, _, at)| *at)
        {
            marker_lag.push(marker as f64 - expiry);
            after_marker.push(started_ms - marker as f64);
        }
        elector.shutdown().await;
    }
    book.check();
    let markers = if env.modern() {
        "limit markers"
    } else {
        "no markers, 100 ms poll"
    };
    report(
        &format!("killed leader, server expiry to the next role running ({markers})"),
        takeover,
    );
    if !marker_lag.is_empty() {
        report(
            "killed leader, server expiry to its marker's timestamp",
            marker_lag,
        );
        report(
            "killed leader, its marker's timestamp to the next role running",
            after_marker,
        );
    }
}
