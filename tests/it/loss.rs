//! Losing a lock: deletion behind the holder's back, a server restart, stale releases.

use std::time::Duration;

use nlock::LossReason;

use crate::fixture::{spawn_waiter, Env, PATIENCE};

#[actix::test]
async fn a_key_taken_by_another_writer_is_reported_with_the_new_holder() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    // Behind a's back, another nlock process's record is written over a's (as a blind put
    // would): a learns who holds the key now.
    let mut value: serde_json::Value =
        serde_json::from_slice(&env.kv().await.entry("k").await.unwrap().unwrap().value).unwrap();
    value["owner"] = "someone-else".into();
    value["tenure"] = "another-tenure".into();
    let kv = env.kv().await;
    kv.put("k", serde_json::to_vec(&value).unwrap().into())
        .await
        .unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    match lost.reason {
        LossReason::Taken { holder: Some(h) } => assert_eq!(h.owner, "someone-else"),
        other => panic!("expected Taken by someone-else, got {other:?}"),
    }
}

#[actix::test]
async fn a_stale_release_never_removes_the_new_holders_lock() {
    let env = Env::start().await;
    // Keep-alive off and a long TTL: a holds an old revision and has not noticed anything.
    let cfg = env.config().ttl(Duration::from_secs(30)).keep_alive(false);
    let a = env.manager(cfg.clone()).await;
    let b = env.manager(cfg).await;
    let old = a.acquire("k", Some(PATIENCE)).await.unwrap();
    env.kv().await.delete("k").await.unwrap();
    let new = b.acquire("k", Some(PATIENCE)).await.unwrap();

    let err = old.release().await.unwrap_err();
    assert_eq!(err.kind(), nlock::ReleaseErrorKind::Lost);
    // b still holds it: its own compare-and-set refresh succeeds, and the value is b's.
    new.refresh().await.unwrap();
    let entry = env.kv().await.entry("k").await.unwrap().unwrap();
    assert_eq!(entry.operation, async_nats::jetstream::kv::Operation::Put);
    let value: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(value["owner"], b.owner());
}

#[actix::test]
async fn after_a_memory_server_restart_the_bucket_comes_back_for_new_locks() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let old = m.acquire("a", Some(PATIENCE)).await.unwrap();
    env.server.restart().await;
    let lost = tokio::time::timeout(PATIENCE, old.lost()).await.unwrap();
    assert_eq!(lost.reason, LossReason::Deleted);
    // The manager re-creates the bucket it lost, and locking works again, with tokens
    // that keep increasing across the lost bucket and the new one.
    let new = m.acquire("a", Some(PATIENCE)).await.unwrap();
    assert!(new.is_held());
    // A re-created bucket starts its revisions at the clock (first_seq, server 2.10+); on
    // older servers they start at 1 again (GUARANTEES.md says so).
    if env.server.version() >= (2, 10, 0) {
        let (new, old) = (new.token(), old.token());
        assert!(new > old, "{new} after {old}");
    }
    assert_eq!(env.stream_messages().await, Some(1));
}

#[actix::test]
async fn shutdown_releases_every_held_lock() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let l1 = a.acquire("x", Some(PATIENCE)).await.unwrap();
    let l2 = a.acquire("y", Some(PATIENCE)).await.unwrap();
    a.shutdown().await;
    assert!(!l1.is_held() && !l2.is_held());
    b.try_acquire("x").await.unwrap();
    b.try_acquire("y").await.unwrap();
    let err = a.acquire("z", Some(PATIENCE)).await.unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::ManagerGone);
}

#[actix::test]
async fn shutdown_while_waiting_leaves_nothing_held() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let c = env.manager(env.config()).await;
    for _ in 0..10 {
        let b = env.manager(env.config()).await;
        let held = a.acquire("k", Some(PATIENCE)).await.unwrap();
        let waiter = spawn_waiter(&b, "k", PATIENCE).await;
        // The release and the shutdown race: b may win the key while shutting down.
        let (released, ()) = futures::join!(held.release(), b.shutdown());
        released.unwrap();
        match waiter.await.unwrap() {
            // Granted before the shutdown began: the shutdown released it.
            Ok(lock) => assert!(!lock.is_held()),
            Err(e) => assert_eq!(e.kind(), nlock::AcquireErrorKind::ManagerGone),
        }
        // Nothing of b's is left on the key.
        let free = c
            .acquire("k", Some(PATIENCE))
            .await
            .expect("the key is free again");
        free.release().await.unwrap();
    }
}

#[actix::test]
async fn is_held_turns_false_at_the_deadline_even_if_the_actor_thread_is_stuck() {
    let env = Env::start().await;
    let m = env
        .manager(env.config().ttl(Duration::from_secs(1)).keep_alive(false))
        .await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    assert!(lock.is_held());
    // The fault: blocking work on the actor system's only thread, past the 1 s lease, so
    // that no timer can run. It is the fault being injected, not a wait.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!lock.is_held(), "the deadline passed");
}
