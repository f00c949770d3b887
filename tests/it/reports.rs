//! Reports that match what happened (issue 13 §5): an unconfirmed release is not a release, a
//! foreign delete after an unknown outcome is a loss, a purge through the stream API is not
//! an expiry, a check after a foreign write does not extend a lease with keep-alive off, and
//! leader subscriptions are weak.

use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use nlock::{
    ElectorStatus, LeaderChange, LeaderChangeKind, LeaseEnd, LockError, LockEventKind, LockManager,
    LossReason,
};
use tokio::time::Instant;

use crate::fixture::{next_event_except, Env, LossProbe, PATIENCE};
use crate::harness::{must_eventually, ProxyMode, TcpProxy};
use crate::leader::{elect, options, Book, KEY};

async fn proxied_manager(proxy: &TcpProxy, config: nlock::ConfigBuilder) -> LockManager {
    LockManager::connect(&proxy.url(), config.build().unwrap())
        .await
        .unwrap()
}

/// The holder's connection is blackholed while it releases: no delete is confirmed before
/// the lease deadline. The release is an unknown outcome, the lease ends lost
/// (`ReleaseUnconfirmed`), subscribers are told, and the key is freed by its TTL.
#[actix::test]
async fn a_release_never_confirmed_ends_lost_not_released() {
    let env = Env::start().await;
    let proxy = TcpProxy::start(env.server.addr()).await;
    let a = proxied_manager(&proxy, env.config()).await;
    let b = env.manager(env.config()).await;
    let mut events = b.events("k").await.unwrap();
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let acquired = next_event_except(&mut events, LockEventKind::Refreshed).await;
    assert_eq!(acquired.kind, LockEventKind::Acquired);
    let probe = LossProbe::start();
    lock.subscribe(probe.recipient()).detach();

    proxy.set_mode(ProxyMode::Blackhole);
    let lease = lock.lease().clone();
    let err = tokio::time::timeout(PATIENCE, lock.release())
        .await
        .expect("the release ends at the lease deadline")
        .unwrap_err();
    assert_eq!(err.kind(), nlock::ReleaseErrorKind::OutcomeUnknown, "{err}");
    let unconfirmed = LeaseEnd::Lost {
        reason: LossReason::ReleaseUnconfirmed,
    };
    assert_eq!(lease.end(), Some(unconfirmed));
    assert!(!lease.is_held());
    assert_eq!(probe.next().await.reason, LossReason::ReleaseUnconfirmed);
    probe.assert_no_more().await;

    // Nothing was deleted: the key is freed by the server when its TTL runs out.
    let next = b.acquire("k", Some(PATIENCE)).await.unwrap();
    assert!(next.token() > lease.token());
    let end = next_event_except(&mut events, LockEventKind::Refreshed).await;
    if env.modern() {
        assert_eq!(end.kind, LockEventKind::Expired, "{end:?}");
    } else {
        assert_eq!(
            end.kind,
            LockEventKind::Acquired,
            "no marker before 2.11: {end:?}"
        );
    }
    proxy.set_mode(ProxyMode::Pass);
}

/// How someone else deletes a held key.
#[derive(Clone, Copy, Debug)]
enum ForeignDelete {
    /// A plain KV delete (`nats kv del`).
    Kv,
    /// An operator's break: its marker names the holder's tenure.
    Forced,
}

/// The holder's delete gets no answer (unknown outcome), and meanwhile someone else deletes
/// the key. When the holder hears again, the key's marker is not its own: a loss (`Deleted`),
/// never a release.
async fn unanswered_release_then(how: ForeignDelete) {
    let env = Env::start().await;
    let proxy = TcpProxy::start(env.server.addr()).await;
    // A long lease without refreshes: only the release writes, and the deadline is far.
    let cfg = env.config().ttl(Duration::from_secs(10)).keep_alive(false);
    let a = proxied_manager(&proxy, cfg.clone()).await;
    let operator = env.manager(cfg).await;
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let lease = lock.lease().clone();
    let probe = LossProbe::start();
    lock.subscribe(probe.recipient()).detach();

    proxy.set_mode(ProxyMode::Blackhole);
    let release = actix::spawn(async move { lock.release().await });
    match how {
        ForeignDelete::Kv => env.kv().await.delete("k").await.unwrap(),
        ForeignDelete::Forced => {
            let broken = operator.force_release("k", Some(lease.token())).await;
            assert_eq!(broken.unwrap().token, lease.token());
        }
    }
    // The fault: long enough for the release's first attempts to time out (500 ms each).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set_mode(ProxyMode::Pass);

    let result = tokio::time::timeout(PATIENCE, release)
        .await
        .expect("the release ends")
        .unwrap();
    let err = result.expect_err("someone else's delete is not a release");
    assert!(
        matches!(
            err.lock_error(),
            LockError::Lost {
                reason: LossReason::Deleted,
                ..
            }
        ),
        "{how:?}: {err:?}"
    );
    assert_eq!(
        lease.end(),
        Some(LeaseEnd::Lost {
            reason: LossReason::Deleted
        })
    );
    assert_eq!(probe.next().await.reason, LossReason::Deleted);
}

