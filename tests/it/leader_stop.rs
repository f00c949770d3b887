//! The end of a term with a role that is slow to stop, or never stops: the term is kept
//! (refreshed) while the role stops and released only after it stopped; past `stop_timeout`
//! it is left to expire, never released; the candidate stops reporting itself leader as
//! soon as its lease is gone; shutdowns return although a role never stops.

use std::time::Duration;

use futures::StreamExt;
use nlock::{ElectorStatus, LeaderChangeKind};

use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;
use crate::leader::{elect, options, Book, KEY};

/// Longer than the TTL (2 s) by far: a term released at its lease deadline (the old bound)
/// would let the next role start within it.
const HELD: Duration = Duration::from_secs(5);

#[actix::test]
async fn a_slow_role_keeps_its_term_until_it_stopped_over_resign_step_down_and_shutdown() {
    let env = Env::start().await;
    let config = env.config().ttl(Duration::from_secs(2));
    let book = Book::default();
    let ms = [
        env.manager(config.clone()).await,
        env.manager(config.clone()).await,
        env.manager(config.clone()).await,
    ];
    let slow = |who: &str| options(who).stop_timeout(Duration::from_secs(60));
    let electors: Vec<_> = ["a", "b", "c"]
        .iter()
        .zip(&ms)
        .map(|(who, m)| (who.to_string(), elect(m, who, slow(who), &book)))
        .collect();
    let find = |who: &str| electors.iter().find(|(w, _)| w == who).unwrap().1.clone();
    book.hold_stop();
    let (first, t1) = book.next_term(0).await;

    // 1. A resign: the role keeps running for HELD, its term with it.
    let e = find(&first);
    let resign = actix::spawn(async move { e.resign(Duration::from_secs(60)).await });
    must_eventually(
        PATIENCE,
        "the resigning candidate no longer leads",
        || async { !find(&first).is_leader() },
    )
    .await;
    tokio::time::sleep(HELD).await; // the fault: a role that takes HELD to stop
    assert_eq!(
        book.running(),
        Some((first.clone(), t1)),
        "{:?}",
        book.entries()
    );
    assert!(!find(&first).is_leader());
    book.let_stop();
    let (second, t2) = book.next_term(t1).await;
    resign.await.unwrap();

    // 2. A step-down asked by the role itself.
    book.hold_stop();
    book.role(&second).do_send(crate::leader::Poke::Unhealthy);
    tokio::time::sleep(HELD).await;
    assert_eq!(
        book.running(),
        Some((second.clone(), t2)),
        "{:?}",
        book.entries()
    );
    book.let_stop();
    let (third, t3) = book.next_term(t2).await;

    // 3. The candidate's shutdown.
    book.hold_stop();
    let e = find(&third);
    let shutdown = actix::spawn(async move { e.shutdown().await });
    tokio::time::sleep(HELD).await;
    assert_eq!(
        book.running(),
        Some((third.clone(), t3)),
        "{:?}",
        book.entries()
    );
    book.let_stop();
    book.next_term(t3).await;
    shutdown.await.unwrap();
    book.check();
}

#[actix::test]
async fn is_leader_turns_false_when_the_lease_is_lost_while_the_role_still_stops() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let book = Book::default();
    let a = elect(&m, "a", options("a"), &book);
    let (_, token) = book.next_term(0).await;
    assert_eq!(a.status(), ElectorStatus::Leading { token });
    book.hold_stop();

    env.kv().await.delete(KEY).await.unwrap();
    must_eventually(PATIENCE, "a no longer leads", || async { !a.is_leader() }).await;
    assert_eq!(a.status(), ElectorStatus::Ending { token });
    assert_eq!(book.running(), Some(("a".into(), token)), "still stopping");

    book.let_stop();
    must_eventually(PATIENCE, "the role stopped", || async {
        book.running().is_none()
    })
    .await;
    book.check();
}

#[actix::test]
async fn a_role_that_never_stops_does_not_hang_shutdown_and_its_term_expires_unreleased() {
    let env = Env::start().await;
    let config = env.config();
    let book = Book::default();
    let observer = env.manager(config.clone()).await;
    let mut changes = observer.leader_changes(KEY).await.unwrap();
    let ma = env.manager(config.clone()).await;
    let mb = env.manager(config.clone()).await;
    let stop_timeout = Duration::from_millis(300);
    let _a = elect(&ma, "a", options("a").stop_timeout(stop_timeout), &book);
    let (_, t1) = book.next_term(0).await;
    let _b = elect(&mb, "b", options("b"), &book);
    book.hold_stop();

    // The manager's shutdown stops the elector first, which gives up on the role after
    // stop_timeout: both return although the role never stops.
    tokio::time::timeout(PATIENCE, ma.shutdown())
        .await
        .expect("the manager's shutdown returns although the role never stops");
    assert_eq!(
        book.running(),
        Some(("a".into(), t1)),
        "the role still runs"
    );

    // The term was neither released nor deleted: it expired, and only then b leads.
    let (who, _) = book.next_term(t1).await;
    assert_eq!(who, "b");
    let mut kinds = Vec::new();
    while let Some(c) = tokio::time::timeout(PATIENCE, changes.next())
        .await
        .expect("a change")
    {
        let l = c.leader.clone().unwrap();
        kinds.push((c.kind, l.identity.clone()));
        if c.kind == LeaderChangeKind::Elected && l.identity == "b" {
            break;
        }
    }
    // An expiry, not a release: `Expired`, or `Ended` on servers without expiry markers.
    let end = if env.modern() {
        LeaderChangeKind::Expired
    } else {
        LeaderChangeKind::Ended
    };
    assert_eq!(
        kinds,
        [
            (LeaderChangeKind::Elected, "a".to_owned()),
            (end, "a".to_owned()),
            (LeaderChangeKind::Elected, "b".to_owned()),
        ]
    );
    book.let_stop();
}
