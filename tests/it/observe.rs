//! Looking at the whole bucket from another process: holders and the event stream.

use std::time::Duration;

use nlock::LockEventKind;

use crate::fixture::{next_event, Env, PATIENCE};

#[actix::test]
async fn holders_shows_every_process_locks_with_tokens() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let observer = env.manager(env.config()).await;
    assert!(observer.holders().await.unwrap().is_empty());
    let la = a.acquire("jobs.a", Some(PATIENCE)).await.unwrap();
    let lb = b.acquire("jobs.b", Some(PATIENCE)).await.unwrap();
    // A refresh moves the revision, not the token.
    lb.refresh().await.unwrap();
    // A foreign (Go nlock style) value is shown raw.
    env.kv()
        .await
        .create("go.lock", "3f2a9c".into())
        .await
        .unwrap();

    let held = observer.holders().await.unwrap();
    let keys: Vec<&str> = held.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(keys, ["go.lock", "jobs.a", "jobs.b"]);
    assert!(held[0].holder.foreign);
    assert_eq!(held[0].holder.owner, "3f2a9c");
    assert_eq!(held[1].token, la.token());
    assert_eq!(held[1].holder.owner, a.owner());
    assert_eq!(held[2].token, lb.token());
    assert!(held[2].revision > lb.token());

    let one = observer.holder("jobs.b").await.unwrap().unwrap();
    assert_eq!(one.token, lb.token());
    la.release().await.unwrap();
    assert_eq!(observer.holder("jobs.a").await.unwrap(), None);
    assert_eq!(
        observer.holder("bad..key").await.unwrap_err().kind(),
        nlock::ObserveErrorKind::InvalidKey
    );
}

#[actix::test]
async fn events_tell_acquire_refresh_release_and_foreign_delete_in_order() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let observer = env.manager(env.config()).await;
    let before = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let mut events = observer.events(">").await.unwrap();
    // First the current state.
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.kind, e.token),
        (LockEventKind::Acquired, Some(before.token()))
    );
    before.refresh().await.unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.kind, e.token),
        (LockEventKind::Refreshed, Some(before.token()))
    );
    let before_token = before.token();
    before.release().await.unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(e.kind, LockEventKind::Released);
    assert_eq!(e.token, Some(before_token));
    assert_eq!(e.holder.unwrap().owner, a.owner());

    let again = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.kind, e.token),
        (LockEventKind::Acquired, Some(again.token()))
    );
    env.kv().await.delete("k").await.unwrap();
    let e = crate::fixture::next_event_except(&mut events, LockEventKind::Refreshed).await;
    assert_eq!(e.kind, LockEventKind::Deleted);
    assert!(e.holder.is_none());
    assert!(e.stored_at_ms.is_some());
}

#[actix::test]
async fn events_tell_a_lapsed_tenure_as_an_expiry() {
    let env = Env::start().await;
    let cfg = env.config().ttl(Duration::from_secs(1)).keep_alive(false);
    let a = env.manager(cfg.clone()).await;
    let observer = env.manager(cfg).await;
    let mut events = observer.events("only.this").await.unwrap();
    let lock = a.acquire("only.this", Some(PATIENCE)).await.unwrap();
    a.acquire("other", Some(PATIENCE)).await.unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.kind, e.token),
        (LockEventKind::Acquired, Some(lock.token()))
    );
    // Nobody refreshes: the holder gives the lock up at its deadline and clears its value
    // (or, with limit markers, the server may expire it first). Either way: expired.
    let e = next_event(&mut events).await;
    assert_eq!(e.key, "only.this");
    assert_eq!(e.kind, LockEventKind::Expired);
    assert_eq!(lock.lost().await.reason, nlock::LossReason::Expired);
}

#[actix::test]
async fn events_tell_a_server_expiry_where_the_server_has_limit_markers() {
    let env = Env::start().await;
    if !env.modern() {
        eprintln!("skipped: no limit markers before nats-server 2.11");
        return;
    }
    let observer = env.manager(env.config().ttl(Duration::from_secs(1))).await;
    let mut events = observer.events("abandoned").await.unwrap();
    // A value nobody refreshes or clears (a crashed Go nlock client's, say).
    env.kv()
        .await
        .create("abandoned", "go-1".into())
        .await
        .unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(e.kind, LockEventKind::Acquired);
    assert!(e.holder.unwrap().foreign);
    let e = next_event(&mut events).await;
    assert_eq!(e.kind, LockEventKind::Expired);
}

#[actix::test]
async fn events_reject_a_bad_filter_before_anything_is_sent() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    for bad in ["a.>.b", "a..b", "a b"] {
        assert_eq!(
            m.events(bad).await.unwrap_err().kind(),
            nlock::ObserveErrorKind::InvalidKey,
            "{bad}"
        );
    }
}

