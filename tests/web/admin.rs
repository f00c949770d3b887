//! The admin scope: the page, the JSON of the bucket and this process, and the event stream.

use futures::StreamExt;
use serde_json::Value;

use crate::app::{client, get, spawn_get, start};
use crate::fixture::{waiting_on, Env, PATIENCE};
use crate::harness::must_eventually;

#[actix_web::test]
async fn the_json_shows_a_held_lock_with_its_token_and_the_waiters() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager.clone()).await;

    let first = spawn_get(ts.url("/wait/a"));
    must_eventually(PATIENCE, "a request holds wait.a", || async {
        ts.probe.entered().len() == 1
    })
    .await;
    let token = ts.probe.log()[0].2;
    let second = spawn_get(ts.url("/wait/a"));
    must_eventually(PATIENCE, "a second request waits", || async {
        waiting_on(&manager, "wait.a").await == 1
    })
    .await;

    let (status, _, body) = get(&ts.url("/admin/locks")).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["owner"], manager.owner());
    let bucket = body["bucket"].as_array().unwrap();
    assert_eq!(bucket.len(), 1, "{body}");
    assert_eq!(bucket[0]["key"], "wait.a");
    assert_eq!(bucket[0]["token"], token);
    assert_eq!(bucket[0]["holder"]["owner"], manager.owner());
    let held = body["process"]["held"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{body}");
    assert_eq!(held[0]["key"], "wait.a");
    assert_eq!(held[0]["token"], token);
    assert!(held[0]["time_left_ms"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        body["process"]["waiting"],
        serde_json::json!([["wait.a", 1]])
    );

    ts.probe.gate.add_permits(2);
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(second.await.unwrap().0, 200);
}

#[actix_web::test]
async fn the_page_is_served_with_and_without_a_trailing_slash() {
    let env = Env::start().await;
    let ts = start(env.manager(env.config()).await).await;
    for path in ["/admin", "/admin/"] {
        let (status, headers, body) = get(&ts.url(path)).await;
        assert_eq!(status, 200);
        assert!(headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(body.contains("<title>nlock</title>"));
        // The leaders section, shown once the app observes an election.
        assert!(body.contains(r#"<table id="leaders">"#), "{body}");
        // No assets from elsewhere.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{body}"
        );
    }
}

/// Reads server-sent events from `stream` until one named `kind` for `key` arrives; returns
/// its data.
async fn next_event<S>(stream: &mut S, buffer: &mut String, kind: &str, key: &str) -> Value
where
    S: futures::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let wanted = format!("event: {kind}\n");
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let data: Value = serde_json::from_str(data).unwrap();
                if event.contains(&wanted) && data["key"] == key {
                    return data;
                }
            }
        }
        let chunk = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event for {key} within {PATIENCE:?}"))
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[actix_web::test]
async fn the_event_stream_tells_acquire_and_release() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager.clone()).await;

    let mut events = client().get(ts.url("/admin/events")).send().await.unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert_eq!(
        events.headers().get("content-type").unwrap(),
        "text/event-stream"
    );

    let lock = manager.acquire("ev.one", None).await.unwrap();
    let mut buffer = String::new();
    let acquired = next_event(&mut events, &mut buffer, "acquired", "ev.one").await;
    let token = lock.token();
    assert_eq!(acquired["token"], token);
    lock.release().await.unwrap();
    let released = next_event(&mut events, &mut buffer, "released", "ev.one").await;
    assert_eq!(released["token"], token);
}
