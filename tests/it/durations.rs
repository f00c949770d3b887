//! No panic from the public API (issue 13 §4): every duration a caller can pass, from 0 to
//! `Duration::MAX`, is either refused with a typed error before anything is written, or
//! works (saturating: "that long" means "never" to a running process).
//!
//! A panic on an actor thread does not fail a test by itself: it kills the actor (the manager,
//! an elector) and the test goes on. So each test here asserts that the manager and the
//! elector are still alive and answering afterwards.

use std::time::Duration;

use nlock::limits::MAX_TTL;
use nlock::{
    Config, ConfigError, ElectorOptions, ElectorStatus, ErrorKind, LockError, LockManager,
    LockOptions,
};
use proptest::prelude::*;

use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;
use crate::leader::{elect, options, Book, KEY};

/// Durations from the edges and from anywhere.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        Just(MAX_TTL),
        (0u64..100_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// The manager answers: it takes and gives back a free key.
async fn assert_alive(m: &LockManager, key: &str) {
    let lock = tokio::time::timeout(PATIENCE, m.try_acquire(key))
        .await
        .expect("the manager answers")
        .expect("the manager grants a free key");
    lock.release().await.expect("and releases it");
}

#[test]
fn a_ttl_of_u64_max_seconds_is_refused_by_the_builder() {
    let huge = Duration::from_secs(u64::MAX);
    assert_eq!(
        Config::builder().ttl(huge).build(),
        Err(ConfigError::TtlTooLong(huge))
    );
    assert_eq!(
        Config::builder().ttl(Duration::MAX).build(),
        Err(ConfigError::TtlTooLong(Duration::MAX))
    );
    assert!(Config::builder().ttl(MAX_TTL).build().is_ok());
}

proptest! {
    /// Every builder and option setter that takes a duration: no panic, and the result is a
    /// value or a typed error.
    #[test]
    fn every_duration_setter_builds_or_is_refused_with_a_type(
        ttl in any_duration(),
        retry in any_duration(),
        timeout in any_duration(),
        margin in any_duration(),
        lock_ttl in any_duration(),
        delay in any_duration(),
        first in any_duration(),
        max in any_duration(),
        stop in any_duration(),
    ) {
        let built = Config::builder()
            .ttl(ttl)
            .retry_interval(retry)
            .request_timeout(timeout)
            .lease_margin(margin)
            .build();
        if let Err(e) = &built {
            // A typed error with a message (its Display must not panic either).
            prop_assert!(!e.to_string().is_empty());
            let as_lock: LockError = e.clone().into();
            prop_assert_eq!(as_lock.kind(), ErrorKind::InvalidConfig);
        }
        let lock = LockOptions::default().ttl(lock_ttl);
        prop_assert_eq!(lock.ttl, Some(lock_ttl));
        let elector = ElectorOptions::new("c")
            .lock_delay(delay)
            .backoff(first, max)
            .stop_timeout(stop)
            .ttl(lock_ttl);
        prop_assert!(elector.max_backoff >= elector.backoff);
    }
}

/// The same on a real server, for the paths that run in actors: a per-lock TTL and an acquire
/// timeout of any size, awaited or dropped. The manager must still answer after each.
#[test]
fn any_lock_ttl_and_acquire_timeout_leave_the_manager_alive() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (env, m) = rt.block_on(async {
        let env = Env::start().await;
        let m = env.manager(env.config()).await;
        (env, m)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    runner
        .run(
            &(any_duration(), any_duration(), any::<bool>()),
            |(ttl, timeout, drop_it)| {
                rt.block_on(async {
                    let acquire = m.lock("prop.key").ttl(ttl).timeout(timeout).acquire();
                    if drop_it {
                        // Dropped after one poll: the request is withdrawn.
                        let _ = tokio::time::timeout(Duration::from_millis(1), acquire).await;
                    } else {
                        match tokio::time::timeout(PATIENCE, acquire).await {
                            Ok(Ok(lock)) => lock.release().await.expect("release"),
                            Ok(Err(e)) => assert!(
                                matches!(
                                    e.kind(),
                                    nlock::AcquireErrorKind::InvalidConfig
                                        | nlock::AcquireErrorKind::Unsupported
                                        | nlock::AcquireErrorKind::AcquireTimedOut
                                ),
                                "{e:?}"
                            ),
                            Err(_) => panic!("the acquire of a free key did not answer"),
                        }
                    }
                    assert_alive(&m, "alive").await;
                });
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(async {
        m.shutdown().await;
        drop(env);
    });
}

/// The reproducer: an elector whose lock-delay, backoff and stop timeout are all
/// `Duration::MAX` resigns with `Duration::MAX`. It must hand over (another candidate leads),
/// stand aside, and still answer a shutdown; its manager must still grant locks.
#[actix::test]
async fn an_elector_with_every_duration_at_max_resigns_with_max_and_survives() {
    let env = Env::start().await;
    let (m1, m2) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let book = Book::default();
    let huge = ElectorOptions::new("huge")
        .lock_delay(Duration::MAX)
        .backoff(Duration::MAX, Duration::MAX)
        .stop_timeout(Duration::MAX);
    let a = elect(&m1, "huge", huge, &book);
    tokio::time::timeout(
        PATIENCE,
        a.wait_for(|s| matches!(s, ElectorStatus::Leading { .. })),
    )
    .await
    .expect("the only candidate leads");
    let b = elect(&m2, "b", options("b"), &book);

    tokio::time::timeout(PATIENCE, a.resign(Duration::MAX))
        .await
        .expect("the resign returns");
    let (who, _) = book.next_term(0).await;
    assert_eq!(who, "huge");
    tokio::time::timeout(
        PATIENCE,
        b.wait_for(|s| matches!(s, ElectorStatus::Leading { .. })),
    )
    .await
    .expect("the other candidate takes over after the clean release");
    // Standing aside "forever" (saturated), alive, and a second resign while holding off
    // extends nothing past what fits.
    let past_term = a.wait_for(|s| !matches!(s, ElectorStatus::Leading { .. }));
    let status = tokio::time::timeout(PATIENCE, past_term)
        .await
        .expect("the elector moves on from its term");
    assert_eq!(status, ElectorStatus::HoldingOff);
    tokio::time::timeout(PATIENCE, a.resign(Duration::MAX))
        .await
        .expect("a resign while holding off returns");
    assert_eq!(a.status(), ElectorStatus::HoldingOff);
    assert_ne!(a.status(), ElectorStatus::Stopped, "the campaign is alive");
    assert_alive(&m1, "alive").await;
    tokio::time::timeout(PATIENCE, a.shutdown())
        .await
        .expect("the elector still answers a shutdown");
    assert_eq!(a.status(), ElectorStatus::Stopped);
    b.shutdown().await;
    book.check();
    m1.shutdown().await;
    m2.shutdown().await;
}

/// A lock-delay of `Duration::MAX` after an unclean end (a forced release of the previous
/// term): the new leader holds the term without starting its role, and still answers.
#[actix::test]
async fn a_lock_delay_of_max_after_an_unclean_end_waits_without_panicking() {
    let env = Env::start().await;
    let (m1, m2) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
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
    let patient = options("patient").lock_delay(Duration::MAX);
    let b = elect(&m2, "patient", patient, &book);
    must_eventually(PATIENCE, "b waits for the key", || async {
        crate::fixture::waiting_on(&m2, KEY).await > 0
    })
    .await;
    m1.force_release(KEY, Some(a_token))
        .await
        .expect("force release");
    let b_status = tokio::time::timeout(
        PATIENCE,
        b.wait_for(|s| matches!(s, ElectorStatus::Leading { .. })),
    )
    .await
    .expect("b takes the broken key");
    // Holding the term, its role not started: the lock-delay runs (saturated, "forever").
    assert!(matches!(b_status, ElectorStatus::Leading { token } if token > a_token));
    assert_alive(&m2, "alive").await;
    assert!(b.is_leader(), "the elector still leads");
    assert_ne!(b.status(), ElectorStatus::Stopped, "the campaign is alive");
    assert!(
        book.starts().iter().all(|s| s.who != "patient"),
        "no role during the lock-delay"
    );
    tokio::time::timeout(PATIENCE, b.shutdown())
        .await
        .expect("the elector answers a shutdown during its lock-delay");
    a.shutdown().await;
    book.check();
    m1.shutdown().await;
    m2.shutdown().await;
}

/// A retry interval of `Duration::MAX`: the waiter's fallback poll never runs, and the
/// manager's change stream wakes it when the holder releases.
#[actix::test]
async fn a_retry_interval_of_max_waits_on_the_change_feed() {
    let env = Env::start().await;
    let holder = env.manager(env.config()).await;
    let waiter = env
        .manager(env.config().retry_interval(Duration::MAX))
        .await;
    let lock = holder.acquire("k", None).await.unwrap();
    let waiting = crate::fixture::spawn_waiter(&waiter, "k", Duration::MAX).await;
    assert_alive(&waiter, "alive").await;
    lock.release().await.unwrap();
    let got = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiter is woken by the watch")
        .unwrap()
        .expect("and granted");
    got.release().await.unwrap();
    assert_alive(&waiter, "alive").await;
    holder.shutdown().await;
    waiter.shutdown().await;
}
