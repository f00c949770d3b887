//! Every end of a tenure is told, at once and exactly once: shutdown with waiters and holders,
//! late subscribers, releases after the deadline, foreign writes, the reason kept afterwards.

use std::time::Duration;

use futures::FutureExt;
use nlock::{DoOutcome, LeaseEnd, LockError, LossReason, OnLoss};

use crate::fixture::{spawn_waiter, Env, LossProbe, PATIENCE};

#[actix::test]
async fn shutdown_stops_a_waiter_that_is_already_contending() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let _held = a.acquire("k", Some(PATIENCE)).await.unwrap();
    // b's waiter is the head of its queue, watching a key held by another process, and
    // waits with no timeout of its own.
    let waiter = {
        let b = b.clone();
        actix::spawn(async move { b.acquire("k", None).await })
    };
    crate::harness::must_eventually(PATIENCE, "b contends", || async {
        crate::fixture::waiting_on(&b, "k").await > 0
    })
    .await;
    tokio::time::timeout(PATIENCE, b.shutdown())
        .await
        .expect("shutdown returns although a waiter contends");
    let err = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the waiter is told")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::ManagerGone);
}

#[actix::test]
async fn shutdown_tells_the_holder_before_the_key_is_freed() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let probe = LossProbe::start();
    lock.subscribe(probe.recipient()).detach();
    let waiter = spawn_waiter(&b, "k", PATIENCE).await;

    let shutdown = {
        let a = a.clone();
        actix::spawn(async move { a.shutdown().await })
    };
    let granted = waiter.await.unwrap().unwrap();
    // b holds the key now; a's holder must already know it lost it, without waiting.
    let lost = lock
        .lost()
        .now_or_never()
        .expect("the holder was told before the key was freed");
    assert_eq!(lost.reason, LossReason::Shutdown);
    assert_eq!(lost.token, lock.token());
    assert!(!lock.is_held());
    shutdown.await.unwrap();
    let told = probe.next().await;
    assert_eq!(told, lost);
    probe.assert_no_more().await;
    assert!(granted.token() > lock.token());
}

#[actix::test]
async fn a_subscriber_that_arrives_after_the_loss_is_told_once() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    env.kv().await.delete("k").await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    // The lock actor has stopped by now: subscribing must still deliver the loss.
    crate::harness::must_eventually(PATIENCE, "the lock actor stopped", || async {
        !lock.actor().connected()
    })
    .await;
    let probe = LossProbe::start();
    lock.subscribe(probe.recipient()).detach();
    assert_eq!(probe.next().await, lost);
    probe.assert_no_more().await;
}

#[actix::test]
async fn lost_and_ended_asked_only_after_the_loss_resolve_at_once() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let lease = lock.lease().clone();
    env.kv().await.delete("k").await.unwrap();
    // Nobody waits on the lease before it ends: the first to ask comes after the end and is
    // answered from the stored end, not from a wake-up that has already happened.
    crate::harness::must_eventually(PATIENCE, "the lease ended", || async {
        lease.end().is_some()
    })
    .await;
    let lost = lock
        .lost()
        .now_or_never()
        .expect("lost() asked after the loss resolves at once");
    assert_eq!(lost.reason, LossReason::Deleted);
    assert_eq!((lost.key.as_str(), lost.token), ("k", lock.token()));
    let deleted = LeaseEnd::Lost {
        reason: LossReason::Deleted,
    };
    assert_eq!(lease.clone().ended().now_or_never(), Some(deleted.clone()));
    assert_eq!(lock.ended().now_or_never(), Some(deleted));
}

#[actix::test]
async fn a_subscriber_racing_the_loss_is_told_once() {
    let env = Env::start().await;
    let m = env
        .manager(env.config().ttl(Duration::from_secs(1)).keep_alive(false))
        .await;
    for _ in 0..5 {
        let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
        // Subscribe at about the moment the lease runs out: before, during or after the
        // actor stops, the probe hears of the loss exactly once.
        let left = lock.state().await.unwrap().time_left;
        tokio::time::sleep(left).await;
        let probe = LossProbe::start();
        lock.subscribe(probe.recipient()).detach();
        let told = probe.next().await;
        assert_eq!(told.reason, LossReason::Expired);
        assert_eq!(told.token, lock.token());
        probe.assert_no_more().await;
    }
}

