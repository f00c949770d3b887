//! `LockOptions::lock_delay` on plain locks: after an unclean end of the previous tenure the
//! new holder gets its handle only after the delay; after a clean release at once. And
//! `LockHandle::let_expire`, the other way a holder keeps the key from being handed over
//! early: no refresh and no release, the key expires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nlock::LockOptions;

use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;

const KEY: &str = "jobs.nightly";

#[actix::test]
async fn after_a_forced_release_the_next_holder_starts_only_after_the_old_job_stopped() {
    let env = Env::start().await;
    let (ma, mb, operator) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let log = Arc::new(Mutex::new(Vec::<&str>::new()));
    let a = ma.acquire(KEY, None).await.unwrap();
    // a's job takes 300 ms to stop once told of the loss (the fault: a slow job).
    let job = {
        let (lease, log) = (a.lease().clone(), log.clone());
        actix::spawn(async move {
            lease.lost().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            log.lock().unwrap().push("a stopped");
        })
    };
    let probe = mb.clone();
    let waiter = {
        let log = log.clone();
        let options = LockOptions::default().lock_delay(Duration::from_secs(2));
        actix::spawn(async move {
            let b = mb.lock(KEY).options(options).acquire().await.unwrap();
            log.lock().unwrap().push("b started");
            b
        })
    };
    must_eventually(PATIENCE, "b waits", || async {
        crate::fixture::waiting_on(&probe, KEY).await > 0
    })
    .await;
    operator.force_release(KEY, None).await.unwrap();
    let b = tokio::time::timeout(PATIENCE, waiter)
        .await
        .unwrap()
        .unwrap();
    job.await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["a stopped", "b started"]);
    assert!(b.is_held());
    b.release().await.unwrap();
}

#[actix::test]
async fn after_a_release_by_its_holder_no_lock_delay_is_waited() {
    let env = Env::start().await;
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let a = ma.acquire(KEY, None).await.unwrap();
    // A delay longer than PATIENCE: waiting it fails the test.
    let options = LockOptions::default().lock_delay(Duration::from_secs(60));
    let probe = mb.clone();
    let waiter = actix::spawn(async move { mb.lock(KEY).options(options).acquire().await });
    must_eventually(PATIENCE, "b waits", || async {
        crate::fixture::waiting_on(&probe, KEY).await > 0
    })
    .await;
    let a_token = a.token();
    a.release().await.unwrap();
    let b = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("no lock-delay after a release")
        .unwrap()
        .unwrap();
    assert!(b.token() > a_token);
}

#[actix::test]
async fn let_expire_stops_refreshing_without_a_release_and_the_lock_expires() {
    let env = Env::start().await;
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let a = ma.acquire(KEY, None).await.unwrap();
    let (lease, token) = (a.lease().clone(), a.token());
    a.let_expire();
    let busy = mb.try_acquire(KEY).await.unwrap_err();
    assert_eq!(
        busy.kind(),
        nlock::AcquireErrorKind::Busy,
        "not released: {busy}"
    );
    let end = tokio::time::timeout(PATIENCE, lease.ended()).await.unwrap();
    assert_eq!(
        end,
        nlock::LeaseEnd::Lost {
            reason: nlock::LossReason::Expired
        }
    );
    assert!(!lease.is_held());
    let b = mb.acquire(KEY, Some(PATIENCE)).await.unwrap();
    assert!(b.token() > token);
}