#[actix::test]
async fn a_foreign_delete_after_an_unanswered_release_is_a_loss() {
    unanswered_release_then(ForeignDelete::Kv).await;
}

#[actix::test]
async fn a_forced_release_after_an_unanswered_release_is_a_loss() {
    unanswered_release_then(ForeignDelete::Forced).await;
}

/// A leader's key purged through the stream API (no marker) on a server that marks expiries:
/// not an expiry, so the next leader waits its lock-delay, and the old leader, which learns of
/// it only at its next refresh, has stopped its role by then. Observers see `Ended`.
#[actix::test]
async fn a_stream_purge_of_a_leaders_key_is_not_a_clean_end() {
    let env = Env::start().await;
    if !env.modern() {
        return; // no limit markers before 2.11: an unmarked end may be an expiry there
    }
    // TTL 10 s: the old leader refreshes every 3.3 s, so it learns of the purge up to 3.3 s
    // late; the new leader's lock-delay (6 s) covers that.
    let cfg = || env.config().ttl(Duration::from_secs(10));
    // a does not follow the bucket's changes: b's first write would tell it at once, and
    // the race between that and b's role start would hide the missing lock-delay.
    let (m1, m2, m3) = (
        env.manager(cfg().follow_changes(false)).await,
        env.manager(cfg()).await,
        env.manager(cfg()).await,
    );
    let book = Book::default();
    // a does not campaign again soon after its loss: b is the next leader.
    let a = elect(&m1, "a", options("a").backoff(PATIENCE, PATIENCE), &book);
    let a_token = match tokio::time::timeout(
        PATIENCE,
        a.wait_for(|s| matches!(s, ElectorStatus::Leading { .. })),
    )
    .await
    .expect("a leads")
    {
        ElectorStatus::Leading { token } => token,
        other => panic!("{other:?}"),
    };
    book.next_term(0).await;
    let b = elect(
        &m2,
        "b",
        options("b").lock_delay(Duration::from_secs(6)),
        &book,
    );
    must_eventually(PATIENCE, "b waits for the key", || async {
        b.status() == ElectorStatus::Campaigning
    })
    .await;
    let mut changes = m3.leader_changes(KEY).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, changes.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.kind, LeaderChangeKind::Elected);

    // Right after one of a's refreshes, so that a learns of the purge only at its next one.
    let mut events = m3.events(KEY).await.unwrap();
    loop {
        let e = crate::fixture::next_event(&mut events).await;
        if e.kind == LockEventKind::Refreshed {
            break;
        }
    }
    let js = async_nats::jetstream::new(env.raw().await);
    let stream = js.get_stream(format!("KV_{}", env.bucket)).await.unwrap();
    let purged = stream
        .purge()
        .filter(format!("$KV.{}.{KEY}", env.bucket))
        .await
        .unwrap();
    assert_eq!(purged.purged, 1);

    let (who, token) = book.next_term(a_token).await;
    assert_eq!(who, "b");
    assert!(token > a_token);
    // a's role stopped before b's started: b waited its lock-delay.
    book.check();
    let ended = tokio::time::timeout(PATIENCE, changes.next())
        .await
        .unwrap()
        .unwrap();
    let elected = tokio::time::timeout(PATIENCE, changes.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ended.kind, elected.kind),
        (LeaderChangeKind::Ended, LeaderChangeKind::Elected),
        "{ended:?} {elected:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// With keep-alive off only the caller's `refresh()` extends the lease. Someone rewrites the