#[actix::test]
async fn a_release_after_the_deadline_reports_the_expiry() {
    let env = Env::start().await;
    let m = env
        .manager(env.config().ttl(Duration::from_secs(1)).keep_alive(false))
        .await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let probe = LossProbe::start();
    lock.subscribe(probe.recipient()).detach();
    lock.state().await.unwrap();
    // The fault: the actor system's only thread is blocked past the 1 s lease, so the
    // release may be handled before the actor's own deadline timer runs.
    std::thread::sleep(Duration::from_millis(1200));
    match lock.release().await.map_err(LockError::from) {
        Err(LockError::Lost { reason, .. }) => assert_eq!(reason, LossReason::Expired),
        other => panic!("expected Lost(Expired), got {other:?}"),
    }
    assert_eq!(probe.next().await.reason, LossReason::Expired);
}

#[actix::test]
async fn a_foreign_delete_is_noticed_without_waiting_for_a_refresh() {
    let env = Env::start().await;
    // Keep-alive off and a 30 s TTL: nothing of the lock's own would look at the key for
    // 28 s, so only the foreign write itself can tell the holder within PATIENCE.
    let m = env
        .manager(env.config().ttl(Duration::from_secs(30)).keep_alive(false))
        .await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let manager_probe = LossProbe::start();
    m.subscribe_losses(manager_probe.recipient()).detach();
    m.locks().await.unwrap();
    let deleted = std::time::Instant::now();
    env.kv().await.delete("k").await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost())
        .await
        .expect("the delete was noticed");
    eprintln!(
        "measured: foreign delete to holder told {:?}",
        deleted.elapsed()
    );
    assert_eq!(lost.reason, LossReason::Deleted);
    assert_eq!(manager_probe.next().await, lost);
}

#[actix::test]
async fn a_foreign_purge_and_a_blind_put_are_noticed_too() {
    let env = Env::start().await;
    let m = env
        .manager(env.config().ttl(Duration::from_secs(30)).keep_alive(false))
        .await;
    let purged = m.acquire("purged", Some(PATIENCE)).await.unwrap();
    let overwritten = m.acquire("overwritten", Some(PATIENCE)).await.unwrap();
    let kv = env.kv().await;
    kv.purge("purged").await.unwrap();
    kv.put("overwritten", "not yours".into()).await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, purged.lost()).await.unwrap();
    assert_eq!(lost.reason, LossReason::Deleted);
    let lost = tokio::time::timeout(PATIENCE, overwritten.lost())
        .await
        .unwrap();
    assert!(
        matches!(lost.reason, LossReason::Taken { .. }),
        "{:?}",
        lost.reason
    );
}

#[actix::test]
async fn a_refused_foreign_write_does_not_end_the_lock() {
    let env = Env::start().await;
    let m = env
        .manager(env.config().ttl(Duration::from_secs(30)).keep_alive(false))
        .await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let probe = LossProbe::start();
    lock.subscribe(probe.recipient()).detach();
    let kv = env.kv().await;
    // Writes that the stream refuses: a create on a held key, a compare-and-set and a
    // delete against a revision the key does not have.
    let wrong = lock.token() + 1;
    assert!(kv.create("k", "mine".into()).await.is_err());
    assert!(kv.update("k", "mine".into(), wrong).await.is_err());
    assert!(kv.delete_expect_revision("k", Some(wrong)).await.is_err());
    // A write the holder itself checks: its own refresh still succeeds, so it still holds.
    lock.refresh().await.unwrap();
    assert!(lock.is_held());
    let entry = kv.entry("k").await.unwrap().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(value["owner"], m.owner());
    probe.assert_no_more().await;
}

#[actix::test]
async fn after_a_loss_state_and_release_still_say_why() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    env.kv().await.delete("k").await.unwrap();
    tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    crate::harness::must_eventually(PATIENCE, "the lock actor stopped", || async {
        !lock.actor().connected()
    })
    .await;
    for err in [
        lock.refresh().await.unwrap_err(),
        lock.state().await.unwrap_err(),
        lock.release().await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), nlock::ReleaseErrorKind::Lost);
        match err.into_lock_error() {
            LockError::Lost { reason, .. } => assert_eq!(reason, LossReason::Deleted),
            other => panic!("expected Lost(Deleted), got {other:?}"),
        }
    }
}

