//! Semaphores (`LockManager::semaphore`): at most N holders of a name across processes, each
//! permit a lock of its own, a permit count every process must agree on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nlock::{AcquireErrorKind, ConfigError, LockError};

use crate::fixture::{Env, PATIENCE};

#[actix::test]
async fn n_permits_are_granted_at_once_and_the_next_request_is_busy_until_one_is_released() {
    let env = Env::start().await;
    let mut managers = Vec::new();
    for _ in 0..4 {
        managers.push(env.manager(env.config()).await);
    }
    let mut permits = Vec::new();
    for m in &managers[..3] {
        permits.push(
            m.semaphore("pool", 3)
                .try_acquire()
                .await
                .expect("a free permit"),
        );
    }
    let mut keys: Vec<&str> = permits.iter().map(|p| p.key()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "three permits, three keys");
    assert!(permits.iter().all(|p| p.is_held()));
    let err = managers[3]
        .semaphore("pool", 3)
        .try_acquire()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AcquireErrorKind::Busy);
    let freed = permits.pop().unwrap();
    let freed_token = freed.token();
    freed.release().await.unwrap();
    let next = managers[3]
        .semaphore("pool", 3)
        .try_acquire()
        .await
        .expect("the released permit");
    assert!(next.token() > freed_token);
}

/// Who is inside, at most, and every grant.
#[derive(Default)]
struct Register {
    inside: usize,
    most: usize,
    grants: usize,
}

#[actix::test]
async fn waiters_in_six_processes_never_exceed_the_permits() {
    const PERMITS: u32 = 2;
    const ROUNDS: usize = 4;
    let env = Env::start().await;
    let register = Arc::new(Mutex::new(Register::default()));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let m = env.manager(env.config()).await;
        let register = register.clone();
        tasks.push(actix::spawn(async move {
            for _ in 0..ROUNDS {
                let permit = m
                    .semaphore("pool", PERMITS)
                    .timeout(PATIENCE * 3)
                    .acquire()
                    .await
                    .expect("a permit");
                {
                    let mut r = register.lock().unwrap();
                    r.inside += 1;
                    r.most = r.most.max(r.inside);
                    r.grants += 1;
                }
                // The work: long enough for a third holder to be caught inside.
                tokio::time::sleep(Duration::from_millis(5)).await;
                register.lock().unwrap().inside -= 1;
                permit.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = register.lock().unwrap();
    assert_eq!(r.grants, 6 * ROUNDS);
    assert!(r.most <= PERMITS as usize, "{} inside at once", r.most);
}

#[actix::test]
async fn a_permit_count_that_differs_from_a_holders_is_refused() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let _held = a.semaphore("pool", 3).try_acquire().await.unwrap();
    for permits in [2, 5] {
        let err = b.semaphore("pool", permits).acquire().await.unwrap_err();
        assert_eq!(err.kind(), AcquireErrorKind::InvalidConfig);
        assert!(
            matches!(
                err.lock_error(),
                LockError::InvalidConfig(ConfigError::PermitsMismatch { found: 3, .. })
            ),
            "{err:?}"
        );
    }
    // The same count is fine.
    b.semaphore("pool", 3)
        .try_acquire()
        .await
        .expect("a free permit");
}

#[actix::test]
async fn bad_names_and_counts_are_refused_before_anything_is_written() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let before = env.stream_messages().await;
    for permits in [0, nlock::limits::MAX_PERMITS + 1] {
        let err = m
            .semaphore("pool", permits)
            .try_acquire()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), AcquireErrorKind::InvalidConfig);
    }
    let err = m.semaphore("bad..name", 2).acquire().await.unwrap_err();
    assert_eq!(err.kind(), AcquireErrorKind::InvalidKey);
    assert_eq!(env.stream_messages().await, before);
}

#[actix::test]
async fn a_crashed_holders_permit_comes_back_after_its_lease() {
    let env = Env::start().await;
    let cfg = env
        .config()
        .ttl(Duration::from_secs(1))
        .request_timeout(Duration::from_millis(300))
        .retry_interval(Duration::from_secs(600));
    let m = env.manager(cfg).await;
    // The only permit, written as a holder that then crashed would have: never refreshed.
    env.kv()
        .await
        .create("_nlock.s.pool.0", "crashed holder".into())
        .await
        .unwrap();
    assert_eq!(
        m.semaphore("pool", 1)
            .try_acquire()
            .await
            .unwrap_err()
            .kind(),
        AcquireErrorKind::Busy
    );
    let permit = m
        .semaphore("pool", 1)
        .timeout(PATIENCE)
        .acquire()
        .await
        .expect("the permit, once the crashed holder's lease is over");
    assert_eq!(permit.key(), "_nlock.s.pool.0");
}

