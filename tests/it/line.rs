//! The line across processes (GUARANTEES.md, "Waiters in arrival order across processes"):
//! waiters of every process are granted in the order they began to wait, a release is
//! followed by the first waiter's compare-and-set only, a waiter that stops writing its
//! entry holds the line no longer than the entry's lifetime, and a withdrawn one leaves it
//! at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use nlock::LockManager;

use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;

/// Far longer than any test: nobody here is granted by a poll.
const NEVER_POLL: Duration = Duration::from_secs(600);

/// The entry keys in the line of `key`, read behind nlock's back.
async fn entries(env: &Env, key: &str) -> Vec<String> {
    env.keys_with_prefix(&format!("_nlock.q.{key}.")).await
}

/// Starts a waiter at `m` that, once granted, records `name` in `order` and releases; returns
/// once its entry is in the line (it is then behind every earlier waiter).
async fn queue_up(
    env: &Env,
    m: &LockManager,
    name: &'static str,
    order: &Arc<Mutex<Vec<&'static str>>>,
) -> tokio::task::JoinHandle<()> {
    let before = entries(env, "k").await.len();
    let (m, order) = (m.clone(), order.clone());
    let task = actix::spawn(async move {
        let held = m.acquire("k", Some(PATIENCE * 3)).await.expect("granted");
        order.lock().unwrap().push(name);
        held.release().await.expect("released");
    });
    must_eventually(PATIENCE, "the waiter's entry is in the line", || async {
        entries(env, "k").await.len() > before
    })
    .await;
    task
}

#[actix::test]
async fn waiters_of_different_processes_are_granted_in_the_order_they_began_to_wait() {
    let env = Env::start().await;
    let cfg = || env.config().retry_interval(NEVER_POLL);
    let holder = env.manager(cfg()).await;
    let (a, b, c) = (
        env.manager(cfg()).await,
        env.manager(cfg()).await,
        env.manager(cfg()).await,
    );
    let order = Arc::new(Mutex::new(Vec::new()));
    for round in 0..2 {
        let held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
        // Two waiters in one process (a), the second behind a waiter of another process,
        // so local first-in first-out alone would not give this order.
        let arrivals = [
            ("b1", &b),
            ("a1", &a),
            ("c1", &c),
            ("a2", &a),
            ("b2", &b),
            ("c2", &c),
        ];
        let mut tasks = Vec::new();
        for (name, m) in arrivals {
            tasks.push(queue_up(&env, m, name, &order).await);
        }
        held.release().await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let got = std::mem::take(&mut *order.lock().unwrap());
        assert_eq!(
            got,
            ["b1", "a1", "c1", "a2", "b2", "c2"],
            "round {round}: grants out of arrival order"
        );
        must_eventually(PATIENCE, "the line is empty", || async {
            entries(&env, "k").await.is_empty()
        })
        .await;
    }
}

#[actix::test]
async fn a_release_is_followed_by_one_compare_and_set_the_first_waiters() {
    let env = Env::start().await;
    let cfg = || env.config().retry_interval(NEVER_POLL);
    let holder = env.manager(cfg()).await;
    let mut waiters = Vec::new();
    for _ in 0..6 {
        waiters.push(env.manager(cfg()).await);
    }
    let held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for m in &waiters {
        tasks.push(queue_up(&env, m, "w", &order).await);
    }
    // Every write to the lock key from now on, landed or refused: the releases and the
    // compare-and-sets.
    let raw = env.raw().await;
    let mut writes = raw
        .subscribe(format!("$KV.{}.k", env.bucket))
        .await
        .unwrap();
    raw.flush().await.unwrap();
    // The subscription is in place once it sees a write of the holder's (a flush alone left
    // a 2.9 server delivering nothing from the holder's connection for a moment).
    held.refresh().await.unwrap();
    tokio::time::timeout(PATIENCE, writes.next())
        .await
        .expect("the holder's refresh is seen")
        .unwrap();
    held.release().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    // 7 releases and 6 grants; a waiter that is not first writes nothing.
    let mut seen = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), writes.next()).await {
        seen += 1;
    }
    assert_eq!(seen, 7 + 6, "writes to the key for 6 handoffs");
}

/// Writes an entry at the front of the line of `key` the way a waiter that then froze would
/// have: nobody rewrites or deletes it.
async fn frozen_waiters_entry(env: &Env, key: &str) {
    let kv = env.kv().await;
    kv.create(format!("_nlock.q.{key}.frozen"), "".into())
        .await
        .expect("entry written");
}