#[actix::test]
async fn states_and_errors_serialize_for_admin_pages() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let lock = m
        .lock("k")
        .options(nlock::LockOptions::default().description("nightly"))
        .timeout(PATIENCE)
        .acquire()
        .await
        .unwrap();
    let report = serde_json::to_value(m.locks().await.unwrap()).unwrap();
    let held = &report["held"][0];
    assert_eq!(held["key"], "k");
    assert_eq!(held["token"], lock.token());
    assert_eq!(held["ttl_ms"], 3000);
    assert_eq!(held["status"]["status"], "held");
    assert_eq!(held["holder"]["owner"], m.owner());
    assert_eq!(held["holder"]["description"], "nightly");
    assert!(held["time_left_ms"].as_u64().unwrap() > 0);

    let other = env.manager(env.config()).await;
    let busy = other.try_acquire("k").await.unwrap_err();
    assert_eq!(busy.kind().as_str(), "busy");
    assert_eq!(
        serde_json::to_value(nlock::LockError::from(busy).kind()).unwrap(),
        "busy"
    );
    env.kv().await.delete("k").await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    let json = serde_json::to_value(&lost).unwrap();
    assert_eq!(json["reason"]["kind"], "deleted");
    assert_eq!(
        serde_json::to_value(lock.lease().end().unwrap()).unwrap()["end"],
        "lost"
    );
    assert_eq!(
        serde_json::to_value(nlock::ErrorKind::AcquireTimedOut).unwrap(),
        "acquire_timed_out"
    );
    assert_eq!(nlock::ErrorKind::Busy.to_string(), "busy");
    let caps = serde_json::to_value(m.capabilities()).unwrap();
    assert_eq!(caps["per_lock_ttl"], env.modern());
}

#[actix::test]
async fn events_miss_nothing_that_lands_after_the_call_however_late_the_first_poll() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let observer = env.manager(env.config()).await;
    let mut events = observer.events("k").await.unwrap();
    // Nothing polls the stream while the key is taken and deleted.
    let lock = a.acquire("k", Some(PATIENCE)).await.unwrap();
    env.kv().await.delete("k").await.unwrap();
    tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.kind, e.token),
        (LockEventKind::Acquired, Some(lock.token()))
    );
    assert_eq!(
        crate::fixture::next_event_except(&mut events, LockEventKind::Refreshed)
            .await
            .kind,
        LockEventKind::Deleted
    );
}

#[actix::test]
async fn a_marker_on_a_key_already_free_is_not_an_event() {
    let env = Env::start().await;
    if !env.modern() {
        eprintln!("skipped: no limit markers before nats-server 2.11");
        return;
    }
    let cfg = env.config().ttl(Duration::from_secs(1));
    let a = env.manager(cfg.clone()).await;
    let observer = env.manager(cfg).await;
    let mut events = observer.events("k").await.unwrap();
    let first = a.acquire("k", Some(PATIENCE)).await.unwrap();
    first.release().await.unwrap();
    assert_eq!(next_event(&mut events).await.kind, LockEventKind::Acquired);
    assert_eq!(
        crate::fixture::next_event_except(&mut events, LockEventKind::Refreshed)
            .await
            .kind,
        LockEventKind::Released
    );
    // The release's delete marker ages out; the server leaves its own marker in its place.
    let js = nlock::async_nats::jetstream::new(env.raw().await);
    let stream = js.get_stream(format!("KV_{}", env.bucket)).await.unwrap();
    let subject = format!("$KV.{}.k", env.bucket);
    crate::harness::must_eventually(PATIENCE, "the server's age-limit marker", || async {
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m.headers.get("Nats-Marker-Reason").is_some(),
            Err(_) => false,
        }
    })
    .await;
    // The next event is the next tenure, not an "expiry" of a key that was free.
    let second = a.acquire("k", Some(PATIENCE)).await.unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.kind, e.token),
        (LockEventKind::Acquired, Some(second.token()))
    );
}

#[actix::test]
async fn each_manager_follows_the_bucket_with_one_consumer_unless_told_not_to() {
    let env = Env::start().await;
    let consumers = || async {
        let js = nlock::async_nats::jetstream::new(env.raw().await);
        let mut stream = js.get_stream(format!("KV_{}", env.bucket)).await.unwrap();
        stream.info().await.unwrap().state.consumer_count
    };
    let following = env.manager(env.config()).await;
    let mut held = Vec::new();
    for key in ["a", "b", "c"] {
        held.push(following.acquire(key, Some(PATIENCE)).await.unwrap());
    }
    assert_eq!(consumers().await, 1, "one consumer for three held locks");
    let quiet = env.manager(env.config().follow_changes(false)).await;
    let lock = quiet.acquire("d", Some(PATIENCE)).await.unwrap();
    assert_eq!(
        consumers().await,
        1,
        "none for a manager that does not follow"
    );
    // Without it, a foreign delete is still found: at the next refresh (every second here).
    env.kv().await.delete("d").await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    assert_eq!(lost.reason, nlock::LossReason::Deleted);
}

#[actix::test]
async fn holders_answers_while_the_keys_are_being_written() {
    let env = Env::start().await;
    let writer = env.manager(env.config()).await;
    let observer = env.manager(env.config()).await;
    let cycles = {
        let writer = writer.clone();
        actix::spawn(async move {
            for _ in 0..200 {
                let lock = writer.acquire("busy", Some(PATIENCE)).await.unwrap();
                lock.release().await.unwrap();
            }
        })
    };
    // Every read answers (a snapshot taken while the key changes is taken again, not left
    // to time out), and shows the key held or free, never another key.
    let mut reads = 0;
    while !cycles.is_finished() {
        let held = observer.holders().await.expect("a snapshot under writes");
        assert!(held.iter().all(|h| h.key == "busy"));
        reads += 1;
    }
    cycles.await.unwrap();
    assert!(reads > 0);
}
