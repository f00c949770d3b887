//! The Go nlock API, one behaviour per test: Acquire, TryAcquire, Do, keep-alive, options.

use std::time::Duration;

use nlock::{DoOutcome, LockStatus, Storage};

use crate::fixture::{spawn_waiter, Env, PATIENCE};

#[actix::test]
async fn acquire_then_release_frees_the_key() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("jobs.a", Some(PATIENCE)).await.unwrap();
    assert_eq!(lock.key(), "jobs.a");
    assert!(lock.is_held());
    let lease = lock.lease().clone();
    lock.release().await.unwrap();
    assert!(!lease.is_held());
    assert_eq!(lease.end(), Some(nlock::LeaseEnd::Released));
    let again = m.try_acquire("jobs.a").await.unwrap();
    assert!(again.token() > lease.token());
}

#[actix::test]
async fn acquire_times_out_while_held_elsewhere() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let _held = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let err = b
        .acquire("k", Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::AcquireTimedOut);
}

#[actix::test]
async fn acquire_waits_until_the_holder_releases() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let held = a.acquire("k", Some(PATIENCE)).await.unwrap();
    // The waiter is queued at its manager before the release, so it must wait for it.
    let waiter = spawn_waiter(&b, "k", PATIENCE).await;
    let held_token = held.token();
    held.release().await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert!(got.token() > held_token);
}

#[actix::test]
async fn try_acquire_names_the_holder_when_busy() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let _held = a
        .lock("k")
        .description("nightly report")
        .timeout(PATIENCE)
        .acquire()
        .await
        .unwrap();
    match b.try_acquire("k").await.map_err(nlock::LockError::from) {
        Err(nlock::LockError::Busy { key, holder }) => {
            assert_eq!(key, "k");
            let holder = holder.expect("holder record readable");
            assert_eq!(holder.owner, a.owner());
            assert_eq!(holder.pid, std::process::id());
            assert_eq!(holder.description.as_deref(), Some("nightly report"));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
}

#[actix::test]
async fn try_acquire_takes_a_free_key_at_once() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.try_acquire("free").await.unwrap();
    let state = lock.state().await.unwrap();
    assert_eq!(state.status, LockStatus::Held);
    assert_eq!(state.token, lock.token());
    assert_eq!(state.holder.owner, m.owner());
}

#[actix::test]
async fn run_if_free_executes_and_releases() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    match m.run_if_free("cron", |_| async { 7 }).await.unwrap() {
        DoOutcome::Executed { value, released } => {
            assert_eq!(value, 7);
            released.unwrap();
        }
        other => panic!("expected Executed, got {other:?}"),
    }
    // Released afterwards: a second run executes too.
    assert!(matches!(
        m.run_if_free("cron", |_| async {}).await.unwrap(),
        DoOutcome::Executed { .. }
    ));
}

#[actix::test]
async fn run_if_free_skips_when_busy() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let _held = a.acquire("cron", Some(PATIENCE)).await.unwrap();
    let mut ran = false;
    let outcome = b
        .run_if_free("cron", |_| async { ran = true })
        .await
        .unwrap();
    match outcome {
        DoOutcome::Skipped { holder } => assert_eq!(holder.unwrap().owner, a.owner()),
        other => panic!("expected Skipped, got {other:?}"),
    }
    assert!(!ran);
}

#[actix::test]
async fn run_if_free_releases_after_an_error() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let outcome = m
        .run_if_free("cron", |_| async { Err::<(), &str>("boom") })
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        DoOutcome::Executed {
            value: Err("boom"),
            ..
        }
    ));
    m.try_acquire("cron")
        .await
        .expect("released after the error");
}

#[actix::test]
async fn run_if_free_releases_after_a_panic() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let err = m
        .run_if_free("cron", |_| async { panic!("task blew up") })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::TaskPanicked);
    m.try_acquire("cron")
        .await
        .expect("released after the panic");
}

#[actix::test]
async fn keep_alive_holds_the_lock_past_its_ttl() {
    let env = Env::start().await;
    let cfg = env.config().ttl(Duration::from_secs(1));
    let a = env.manager(cfg.clone()).await;
    let b = env.manager(cfg).await;
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    // Wait for three refreshes: the lock lives well past its 1 s TTL only if they work.
    crate::harness::must_eventually(PATIENCE, "three refreshes", || async {
        let s = lock.state().await.unwrap();
        s.revision >= lock.token() + 3 && s.last_refresh.is_some()
    })
    .await;
    let state = lock.state().await.unwrap();
    assert!(state.acquired_at.elapsed().unwrap() >= Duration::from_secs(1));
    assert_eq!(state.status, LockStatus::Held);
    assert_eq!(
        b.try_acquire("k").await.unwrap_err().kind(),
        nlock::AcquireErrorKind::Busy
    );
}

#[actix::test]
async fn without_keep_alive_the_lock_expires_and_the_holder_is_told() {
    let env = Env::start().await;
    let cfg = env.config().ttl(Duration::from_secs(1)).keep_alive(false);
    let a = env.manager(cfg.clone()).await;
    let b = env
        .manager(cfg.retry_interval(Duration::from_millis(100)))
        .await;
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    assert_eq!(lost.reason, nlock::LossReason::Expired);
    assert_eq!(lost.token, lock.token());
    // Once the server expires it too, another manager gets it.
    let next = b.acquire("k", Some(PATIENCE)).await.unwrap();
    assert!(next.token() > lock.token());
    // The reason is kept: a release after the loss says why.
    match lock.release().await.map_err(nlock::LockError::from) {
        Err(nlock::LockError::Lost { reason, .. }) => {
            assert_eq!(reason, nlock::LossReason::Expired)
        }
        other => panic!("expected Lost(Expired), got {other:?}"),
    }
}

