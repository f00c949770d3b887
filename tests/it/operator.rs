//! The operator's break, `force_release`: a compare-and-set on the revision read, never a
//! blind delete.

use nlock::{LockEventKind, LockManager, LossReason};

use crate::fixture::{Env, PATIENCE};

async fn events_until(m: &LockManager, key: &str, kind: LockEventKind) -> nlock::LockEvent {
    let mut events = m.events(key).await.unwrap();
    loop {
        let e = crate::fixture::next_event(&mut events).await;
        if e.kind == kind {
            return e;
        }
    }
}

#[actix::test]
async fn force_release_breaks_a_held_lock_and_the_holder_is_told_deleted() {
    let env = Env::start().await;
    let holder = env.manager(env.config()).await;
    let operator = env.manager(env.config()).await;
    let lock = holder.acquire("jobs.stuck", Some(PATIENCE)).await.unwrap();

    let broken = operator.force_release("jobs.stuck", None).await.unwrap();
    assert_eq!(broken.token, lock.token());
    assert_eq!(broken.holder.owner, holder.owner());

    let lost = tokio::time::timeout(PATIENCE, lock.lost())
        .await
        .expect("the holder is told");
    assert_eq!(lost.reason, LossReason::Deleted);
    assert_eq!(operator.holder("jobs.stuck").await.unwrap(), None);
    // Watchers see someone else's delete, naming the broken tenure.
    let deleted = events_until(&operator, "jobs.stuck", LockEventKind::Deleted).await;
    assert_eq!(deleted.token, Some(lock.token()));
    // The key is free again for anyone.
    let next = operator.try_acquire("jobs.stuck").await.unwrap();
    assert!(next.token() > lock.token());
}

#[actix::test]
async fn force_release_refuses_a_wrong_token_and_a_free_key() {
    let env = Env::start().await;
    let holder = env.manager(env.config()).await;
    let operator = env.manager(env.config()).await;
    let lock = holder.acquire("jobs.a", Some(PATIENCE)).await.unwrap();

    let err = operator
        .force_release("jobs.a", Some(lock.token() + 100))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::ReleaseErrorKind::TokenMismatch, "{err}");
    assert_eq!(err.kind().as_str(), "token_mismatch");
    // Nothing was deleted: the holder still holds, and its refresh succeeds.
    lock.refresh().await.unwrap();
    let still = operator.holder("jobs.a").await.unwrap().unwrap();
    assert_eq!(still.token, lock.token());

    // The right token, after refreshes moved the revision, breaks it.
    let broken = operator
        .force_release("jobs.a", Some(lock.token()))
        .await
        .unwrap();
    assert_eq!(broken.token, lock.token());

    let err = operator.force_release("jobs.a", None).await.unwrap_err();
    assert_eq!(err.kind(), nlock::ReleaseErrorKind::NotHeld, "{err}");
    let err = operator.force_release("bad..key", None).await.unwrap_err();
    assert_eq!(err.kind(), nlock::ReleaseErrorKind::InvalidKey, "{err}");
}

#[actix::test]
async fn force_release_never_deletes_a_newer_holders_key() {
    let env = Env::start().await;
    let first = env.manager(env.config()).await;
    let second = env.manager(env.config()).await;
    let operator = env.manager(env.config()).await;

    // The operator saw tenure `old` stuck; by the time it acts, the key changed hands.
    let old = first.acquire("jobs.b", Some(PATIENCE)).await.unwrap();
    let old_token = old.token();
    old.release().await.unwrap();
    let new = second.acquire("jobs.b", Some(PATIENCE)).await.unwrap();

    let err = operator
        .force_release("jobs.b", Some(old_token))
        .await
        .unwrap_err();
    match err.into_lock_error() {
        nlock::LockError::TokenMismatch {
            expected, found, ..
        } => {
            assert_eq!(expected, old_token);
            assert_eq!(found, new.token());
        }
        other => panic!("{other:?}"),
    }
    assert!(new.is_held());
    new.refresh().await.unwrap();
    assert_eq!(
        operator.holder("jobs.b").await.unwrap().unwrap().token,
        new.token()
    );
}
