//! Stopping the server: in-flight requests finish, open event streams do not hold the stop
//! up, every lock is released, and holders still running are told.

use nlock::{LeaseEnd, LossReason};
use tokio::io::AsyncWriteExt;

use crate::app::{client, spawn_get, start, token_of};
use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;

#[actix_web::test]
async fn stopping_the_server_leaves_no_key_behind() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let other = env.manager(env.config()).await;
    let mut ts = start(manager.clone()).await;

    // A request that finishes during the graceful stop.
    let finishing = spawn_get(ts.url("/wait/g"));
    // A request that never finishes: dropped at the shutdown timeout.
    let mut socket = tokio::net::TcpStream::connect(ts.addr).await.unwrap();
    socket
        .write_all(b"GET /forever/z HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // A lock the app holds outside any request.
    let direct = manager.acquire("app.direct", None).await.unwrap();
    // An open admin page's event stream.
    let events = client().get(ts.url("/admin/events")).send().await.unwrap();
    must_eventually(PATIENCE, "both requests hold their locks", || async {
        ts.probe.entered().len() == 2
    })
    .await;
    for key in ["wait.g", "wait.z", "app.direct"] {
        assert!(token_of(&other, key).await.is_some(), "{key} held");
    }

    let stop = {
        let (locks, handle) = (ts.locks.clone(), ts.handle.clone());
        actix_web::rt::spawn(async move { locks.stop(&handle, true).await })
    };
    ts.probe.gate.add_permits(1);
    assert_eq!(finishing.await.unwrap().0, 200);
    ts.run.take().unwrap().await.unwrap().unwrap();
    stop.await.unwrap();

    let left = other.holders().await.unwrap();
    assert!(left.is_empty(), "keys left behind: {left:?}");
    assert_eq!(
        direct.lease().end(),
        Some(LeaseEnd::Lost {
            reason: LossReason::Shutdown
        })
    );
    drop((socket, events));
}
