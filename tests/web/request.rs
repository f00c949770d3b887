//! The lock per request: serialised or busy on one key, parallel on different keys, released
//! after the response and when the client disconnects.

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::app::{get, spawn_get, start, token_of};
use crate::fixture::{waiting_on, Env, PATIENCE};
use crate::harness::must_eventually;

#[actix_web::test]
async fn two_requests_for_one_key_are_serialised() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager.clone()).await;

    let first = spawn_get(ts.url("/wait/s"));
    must_eventually(PATIENCE, "the first request holds wait.s", || async {
        ts.probe.entered().len() == 1
    })
    .await;
    let second = spawn_get(ts.url("/wait/s"));
    must_eventually(PATIENCE, "the second request waits for wait.s", || async {
        waiting_on(&manager, "wait.s").await == 1
    })
    .await;
    // The second handler has not run: it waits for the lock, not at the gate.
    assert_eq!(ts.probe.entered().len(), 1);
    ts.probe.gate.add_permits(2);
    let (s1, _, t1) = first.await.unwrap();
    let (s2, _, t2) = second.await.unwrap();
    assert_eq!((s1, s2), (200, 200));
    let (t1, t2): (u64, u64) = (t1.parse().unwrap(), t2.parse().unwrap());
    assert!(
        t2 > t1,
        "a later tenure has a greater token: {t1} then {t2}"
    );
    let key = "wait.s".to_owned();
    assert_eq!(
        ts.probe.log(),
        vec![
            ("enter", key.clone(), t1),
            ("exit", key.clone(), t1),
            ("enter", key.clone(), t2),
            ("exit", key, t2),
        ]
    );
}

#[actix_web::test]
async fn fail_fast_answers_busy_while_the_key_is_held() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager).await;

    let first = spawn_get(ts.url("/fast/f"));
    must_eventually(PATIENCE, "the first request holds wait.f", || async {
        ts.probe.entered().len() == 1
    })
    .await;
    let (status, _, body) = get(&ts.url("/fast/f")).await;
    assert_eq!(status, 409, "{body}");
    ts.probe.gate.add_permits(1);
    assert_eq!(first.await.unwrap().0, 200);
}

#[actix_web::test]
async fn different_keys_run_in_parallel() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager).await;

    let a = spawn_get(ts.url("/wait/p1"));
    let b = spawn_get(ts.url("/wait/p2"));
    // Both handlers hold their locks at once: neither can leave the gate before this.
    must_eventually(PATIENCE, "both requests hold their locks", || async {
        ts.probe.entered().len() == 2
    })
    .await;
    ts.probe.gate.add_permits(2);
    assert_eq!(a.await.unwrap().0, 200);
    assert_eq!(b.await.unwrap().0, 200);
}

#[actix_web::test]
async fn the_lock_is_released_once_the_response_is_sent() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let other = env.manager(env.config()).await;
    let ts = start(manager).await;

    let response = crate::app::client()
        .get(ts.url("/header"))
        .insert_header(("x-lock-key", "h.one"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let token: u64 = std::str::from_utf8(&response).unwrap().parse().unwrap();
    assert!(token > 0);
    must_eventually(PATIENCE, "h.one is released", || async {
        token_of(&other, "h.one").await.is_none()
    })
    .await;
}

#[actix_web::test]
async fn the_lock_is_held_until_the_last_byte_of_a_streamed_body() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let other = env.manager(env.config()).await;
    let ts = start(manager).await;

    let mut response = crate::app::client()
        .get(ts.url("/stream/b"))
        .send()
        .await
        .unwrap();
    let first = response.next().await.unwrap().unwrap();
    let token: u64 = std::str::from_utf8(&first).unwrap().trim().parse().unwrap();
    // The handler has returned; the body is still being sent: the lock is held.
    assert_eq!(token_of(&other, "wait.b").await, Some(token));
    ts.probe.gate.add_permits(1);
    let rest = response.body().await.unwrap();
    assert_eq!(&rest[..], b"done\n");
    must_eventually(PATIENCE, "wait.b is released after the body", || async {
        token_of(&other, "wait.b").await.is_none()
    })
    .await;
}

#[actix_web::test]
async fn a_client_that_disconnects_releases_its_lock() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let other = env.manager(env.config()).await;
    let ts = start(manager).await;

    // A raw connection, so that the test decides exactly when the client goes away.
    let mut socket = tokio::net::TcpStream::connect(ts.addr).await.unwrap();
    socket
        .write_all(b"GET /forever/d HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    must_eventually(PATIENCE, "the request holds wait.d", || async {
        token_of(&other, "wait.d").await.is_some()
    })
    .await;
    assert_eq!(ts.probe.entered(), vec!["wait.d".to_owned()]);
    drop(socket);
    must_eventually(
        PATIENCE,
        "wait.d is released after the disconnect",
        || async { token_of(&other, "wait.d").await.is_none() },
    )
    .await;
}

#[actix_web::test]
async fn a_closure_can_name_the_key() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager.clone()).await;

    let held = manager.acquire("func.x", None).await.unwrap();
    let (status, _, body) = get(&ts.url("/func?k=x")).await;
    assert_eq!(status, 409, "the closure's key func.x is held: {body}");
    held.release().await.unwrap();
    let (status, _, body) = get(&ts.url("/func?k=x")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(&ts.url("/func")).await;
    assert_eq!(status, 400, "no key: {body}");
}

#[actix_web::test]
async fn a_client_that_disconnects_while_waiting_withdraws() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager.clone()).await;

    let held = manager.acquire("wait.w", None).await.unwrap();
    let mut socket = tokio::net::TcpStream::connect(ts.addr).await.unwrap();
    socket
        .write_all(b"GET /wait/w HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    must_eventually(PATIENCE, "the request waits for wait.w", || async {
        waiting_on(&manager, "wait.w").await == 1
    })
    .await;
    drop(socket);
    must_eventually(PATIENCE, "the request is withdrawn", || async {
        waiting_on(&manager, "wait.w").await == 0
    })
    .await;
    held.release().await.unwrap();
    // Nothing took the key for the request that left: this process holds nothing.
    assert!(manager.locks().await.unwrap().held.is_empty());
    assert!(ts.probe.entered().is_empty());
}