/// key with the holder's own record (re-encoded): the check that follows is a
/// compare-and-set, which moves the revision, but not the local deadline.
#[actix::test]
async fn with_keep_alive_off_a_foreign_write_check_does_not_extend_the_lease() {
    let env = Env::start().await;
    let m = env.manager(env.config().keep_alive(false)).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let kv = env.kv().await;
    let entry = kv.entry("k").await.unwrap().unwrap();
    // Upper bound of the deadline now: time left first, then the clock.
    let left = lock.lease().time_left();
    let deadline_before = Instant::now() + left;

    // The holder's record, with a leading space: the same tenure, not this manager's bytes.
    let mut copy = b" ".to_vec();
    copy.extend_from_slice(&entry.value);
    let foreign = kv.put("k", copy.into()).await.unwrap();
    must_eventually(PATIENCE, "the holder checked the key", || async {
        lock.state().await.is_ok_and(|s| s.revision > foreign)
    })
    .await;
    assert!(lock.is_held(), "the check found the key still ours");
    // Lower bound of the deadline now: the clock first, then the time left.
    let now = Instant::now();
    let deadline_after = now + lock.lease().time_left();
    assert!(
        deadline_after <= deadline_before,
        "the check moved the deadline by {:?}",
        deadline_after - deadline_before
    );
    must_eventually(PATIENCE, "the lease runs out", || async { !lock.is_held() }).await;
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    assert_eq!(lost.reason, LossReason::Expired);
}

/// A leader-change subscriber, recording that it stopped.
struct ChangeProbe {
    stopped: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Actor for ChangeProbe {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(tx) = self.stopped.take() {
            let _ = tx.send(());
        }
    }
}

impl Handler<LeaderChange> for ChangeProbe {
    type Result = ();
    fn handle(&mut self, _: LeaderChange, _: &mut Context<Self>) {}
}

#[actix::test]
async fn subscribe_leader_does_not_keep_its_subscriber_alive() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let _lock = m.acquire(KEY, Some(PATIENCE)).await.unwrap();
    let (tx, stopped) = tokio::sync::oneshot::channel();
    let addr = ChangeProbe { stopped: Some(tx) }.start();
    let subscription = m
        .subscribe_leader(KEY, addr.clone().recipient())
        .await
        .unwrap();
    drop(addr);
    tokio::time::timeout(PATIENCE, stopped)
        .await
        .expect("the subscriber stops once nobody else holds it")
        .unwrap();
    drop(subscription);
}

/// Go's `Do` whose release goes unanswered: the work finished under the lock, so the outcome
/// is `Executed`, with the release's unknown outcome (not `Lost`, although the lease ends
/// `ReleaseUnconfirmed`).
#[actix::test]
async fn run_if_free_with_an_unanswered_release_is_executed_with_an_unknown_release() {
    let env = Env::start().await;
    let proxy = TcpProxy::start(env.server.addr()).await;
    let a = proxied_manager(&proxy, env.config()).await;
    let outcome = a
        .run_if_free("k", |_lease| async {
            // The work is done; the release that follows meets a partition.
            proxy.set_mode(ProxyMode::Blackhole);
            7
        })
        .await
        .unwrap();
    match outcome {
        nlock::DoOutcome::Executed {
            value: 7,
            released: Err(e),
        } if e.kind() == nlock::ReleaseErrorKind::OutcomeUnknown => {}
        other => panic!("{other:?}"),
    }
    proxy.set_mode(ProxyMode::Pass);
}

/// A release whose delete lands but whose answer is lost (found by the protocol model,
/// docs/protocol-model.md): the key is free at once and a waiter elsewhere takes it, while
/// the releasing holder has heard nothing. Its `is_held()` must already be false then: it
/// turns false when the release starts, before the delete is sent, not when the answer comes.
#[actix::test]
async fn a_release_whose_answer_is_lost_is_not_held_while_the_next_holder_holds() {
    let env = Env::start().await;
    let proxy = TcpProxy::start(env.server.addr()).await;
    let a = proxied_manager(&proxy, env.config()).await;
    let b = env.manager(env.config()).await;
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let lease = lock.lease().clone();
    let waiter = crate::fixture::spawn_waiter(&b, "k", PATIENCE).await;
    assert!(lease.is_held());

    proxy.set_mode(ProxyMode::DropReplies);
    let release = actix::spawn(async move { lock.release().await });
    let next = waiter.await.unwrap().expect("b takes the freed key");
    assert!(
        !lease.is_held(),
        "the releasing holder still says it holds the key b holds ({:?} left)",
        lease.time_left()
    );
    assert!(next.is_held());
    proxy.set_mode(ProxyMode::Pass);
    let _ = tokio::time::timeout(PATIENCE, release)
        .await
        .expect("the release ends");
}
