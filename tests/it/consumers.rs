//! Resources that waiting and watching use: waiting creates no consumer per wait, every
//! consumer nlock creates is deleted when its user is done, withdrawn waiters leave the key's
//! queue at once, and `LockEvents` forgets keys that are gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nlock::{LockEventKind, LockManager};

use crate::fixture::{next_event, spawn_waiter, Env, PATIENCE};
use crate::harness::must_eventually;

/// How many consumers one manager may hold at any moment: its change stream, and a second
/// one for the short while a broken change stream is replaced.
const PER_MANAGER: u64 = 2;

/// The bucket stream's consumer count, as the server reports it.
async fn consumer_count(js: &async_nats::jetstream::Context, bucket: &str) -> u64 {
    let mut stream = js.get_stream(format!("KV_{bucket}")).await.unwrap();
    stream.info().await.unwrap().state.consumer_count as u64
}

/// Waits until the stream has no consumer left, for at most one second.
async fn must_reach_zero(js: &async_nats::jetstream::Context, bucket: &str, what: &str) {
    must_eventually(Duration::from_secs(1), what, || async {
        consumer_count(js, bucket).await == 0
    })
    .await;
}

/// One worker's loop: waits that are granted (held briefly, released), that time out, and
/// that are dropped by their caller, on a few keys.
async fn work(
    m: LockManager,
    worker: usize,
    rounds: usize,
    keys: usize,
    granted: Arc<AtomicUsize>,
) {
    for round in 0..rounds {
        let key = format!("k{}", (worker + round) % keys);
        match round % 3 {
            0 => {
                if let Ok(lock) = m.acquire(&key, Some(PATIENCE)).await {
                    granted.fetch_add(1, Ordering::Relaxed);
                    // The protected work's duration, so that others have to wait.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    lock.release().await.unwrap();
                }
            }
            1 => match m.acquire(&key, Some(Duration::from_millis(30))).await {
                Ok(lock) => {
                    granted.fetch_add(1, Ordering::Relaxed);
                    lock.release().await.unwrap();
                }
                Err(e) => assert_eq!(e.kind(), nlock::AcquireErrorKind::AcquireTimedOut, "{e}"),
            },
            _ => {
                // A caller that gives up: the future is dropped mid-wait.
                let wait = m.acquire(&key, None);
                if let Ok(Ok(lock)) = tokio::time::timeout(Duration::from_millis(30), wait).await {
                    granted.fetch_add(1, Ordering::Relaxed);
                    lock.release().await.unwrap();
                }
            }
        }
    }
}

#[actix::test]
async fn contended_waits_hold_a_few_consumers_per_manager_and_none_after_shutdown() {
    let env = Env::start().await;
    contend_and_count(&env, env.config(), 3).await;
}

#[actix::test]
async fn the_same_on_one_key_of_a_go_compatible_bucket() {
    // No limit markers there: waiters also poll.
    let env = Env::start().await;
    let config = env
        .config()
        .bucket_layout(nlock::BucketLayout::GoCompatible)
        .retry_interval(Duration::from_millis(100));
    contend_and_count(&env, config, 1).await;
}

/// Three managers with three workers each on `keys` keys; samples the stream's consumer
/// count all along, then shuts every manager down.
async fn contend_and_count(env: &Env, config: nlock::ConfigBuilder, keys: usize) {
    let js = async_nats::jetstream::new(env.raw().await);
    let mut managers = Vec::new();
    for _ in 0..3 {
        managers.push(env.manager(config.clone()).await);
    }
    let granted = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for (i, m) in managers.iter().enumerate() {
        for w in 0..3 {
            let (m, granted) = (m.clone(), granted.clone());
            workers.push(actix::spawn(work(m, i * 3 + w, 24, keys, granted)));
        }
    }
    let all = futures::future::join_all(workers);
    tokio::pin!(all);
    let mut most = 0;
    let mut samples = 0;
    loop {
        tokio::select! {
            done = &mut all => {
                for r in done {
                    r.unwrap();
                }
                break;
            }
            n = consumer_count(&js, &env.bucket) => {
                samples += 1;
                most = most.max(n);
            }
        }
    }
    eprintln!(
        "measured: at most {most} consumers in {samples} samples, {} waits granted",
        granted.load(Ordering::Relaxed)
    );
    assert!(samples > 0);
    assert!(
        granted.load(Ordering::Relaxed) > 0,
        "the run included granted waits"
    );
    assert!(
        most <= PER_MANAGER * 3,
        "at most {PER_MANAGER} consumers per manager during the run, saw {most}"
    );
    for m in &managers {
        m.shutdown().await;
    }
    must_reach_zero(
        &js,
        &env.bucket,
        "no consumer after every manager's shutdown",
    )
    .await;
}