#[actix::test]
async fn the_lease_view_follows_the_tenure_without_the_handle() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let lease = lock.lease().clone();
    assert_eq!(lease.key(), "k");
    assert_eq!(lease.token(), lock.token());
    assert!(lease.is_held());
    assert!(lease.time_left() > Duration::ZERO);
    assert_eq!(lease.end(), None);
    let ended = {
        let lease = lease.clone();
        actix::spawn(async move { lease.ended().await })
    };
    lock.release().await.unwrap();
    assert_eq!(ended.await.unwrap(), LeaseEnd::Released);
    assert!(!lease.is_held());
    assert_eq!(lease.time_left(), Duration::ZERO);
    // A released lease never reports a loss.
    assert!(lease.lost().now_or_never().is_none());
}

#[actix::test]
async fn the_lease_view_reports_a_loss_with_its_reason() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let lease = lock.lease().clone();
    drop(lock.lease().clone());
    env.kv().await.delete("k").await.unwrap();
    let end = tokio::time::timeout(PATIENCE, lease.ended()).await.unwrap();
    assert_eq!(
        end,
        LeaseEnd::Lost {
            reason: LossReason::Deleted
        }
    );
    assert!(!lease.is_held());
}

#[actix::test]
async fn a_subscription_does_not_keep_its_subscriber_alive() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let per_lock = LossProbe::start();
    lock.subscribe(per_lock.recipient()).detach();
    let per_manager = LossProbe::start();
    m.subscribe_losses(per_manager.recipient()).detach();
    assert!(
        per_lock.drop_and_wait_stopped().await,
        "per-lock subscriber"
    );
    assert!(
        per_manager.drop_and_wait_stopped().await,
        "manager subscriber"
    );
    // A loss after the subscribers stopped goes nowhere and breaks nothing.
    env.kv().await.delete("k").await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    assert_eq!(lost.reason, LossReason::Deleted);
}

#[actix::test]
async fn a_dropped_subscription_is_not_told_a_kept_or_detached_one_is() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let gone = LossProbe::start();
    let stays = LossProbe::start();
    let gone_from_manager = LossProbe::start();
    let kept = LossProbe::start();
    let subscription = lock.subscribe(gone.recipient());
    lock.subscribe(stays.recipient()).detach();
    let kept_subscription = lock.subscribe(kept.recipient());
    let manager_subscription = m.subscribe_losses(gone_from_manager.recipient());
    drop(subscription);
    drop(manager_subscription);
    env.kv().await.delete("k").await.unwrap();
    assert_eq!(stays.next().await.reason, LossReason::Deleted);
    assert_eq!(kept.next().await.reason, LossReason::Deleted);
    gone.assert_no_more().await;
    gone_from_manager.assert_no_more().await;
    drop(kept_subscription);
}

#[actix::test]
async fn run_if_free_cancels_work_whose_lock_is_lost() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let kv = env.kv().await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let run = m.run_if_free("job", |lease| async move {
        let _ = started_tx.send(lease.token());
        // Work that would never end by itself: only the loss can stop it.
        std::future::pending::<()>().await
    });
    let delete = async {
        let token = started_rx.await.unwrap();
        assert!(token > 0);
        kv.delete("job").await.unwrap();
    };
    let (outcome, ()) = tokio::time::timeout(PATIENCE, async { futures::join!(run, delete) })
        .await
        .expect("the work is cancelled at the loss");
    match outcome.unwrap() {
        DoOutcome::Lost { value, reason } => {
            assert!(value.is_none(), "cancelled work has no value");
            assert_eq!(reason, LossReason::Deleted);
        }
        other => panic!("expected Lost, got {other:?}"),
    }
}

#[actix::test]
async fn run_if_free_can_let_the_work_finish_and_still_report_the_loss() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let kv = env.kv().await;
    let outcome = m
        .lock("job")
        .on_loss(OnLoss::Finish)
        .run_if_free(|lease| async move {
            kv.delete("job").await.unwrap();
            // The work checks its lease before its last step, as a fenced writer would.
            lease.ended().await;
            (lease.token(), lease.is_held())
        })
        .await
        .unwrap();
    match outcome {
        DoOutcome::Lost {
            value: Some((token, held)),
            reason,
        } => {
            assert!(token > 0);
            assert!(!held);
            assert_eq!(reason, LossReason::Deleted);
        }
        other => panic!("expected Lost with the work's value, got {other:?}"),
    }
}
