//! Losing a lock: deletion behind the holder's back, a server restart, stale releases.

use std::time::Duration;

use nlock::{ErrorKind, LossReason};

use crate::fixture::{spawn_waiter, Env, LossProbe, PATIENCE};

#[actix::test]
async fn deleting_the_key_tells_subscribers_within_one_refresh_interval() {
    let env = Env::start().await;
    // TTL 3 s, factor 3: refreshes every second.
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let (probe, mut losses) = LossProbe::start();
    lock.subscribe(probe);
    let (manager_probe, mut manager_losses) = LossProbe::start();
    m.subscribe_losses(manager_probe);
    // Make sure both subscriptions are in before the delete.
    lock.state().await.unwrap();
    m.locks().await.unwrap();

    env.kv().await.delete("k").await.unwrap();
    let started = std::time::Instant::now();
    let lost = tokio::time::timeout(PATIENCE, losses.recv())
        .await
        .unwrap()
        .unwrap();
    let refresh_interval = Duration::from_secs(1);
    // The next refresh (at most one interval away) finds the key gone; allow a second for
    // the refresh round-trip, the read that explains it, and a loaded machine.
    assert!(started.elapsed() <= refresh_interval + Duration::from_secs(1));
    assert_eq!(lost.key, "k");
    assert_eq!(lost.token, lock.token());
    assert_eq!(lost.reason, LossReason::Deleted);
    let from_manager = tokio::time::timeout(PATIENCE, manager_losses.recv())
        .await
        .unwrap();
    assert_eq!(from_manager, Some(lost.clone()));
    assert_eq!(lock.lost().await, lost);
    assert!(!lock.is_held());
    assert_eq!(lock.release().await.unwrap_err().kind(), ErrorKind::NotHeld);
}

#[actix::test]
async fn a_key_taken_by_another_writer_is_reported_with_the_new_holder() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    // Behind a's back: delete, then b takes the key legitimately.
    env.kv().await.delete("k").await.unwrap();
    let b_lock = b.acquire("k", Some(PATIENCE)).await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    match lost.reason {
        LossReason::Taken { holder: Some(h) } => assert_eq!(h.owner, b.owner()),
        other => panic!("expected Taken by b, got {other:?}"),
    }
    assert_eq!(
        b_lock.state().await.unwrap().status,
        nlock::LockStatus::Held
    );
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
    assert_eq!(err.kind(), ErrorKind::Lost);
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
    assert_eq!(err.kind(), ErrorKind::ManagerGone);
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
            Err(e) => assert_eq!(e.kind(), ErrorKind::ManagerGone),
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