#[actix::test]
async fn a_waiter_that_stops_writing_its_entry_holds_the_line_no_longer_than_its_lifetime() {
    let env = Env::start().await;
    // Entries live one TTL (1 s) on the server and in every view, plus the drift margin. A
    // bucket without limit markers, as on servers before 2.11: the server's expiry of the
    // entry is silent, so only the view's own count of its lifetime can end it.
    let cfg = || {
        env.config()
            .bucket_layout(nlock::BucketLayout::GoCompatible)
            .ttl(Duration::from_secs(1))
            .request_timeout(Duration::from_millis(300))
            .retry_interval(NEVER_POLL)
    };
    let holder = env.manager(cfg()).await;
    let waiter = env.manager(cfg()).await;
    let held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
    frozen_waiters_entry(&env, "k").await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let task = queue_up(&env, &waiter, "w", &order).await;
    held.release().await.unwrap();
    // Only the frozen entry's lifetime running out lets w go: no poll runs, and the key's
    // release was seen while the frozen entry was ahead.
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("granted once the frozen entry counts as gone")
        .unwrap();
    assert_eq!(*order.lock().unwrap(), ["w"]);
}

#[actix::test]
async fn a_withdrawn_waiter_leaves_the_line_at_once() {
    let env = Env::start().await;
    // A TTL far beyond the test: an entry that goes was deleted, not expired.
    let cfg = || {
        env.config()
            .ttl(Duration::from_secs(120))
            .retry_interval(NEVER_POLL)
    };
    let holder = env.manager(cfg()).await;
    let (a, b) = (env.manager(cfg()).await, env.manager(cfg()).await);
    let held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
    let a_task = {
        let a = a.clone();
        actix::spawn(async move { a.acquire("k", Some(Duration::from_secs(2))).await })
    };
    must_eventually(PATIENCE, "a is in the line", || async {
        entries(&env, "k").await.len() == 1
    })
    .await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let b_task = queue_up(&env, &b, "b", &order).await;
    let err = a_task.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::AcquireTimedOut);
    must_eventually(PATIENCE, "a's entry is gone", || async {
        entries(&env, "k").await.len() == 1
    })
    .await;
    held.release().await.unwrap();
    tokio::time::timeout(PATIENCE, b_task)
        .await
        .expect("b is first once a left")
        .unwrap();
    assert_eq!(*order.lock().unwrap(), ["b"]);
}

#[actix::test]
async fn try_acquire_never_queues_and_observers_see_no_entries() {
    let env = Env::start().await;
    let cfg = || env.config().retry_interval(NEVER_POLL);
    let holder = env.manager(cfg()).await;
    let (a, b) = (env.manager(cfg()).await, env.manager(cfg()).await);
    let held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let task = queue_up(&env, &a, "a", &order).await;
    let err = b.try_acquire("k").await.unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::Busy);
    assert_eq!(entries(&env, "k").await.len(), 1, "the try left no entry");
    let keys: Vec<String> = b
        .holders()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect();
    assert_eq!(keys, ["k"], "entries are not locks");
    assert_eq!(
        b.acquire("_nlock.q.k.x", Some(PATIENCE))
            .await
            .unwrap_err()
            .kind(),
        nlock::AcquireErrorKind::InvalidKey
    );
    held.release().await.unwrap();
    task.await.unwrap();
}

#[actix::test]
async fn a_manager_that_shuts_down_leaves_no_entry_behind() {
    let env = Env::start().await;
    // A TTL far beyond the test: entries that go were deleted, not expired.
    let cfg = || {
        env.config()
            .ttl(Duration::from_secs(120))
            .retry_interval(NEVER_POLL)
    };
    let holder = env.manager(cfg()).await;
    let leaving = env.manager(cfg()).await;
    let _held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
    // Two requests of the leaving manager: one contending, one queued behind it there.
    let order = Arc::new(Mutex::new(Vec::new()));
    let first = queue_up(&env, &leaving, "first", &order).await;
    let second = {
        let m = leaving.clone();
        actix::spawn(async move { m.acquire("k", Some(PATIENCE * 3)).await })
    };
    must_eventually(PATIENCE, "both requests are in the line", || async {
        entries(&env, "k").await.len() == 2
    })
    .await;
    leaving.shutdown().await;
    must_eventually(PATIENCE, "their entries are gone", || async {
        entries(&env, "k").await.is_empty()
    })
    .await;
    assert!(
        first.await.is_err(),
        "the first request ended without a grant"
    );
    assert_eq!(
        second.await.unwrap().unwrap_err().kind(),
        nlock::AcquireErrorKind::ManagerGone
    );
    assert!(order.lock().unwrap().is_empty());
}
