//! The same API from plain tokio, with no actix system of the caller's own.

use std::time::Duration;

use futures::FutureExt;
use nlock::{LockManager, LossReason};

use crate::fixture::{Env, PATIENCE};

async fn tokio_world() {
    let env = Env::start().await;
    let config = env.config().build().unwrap();
    let a = LockManager::connect(&env.server.url(), config.clone())
        .await
        .expect("connects without an actix system");
    let b = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap();

    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    assert!(lock.is_held());
    assert_eq!(
        b.try_acquire("k").await.unwrap_err().kind(),
        nlock::AcquireErrorKind::Busy
    );
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire("k", Some(PATIENCE)).await })
    };
    crate::harness::must_eventually(PATIENCE, "b waits", || async {
        crate::fixture::waiting_on(&b, "k").await > 0
    })
    .await;
    let token = lock.token();
    lock.release().await.unwrap();
    let next = waiter.await.unwrap().unwrap();
    assert!(next.token() > token);

    // Losses reach plain-tokio code too.
    env.kv().await.delete("k").await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, next.lost()).await.unwrap();
    assert_eq!(lost.reason, LossReason::Deleted);

    // A timed-out acquire, a dropped handle and shutdown work here as well.
    let held = a.acquire("t", Some(PATIENCE)).await.unwrap();
    let err = b
        .acquire("t", Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::AcquireTimedOut);
    let lease = held.lease().clone();
    a.shutdown().await;
    assert_eq!(
        lease.lost().now_or_never().map(|l| l.reason),
        Some(LossReason::Shutdown)
    );
    b.try_acquire("t").await.expect("shutdown released it");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_a_multi_threaded_tokio_runtime() {
    tokio_world().await;
}

#[tokio::test]
async fn works_from_a_current_thread_tokio_runtime() {
    tokio_world().await;
}

/// Semaphores and read-write locks from plain tokio: a permit and a reader granted, a
/// waiter woken by a release, and nothing held after shutdown.
async fn tokio_world_beyond_locks() {
    let env = Env::start().await;
    let config = env.config().build().unwrap();
    let a = LockManager::connect(&env.server.url(), config.clone())
        .await
        .expect("connects without an actix system");
    let b = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap();

    let permit = a.semaphore("pool", 1).try_acquire().await.unwrap();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.semaphore("pool", 1).timeout(PATIENCE).acquire().await })
    };
    crate::harness::must_eventually(PATIENCE, "b waits for the permit", || async {
        crate::fixture::waiting_on(&b, permit.key()).await > 0
    })
    .await;
    let token = permit.token();
    permit.release().await.unwrap();
    let next = waiter.await.unwrap().expect("the released permit");
    assert!(next.token() > token);

    let reading = a.rw_lock("cache").try_read().await.unwrap();
    let writer = {
        let b = b.clone();
        tokio::spawn(async move { b.rw_lock("cache").timeout(PATIENCE).write().await })
    };
    let reader_token = reading.token();
    reading.release().await.unwrap();
    let writing = writer.await.unwrap().expect("the writer after the reader");
    assert!(writing.token() > reader_token);

    let lease = writing.lease().clone();
    b.shutdown().await;
    assert_eq!(
        lease.lost().now_or_never().map(|l| l.reason),
        Some(LossReason::Shutdown)
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphores_and_read_write_locks_work_from_a_multi_threaded_tokio_runtime() {
    tokio_world_beyond_locks().await;
}

#[tokio::test]
async fn semaphores_and_read_write_locks_work_from_a_current_thread_tokio_runtime() {
    tokio_world_beyond_locks().await;
}
