//! Takeover at the lease's end (GUARANTEES.md, "Takeover at the lease's end"): a waiter takes a
//! key whose holder stopped writing once the holder's lease is over on the holder's own
//! count, without waiting for the server to expire the key (which a 2.9 server never
//! announces), and never while the holder's `is_held()` can still be true.

use std::time::Duration;

use nlock::LossReason;

use crate::fixture::{spawn_waiter, Env, PATIENCE};
use crate::harness::child::ChildClient;
use crate::harness::proxy::{ProxyMode, TcpProxy};

/// The waiters here never poll: on a server without limit markers only the takeover can
/// grant them the key within the test.
const NEVER_POLL: Duration = Duration::from_secs(600);
/// The fixture's bucket TTL.
const TTL_S: u64 = 3;

/// The server's timestamp of the key's last write, in microseconds since the epoch: when the
/// waiter's grant landed, on the one clock this host's processes share.
async fn landed_us(env: &Env, key: &str) -> u64 {
    let entry = env
        .kv()
        .await
        .entry(key)
        .await
        .unwrap()
        .expect("the key has a value");
    u64::try_from(entry.created.unix_timestamp_nanos() / 1000).unwrap()
}

/// A holder in its own process is frozen (SIGSTOP) with the lock: it stops refreshing, and
/// its lease runs out on its own clock. The waiter's grant lands after the holder's lease
/// deadline, which the holder reports once it runs again.
#[actix::test]
async fn a_frozen_holder_is_taken_over_after_its_lease_deadline_and_never_before() {
    let env = Env::start().await;
    let waiter = env.manager(env.config().retry_interval(NEVER_POLL)).await;
    for round in 0..3 {
        let mut holder = ChildClient::start(&env.server.url(), &env.bucket, TTL_S, 50).await;
        let got = holder.call(&format!("acquire k {}", 10_000)).await;
        assert_eq!(got["ev"], "acquired", "{got}");
        assert_eq!(holder.call("watch-held k").await["ev"], "watching");
        let pending = spawn_waiter(&waiter, "k", PATIENCE * 2).await;
        // A moment of the holder's refresh cycle (every TTL/3).
        tokio::time::sleep(Duration::from_millis(round * 400)).await;
        holder.pause();
        let lock = pending.await.unwrap().expect("taken over");
        let landed = landed_us(&env, "k").await;
        holder.resume();
        let unheld = holder.expect("unheld").await;
        let deadline = unheld["deadline_us"].as_u64().unwrap();
        assert!(
            landed > deadline,
            "round {round}: the grant landed {} µs before the frozen holder's lease deadline",
            deadline - landed
        );
        assert!(lock.token() > got["token"].as_u64().unwrap());
        eprintln!(
            "round {round}: granted {} ms after the holder's lease deadline",
            (landed - deadline) / 1000
        );
        let lost = holder.expect("lost").await;
        assert_eq!(lost["reason"], "Expired", "{lost}");
        lock.release().await.unwrap();
        holder.kill().await;
    }
}

/// A holder whose connection is blackholed keeps counting its lease and loses it at its
/// deadline; the waiter takes the key after that, never while the holder's `is_held()` is
/// true.
#[actix::test]
async fn a_blackholed_holder_is_taken_over_only_after_it_stopped_holding() {
    let env = Env::start().await;
    let proxy = TcpProxy::start(env.server.addr()).await;
    let holder = nlock::LockManager::connect(&proxy.url(), env.config().build().unwrap())
        .await
        .unwrap();
    let waiter = env.manager(env.config().retry_interval(NEVER_POLL)).await;
    let held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
    let lease = held.lease().clone();
    // The holder's own view, every millisecond: the last moment it said "held".
    let watch = crate::fixture::watch_last_held(lease.clone());
    let pending = spawn_waiter(&waiter, "k", PATIENCE * 2).await;
    proxy.set_mode(ProxyMode::Blackhole);
    let lock = pending.await.unwrap().expect("taken over");
    let granted = tokio::time::Instant::now();
    let last_held = watch.await.unwrap();
    assert!(
        last_held < granted,
        "the holder still held the lock after the grant"
    );
    assert!(lock.token() > lease.token());
    let lost = tokio::time::timeout(PATIENCE, lease.lost()).await.unwrap();
    assert_eq!(lost.reason, LossReason::Expired);
    drop(held);
}

/// A holder that keeps refreshing is never taken over: each takeover attempt expects a write
/// the holder has replaced since, and fails.
#[actix::test]
async fn a_refreshing_holder_is_never_taken_over() {
    let env = Env::start().await;
    let holder = env.manager(env.config()).await;
    let waiter = env.manager(env.config().retry_interval(NEVER_POLL)).await;
    let held = holder.acquire("k", Some(PATIENCE)).await.unwrap();
    // Three TTLs: three takeover moments pass.
    let err = waiter
        .acquire("k", Some(Duration::from_secs(3 * TTL_S)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::AcquireTimedOut);
    assert!(held.is_held());
    assert_eq!(held.lease().end(), None);
    held.release().await.unwrap();
}

/// With the takeover off, a waiter that never polls waits for the server: on a server
/// without limit markers, whose expiries nobody announces, it is still waiting when the
/// holder's key has long expired.
#[actix::test]
async fn without_the_takeover_a_waiter_waits_for_the_server() {
    let env = Env::start().await;
    if env.modern() {
        // Limit markers announce the expiry; nothing to show.
        return;
    }
    let mut holder = ChildClient::start(&env.server.url(), &env.bucket, TTL_S, 50).await;
    assert_eq!(holder.call("acquire k 10000").await["ev"], "acquired");
    let waiter = env
        .manager(env.config().retry_interval(NEVER_POLL).takeover(false))
        .await;
    holder.pause();
    let err = waiter
        .acquire("k", Some(Duration::from_secs(3 * TTL_S)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::AcquireTimedOut);
    holder.kill().await;
}