/// A permit holder cut off from the server (its connection blackholed) keeps counting its
/// lease; its permit goes to a waiter only after its `is_held()` turned false, so the two
/// holders' leases and the waiter's never make three at once.
#[actix::test]
async fn a_cut_off_holders_permit_is_granted_only_after_it_stopped_holding() {
    use crate::harness::proxy::{ProxyMode, TcpProxy};

    let env = Env::start().await;
    let proxy = TcpProxy::start(env.server.addr()).await;
    let cut = nlock::LockManager::connect(&proxy.url(), env.config().build().unwrap())
        .await
        .unwrap();
    let steady = env.manager(env.config()).await;
    let waiter = env
        .manager(env.config().retry_interval(Duration::from_secs(600)))
        .await;
    let cut_permit = cut.semaphore("pool", 2).try_acquire().await.unwrap();
    let steady_permit = steady.semaphore("pool", 2).try_acquire().await.unwrap();
    let lease = cut_permit.lease().clone();
    // The cut-off holder's own view, every millisecond: the last moment it said "held".
    let watch = crate::fixture::watch_last_held(lease.clone());
    let pending = {
        let waiter = waiter.clone();
        actix::spawn(async move {
            waiter
                .semaphore("pool", 2)
                .timeout(PATIENCE * 2)
                .acquire()
                .await
        })
    };
    proxy.set_mode(ProxyMode::Blackhole);
    let got = pending.await.unwrap().expect("the cut-off holder's permit");
    let granted = tokio::time::Instant::now();
    assert!(watch.await.unwrap() < granted, "three holders at once");
    assert_eq!(got.key(), cut_permit.key());
    assert!(
        steady_permit.is_held(),
        "the other permit was never in question"
    );
    drop(cut_permit);
}

#[actix::test]
async fn observers_see_permits_and_an_operator_can_break_one() {
    use futures::StreamExt;

    let env = Env::start().await;
    let holder = env.manager(env.config()).await;
    let operator = env.manager(env.config()).await;
    let mut events = operator.events("_nlock.s.pool.>").await.unwrap();
    let permit = holder.semaphore("pool", 2).try_acquire().await.unwrap();
    let seen = operator.holder(permit.key()).await.unwrap().expect("held");
    assert_eq!(seen.token, permit.token());
    assert_eq!(seen.holder.permits, Some(2));
    let first = tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.key, permit.key());
    operator
        .force_release(permit.key(), Some(permit.token()))
        .await
        .unwrap();
    let lost = tokio::time::timeout(PATIENCE, permit.lost()).await.unwrap();
    assert_eq!(lost.reason, nlock::LossReason::Deleted);
    assert_eq!(
        operator.holder("_nlock.q.pool.1").await.unwrap_err().kind(),
        nlock::ObserveErrorKind::InvalidKey
    );
}

/// The entry keys in the lines of the permits of `name`, read behind nlock's back.
async fn permit_line_entries(env: &Env, name: &str) -> usize {
    let prefix = format!("_nlock.q._nlock.s.{name}.");
    env.keys_with_prefix(&prefix).await.len()
}

#[actix::test]
async fn waiters_get_released_permits_in_the_order_they_began_to_wait() {
    let env = Env::start().await;
    let cfg = || env.config().retry_interval(Duration::from_secs(600));
    let holders = [env.manager(cfg()).await, env.manager(cfg()).await];
    let mut held = Vec::new();
    for m in &holders {
        held.push(m.semaphore("pool", 2).try_acquire().await.unwrap());
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let m = env.manager(cfg()).await;
        let before = permit_line_entries(&env, "pool").await;
        let order = order.clone();
        tasks.push(actix::spawn(async move {
            let permit = m
                .semaphore("pool", 2)
                .timeout(PATIENCE * 3)
                .acquire()
                .await
                .expect("a permit");
            order.lock().unwrap().push(name);
            // Held until the test lets go: each release below frees one permit.
            permit
        }));
        // In both permits' lines before the next one asks.
        crate::harness::must_eventually(PATIENCE, "the waiter is in both lines", || async {
            permit_line_entries(&env, "pool").await == before + 2
        })
        .await;
    }
    // One permit at a time: each release goes to the waiter that asked first.
    let mut granted = Vec::new();
    for (i, permit) in held.into_iter().enumerate() {
        permit.release().await.unwrap();
        crate::harness::must_eventually(PATIENCE, "the next waiter is granted", || async {
            order.lock().unwrap().len() == i + 1
        })
        .await;
    }
    assert_eq!(*order.lock().unwrap(), ["w1", "w2"]);
    let first = tasks.remove(0).await.unwrap();
    first.release().await.unwrap();
    granted.push(tasks.remove(1).await.unwrap());
    assert_eq!(*order.lock().unwrap(), ["w1", "w2", "w3"]);
}

/// A permit holder killed with SIGKILL (a real process): its permit goes to a waiter once its
/// lease is over, the other holder keeps its own, and the waiter's token is above the dead
/// holder's.
#[actix::test]
async fn a_killed_holders_permit_goes_to_a_waiter_and_the_other_holder_keeps_its_own() {
    use crate::harness::child::ChildClient;

    let env = Env::start().await;
    let url = env.server.url();
    let mut doomed = ChildClient::start(&url, &env.bucket, 3, 100).await;
    let mut steady = ChildClient::start(&url, &env.bucket, 3, 100).await;
    let dead = doomed.call("sem pool 2 5000").await;
    let kept = steady.call("sem pool 2 5000").await;
    assert_eq!(dead["ev"], "acquired", "{dead}");
    assert_eq!(kept["ev"], "acquired", "{kept}");
    assert_ne!(dead["lock_key"], kept["lock_key"]);
    let waiter = env
        .manager(env.config().retry_interval(Duration::from_secs(600)))
        .await;
    assert_eq!(
        waiter
            .semaphore("pool", 2)
            .try_acquire()
            .await
            .unwrap_err()
            .kind(),
        AcquireErrorKind::Busy
    );
    doomed.kill().await;
    let got = waiter
        .semaphore("pool", 2)
        .timeout(PATIENCE * 2)
        .acquire()
        .await
        .expect("the killed holder's permit");
    assert_eq!(got.key(), dead["lock_key"].as_str().unwrap());
    assert!(got.token() > dead["token"].as_u64().unwrap());
    let still = steady.call("held pool").await;
    assert_eq!(still["held"], true, "{still}");
}