#[actix::test]
async fn observers_leave_no_consumer_behind() {
    let env = Env::start().await;
    let js = async_nats::jetstream::new(env.raw().await);
    let m = env.manager(env.config().follow_changes(false)).await;
    let held = m.acquire("k", Some(PATIENCE)).await.unwrap();
    assert_eq!(consumer_count(&js, &env.bucket).await, 0);

    // A snapshot's consumer is deleted before the answer comes back.
    assert_eq!(m.holders().await.unwrap().len(), 1);
    assert_eq!(consumer_count(&js, &env.bucket).await, 0);
    assert!(m.holder("k").await.unwrap().is_some());
    assert_eq!(consumer_count(&js, &env.bucket).await, 0);
    assert!(m.holder("free").await.unwrap().is_none());
    assert_eq!(consumer_count(&js, &env.bucket).await, 0);

    // An event stream holds one consumer while it lives, and none after it is dropped.
    let mut events = m.events(">").await.unwrap();
    assert_eq!(consumer_count(&js, &env.bucket).await, 1);
    assert_eq!(events.next().await.unwrap().key, "k");
    drop(events);
    must_reach_zero(&js, &env.bucket, "no consumer after LockEvents is dropped").await;

    // Leader observers are built on the same stream.
    let changes = m.leader_changes("k").await.unwrap();
    assert_eq!(consumer_count(&js, &env.bucket).await, 1);
    drop(changes);
    must_reach_zero(
        &js,
        &env.bucket,
        "no consumer after LeaderChanges is dropped",
    )
    .await;

    held.release().await.unwrap();
    m.shutdown().await;
}

#[actix::test]
async fn a_manager_without_change_following_deletes_its_waiters_consumers() {
    let env = Env::start().await;
    let js = async_nats::jetstream::new(env.raw().await);
    let a = env.manager(env.config().follow_changes(false)).await;
    let b = env.manager(env.config().follow_changes(false)).await;
    let held = a.acquire("k", Some(PATIENCE)).await.unwrap();
    for _ in 0..5 {
        let err = b
            .acquire("k", Some(Duration::from_millis(50)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), nlock::AcquireErrorKind::AcquireTimedOut);
    }
    must_reach_zero(&js, &env.bucket, "no consumer after the waits ended").await;
    // A waiter that is granted ends its key watch too.
    let waiter = spawn_waiter(&b, "k", PATIENCE).await;
    assert!(consumer_count(&js, &env.bucket).await <= 1);
    held.release().await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    must_reach_zero(&js, &env.bucket, "no consumer after the grant").await;
    got.release().await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[actix::test]
async fn withdrawn_requests_leave_the_queue_at_once() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let held = a.acquire("k", Some(PATIENCE)).await.unwrap();
    // One request waits all along (its contender runs); the others queue behind it.
    let first = spawn_waiter(&b, "k", PATIENCE).await;
    let pending: Vec<_> = (0..5)
        .map(|_| b.acquire("k", Some(Duration::from_millis(20))))
        .collect();
    for r in futures::future::join_all(pending).await {
        assert_eq!(
            r.unwrap_err().kind(),
            nlock::AcquireErrorKind::AcquireTimedOut
        );
    }
    for _ in 0..5 {
        let dropped = spawn_waiter(&b, "k", PATIENCE).await;
        dropped.abort();
        assert!(dropped.await.unwrap_err().is_cancelled());
    }
    // The key is still held by a: only the first request is left, with its contender.
    must_eventually(
        PATIENCE,
        "withdrawn requests are gone from the queue",
        || async {
            let n = b.state_counts().await.unwrap();
            (n.keys, n.queued, n.wakers) == (1, 0, 1)
        },
    )
    .await;
    first.abort();
    must_eventually(PATIENCE, "nothing is kept for the key", || async {
        let n = b.state_counts().await.unwrap();
        (n.keys, n.queued, n.wakers) == (0, 0, 0)
    })
    .await;
    held.release().await.unwrap();
}

#[actix::test]
async fn lock_events_forget_keys_that_are_gone() {
    let env = Env::start().await;
    // Gone within a second of its last message: with limit markers, the server says so;
    // without, the stream knows the bucket's max_age.
    let m = env.manager(env.config().ttl(Duration::from_secs(1))).await;
    let mut events = m.events(">").await.unwrap();
    for i in 0..5 {
        let lock = m
            .acquire(&format!("gone{i}"), Some(PATIENCE))
            .await
            .unwrap();
        lock.release().await.unwrap();
    }
    let mut released = 0;
    while released < 5 {
        if next_event(&mut events).await.kind == LockEventKind::Released {
            released += 1;
        }
    }
    assert_eq!(events.tracked_keys(), 5);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        // Drives the stream (the server's markers come through it) for a moment at a time.
        let _ = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
        if events.tracked_keys() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} keys still tracked after {PATIENCE:?}",
            events.tracked_keys()
        );
    }
    m.shutdown().await;
}

#[actix::test]
async fn shutdown_deletes_the_change_consumer_before_it_returns() {
    let env = Env::start().await;
    let js = async_nats::jetstream::new(env.raw().await);
    // The manager runs in an actix system of its own that ends as soon as shutdown returns
    // (as in a program whose main ends there), on a connection that stays open: only a
    // delete answered before shutdown returned can have removed the consumer.
    let client = env.raw().await;
    let config = env.config().build().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let m = LockManager::start(client, config).await.unwrap();
            let held = m.acquire("k", Some(PATIENCE)).await.unwrap();
            seen_tx.send(()).unwrap();
            go_rx.await.unwrap();
            m.shutdown().await;
            drop(held);
        });
    });
    seen_rx.await.unwrap();
    assert_eq!(consumer_count(&js, &env.bucket).await, 1);
    go_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(consumer_count(&js, &env.bucket).await, 0);
}