#[actix::test]
async fn manual_refresh_extends_the_lease() {
    let env = Env::start().await;
    let m = env.manager(env.config().keep_alive(false)).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let before = lock.state().await.unwrap();
    lock.refresh().await.unwrap();
    let after = lock.state().await.unwrap();
    assert!(after.revision > before.revision);
    assert_eq!(
        after.token, before.token,
        "a refresh keeps the fencing token"
    );
    assert!(after.last_refresh.is_some());
}

/// A handle is released once (`release(self)`); its actor, asked directly afterwards, says the
/// lock is not held, and the raw message does what the method does.
#[actix::test]
async fn after_a_release_the_actor_says_not_held() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let (addr, lease) = (lock.actor().clone(), lock.lease().clone());
    lock.release().await.unwrap();
    assert_eq!(lease.end(), Some(nlock::LeaseEnd::Released));
    match addr.send(nlock::actor::Release).await {
        // The actor stops after its release; a message that still reaches it says so.
        Ok(answer) => assert_eq!(
            nlock::ReleaseError::from(answer.unwrap_err()).kind(),
            nlock::ReleaseErrorKind::NotHeld
        ),
        Err(actix::MailboxError::Closed) => {}
        Err(e) => panic!("unexpected {e}"),
    }
}

#[actix::test]
async fn dropping_the_handle_releases_the_lock() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    drop(a.acquire("k", Some(PATIENCE)).await.unwrap());
    let lock = b.acquire("k", Some(PATIENCE)).await.unwrap();
    assert_eq!(lock.state().await.unwrap().holder.owner, b.owner());
}

#[actix::test]
async fn bucket_is_created_with_the_options_asked_for() {
    let env = Env::start().await;
    let cfg = env
        .config()
        .description("test locks")
        .ttl(Duration::from_secs(7))
        .storage(Storage::File);
    let _m = env.manager(cfg).await;
    let js = async_nats::jetstream::new(env.raw().await);
    let mut stream = js.get_stream(format!("KV_{}", env.bucket)).await.unwrap();
    let info = stream.info().await.unwrap();
    let c = &info.config;
    assert_eq!(c.max_age, Duration::from_secs(7));
    assert_eq!(c.description.as_deref(), Some("test locks"));
    assert_eq!(c.storage, async_nats::jetstream::stream::StorageType::File);
    assert_eq!(c.num_replicas, 1);
    assert_eq!(c.max_messages_per_subject, 1);
    assert_eq!(c.subject_delete_marker_ttl.is_some(), env.modern());
}

#[actix::test]
async fn an_existing_matching_bucket_is_accepted() {
    let env = Env::start().await;
    let first = env.manager(env.config()).await;
    let second = env.manager(env.config()).await;
    let lock = first.acquire("k", Some(PATIENCE)).await.unwrap();
    assert_eq!(
        second.try_acquire("k").await.unwrap_err().kind(),
        nlock::AcquireErrorKind::Busy
    );
    drop(lock);
}

#[actix::test]
async fn capabilities_follow_the_server_version() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let caps = m.capabilities();
    assert_eq!(caps.per_lock_ttl, env.modern());
    assert_eq!(caps.expiry_events, env.modern());
    let (major, minor, patch) = env.server.version();
    assert_eq!(caps.server_version, format!("{major}.{minor}.{patch}"));
}

/// The messages of `nlock::actor` do what the handle's methods of the same name do: the
/// state a `GetState` answers is the one `state()` answers, a `Refresh` moves the revision as
/// `refresh()` does, a `Subscribe` guard is told of the loss as `subscribe()`'s is, and
/// `ListLocks` is `locks()`.
#[actix::test]
async fn the_actor_messages_do_what_the_methods_do() {
    let env = Env::start().await;
    let m = env.manager(env.config().keep_alive(false)).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let addr = lock.actor().clone();
    let by_message = addr.send(nlock::actor::GetState).await.unwrap();
    let by_method = lock.state().await.unwrap();
    assert_eq!(
        (
            by_message.key.as_str(),
            by_message.token,
            by_message.revision
        ),
        (by_method.key.as_str(), by_method.token, by_method.revision)
    );
    addr.send(nlock::actor::Refresh).await.unwrap().unwrap();
    let refreshed = lock.state().await.unwrap();
    assert!(refreshed.revision > by_method.revision);
    assert_eq!(refreshed.token, by_method.token);
    let listed = m.actor().send(nlock::actor::ListLocks).await.unwrap();
    let tokens = |r: &nlock::LocksReport| -> Vec<(String, u64)> {
        r.held.iter().map(|s| (s.key.clone(), s.token)).collect()
    };
    assert_eq!(tokens(&listed), tokens(&m.locks().await.unwrap()));
    assert_eq!(tokens(&listed), [("k".to_owned(), lock.token())]);
    let probe = crate::fixture::LossProbe::start();
    let _subscription = addr
        .send(nlock::actor::Subscribe(probe.recipient()))
        .await
        .unwrap();
    env.kv().await.delete("k").await.unwrap();
    assert_eq!(probe.next().await.reason, nlock::LossReason::Deleted);
}
