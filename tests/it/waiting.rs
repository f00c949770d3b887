//! Waiting without polling: watch-driven handoff, expiry events, cancellation.

use std::time::Duration;

use crate::fixture::{spawn_waiter, Env, PATIENCE};

/// Far longer than any test: a waiter that gets the lock did not get it by polling.
const NEVER_POLL: Duration = Duration::from_secs(600);

#[actix::test]
async fn handoff_wakes_the_waiter_by_watch_not_by_polling() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config().retry_interval(NEVER_POLL)).await;
    let held = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let waiter = spawn_waiter(&b, "k", PATIENCE).await;
    let held_token = held.token();
    held.release().await.unwrap();
    let got = waiter
        .await
        .unwrap()
        .expect("woken by the watch within the test");
    assert!(got.token() > held_token);
}

/// Writes a lock value the way a holder that then crashed would have: nobody refreshes or
/// deletes it, so only the server's expiry frees the key.
async fn crashed_holder_writes(env: &Env, key: &str, ttl: Option<&str>) {
    let js = async_nats::jetstream::new(env.raw().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
    if let Some(ttl) = ttl {
        headers.insert("Nats-TTL", ttl);
    }
    let subject = format!("$KV.{}.{key}", env.bucket);
    js.publish_with_headers(subject, headers, "crashed holder".into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[actix::test]
async fn expiry_wakes_the_waiter_with_limit_markers() {
    let env = Env::start().await;
    if !env.modern() {
        eprintln!(
            "skipped: nats-server {:?} has no limit markers",
            env.server.version()
        );
        return;
    }
    let b = env.manager(env.config().retry_interval(NEVER_POLL)).await;
    crashed_holder_writes(&env, "k", Some("1s")).await;
    assert_eq!(
        b.try_acquire("k").await.unwrap_err().kind(),
        nlock::AcquireErrorKind::Busy
    );
    // Only the server's expiry marker can wake b: no poll runs within the test.
    let got = b.acquire("k", Some(PATIENCE)).await.unwrap();
    assert_eq!(got.state().await.unwrap().holder.owner, b.owner());
}

#[actix::test]
async fn a_crashed_holders_key_is_taken_after_it_expires() {
    // On 2.11+ the expiry marker wakes the waiter; on older servers the expiry is silent
    // and the fallback poll (every 100 ms here) finds the key free.
    let env = Env::start().await;
    let cfg = env.config().ttl(Duration::from_secs(1));
    let b = env
        .manager(cfg.retry_interval(Duration::from_millis(100)))
        .await;
    crashed_holder_writes(&env, "k", None).await;
    assert_eq!(
        b.try_acquire("k").await.unwrap_err().kind(),
        nlock::AcquireErrorKind::Busy
    );
    let got = b.acquire("k", Some(PATIENCE)).await.unwrap();
    assert_eq!(got.state().await.unwrap().holder.owner, b.owner());
}

#[actix::test]
async fn per_lock_ttl_is_sent_on_every_write() {
    let env = Env::start().await;
    if !env.modern() {
        return;
    }
    // Bucket TTL 10 s, this lock 2 s: only a `Nats-TTL` header on every write makes the
    // server expire it after 2 s; the header is what is checked, write after write.
    let cfg = env.config().ttl(Duration::from_secs(10));
    let a = env.manager(cfg).await;
    let lock = a
        .lock("k")
        .ttl(Duration::from_secs(2))
        .timeout(PATIENCE)
        .acquire()
        .await
        .unwrap();
    assert_eq!(lock.state().await.unwrap().ttl, Duration::from_secs(2));
    let js = async_nats::jetstream::new(env.raw().await);
    let stream = js.get_stream(format!("KV_{}", env.bucket)).await.unwrap();
    let subject = format!("$KV.{}.k", env.bucket);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let msg = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .unwrap();
        if seen.last() != Some(&msg.sequence) {
            let ttl = msg.headers.get("Nats-TTL").map(|v| v.as_str().to_owned());
            assert_eq!(
                ttl.as_deref(),
                Some("2s"),
                "write {} carries the lock's TTL",
                msg.sequence
            );
            seen.push(msg.sequence);
        }
        // Refreshes come every 2/3 s; look again a little later.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen[0], lock.token());
    assert!(lock.is_held());
}

#[actix::test]
async fn a_free_key_released_by_another_process_is_taken_at_once() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    // b knows nothing of a's delete marker and never polls within the test.
    let b = env.manager(env.config().retry_interval(NEVER_POLL)).await;
    for _ in 0..3 {
        let held = a.acquire("k", Some(PATIENCE)).await.unwrap();
        let held_token = held.token();
        held.release().await.unwrap();
        let got = b
            .acquire("k", Some(PATIENCE))
            .await
            .expect("taken over the marker");
        assert!(got.token() > held_token);
        got.release().await.unwrap();
    }
}

#[actix::test]
async fn a_cancelled_acquire_leaves_nothing_behind() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let c = env.manager(env.config()).await;
    let held = a.acquire("k", Some(PATIENCE)).await.unwrap();

    // One caller times out, another is dropped mid-wait.
    let err = b
        .acquire("k", Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::AcquireTimedOut);
    let dropped = tokio::time::timeout(Duration::from_millis(200), b.acquire("k", None)).await;
    assert!(dropped.is_err(), "still waiting when dropped");

    crate::harness::must_eventually(PATIENCE, "b stops waiting", || {
        let b = b.clone();
        async move { b.locks().await.unwrap().waiting.is_empty() }
    })
    .await;
    held.release().await.unwrap();
    // Nobody in b took the key: c gets it at once, and b holds nothing.
    c.try_acquire("k").await.expect("the key is free");
    let report = b.locks().await.unwrap();
    assert!(report.held.is_empty() && report.waiting.is_empty());
}

#[actix::test]
async fn a_cancelled_acquire_after_the_grant_releases_it() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    // Each request is dropped a moment after being sent, before, during or after its grant:
    // whichever it was, nothing may stay held.
    for micros in [0, 200, 1_000, 3_000, 10_000] {
        let acquire = a.acquire("k", None);
        // A grant that came in time is dropped with the result: its handle releases it.
        let _ = tokio::time::timeout(Duration::from_micros(micros), acquire).await;
        crate::harness::must_eventually(PATIENCE, "a holds and waits for nothing", || {
            let a = a.clone();
            async move {
                let r = a.locks().await.unwrap();
                r.held.is_empty() && r.waiting.is_empty()
            }
        })
        .await;
        let lock = a.try_acquire("k").await.expect("the key is free");
        lock.release().await.unwrap();
    }
}
