//! Every status in the error table, through a real server.

use std::time::Duration;

use nlock::LockOptions;
use serde_json::Value;

use crate::app::{get, spawn_get, start};
use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[actix_web::test]
async fn busy_timed_out_invalid_key_and_lost_answer_their_statuses() {
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let other = env.manager(env.config()).await;
    let ts = start(manager).await;

    // Busy: 409, the holder's public description and nothing else about it.
    let options = LockOptions::default().description("nightly close");
    let held = other
        .lock("wait.b")
        .options(options)
        .try_acquire()
        .await
        .unwrap();
    let (status, _, body) = get(&ts.url("/fast/b")).await;
    assert_eq!(status, 409, "{body}");
    let body = json(&body);
    assert_eq!(body["error"], "busy");
    assert_eq!(body["key"], "wait.b");
    assert_eq!(
        body["holder"],
        serde_json::json!({"description": "nightly close"})
    );
    assert!(!body.to_string().contains(other.owner()), "{body}");

    // Acquire timed out: 503 with Retry-After.
    let (status, headers, body) = get(&ts.url("/short/b")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert_eq!(json(&body)["error"], "acquire_timed_out");
    held.release().await.unwrap();

    // Invalid key: 400, for a key nlock refuses and for a request that names none.
    let response = crate::app::client()
        .get(ts.url("/header"))
        .insert_header(("x-lock-key", "a b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let (status, _, body) = get(&ts.url("/header")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"], "invalid_key");

    // Lost while working: 409 with the reason.
    let request = spawn_get(ts.url("/lost/l"));
    must_eventually(PATIENCE, "the handler holds wait.l", || async {
        ts.probe.entered().contains(&"wait.l".to_owned())
    })
    .await;
    env.kv().await.delete("wait.l").await.unwrap();
    let (status, _, body) = request.await.unwrap();
    assert_eq!(status, 409, "{body}");
    let body = json(&body);
    assert_eq!(body["error"], "lost");
    assert_eq!(body["reason"], "deleted");
}

#[actix_web::test]
async fn nats_down_is_503() {
    let env = Env::start().await;
    let config = env.config().request_timeout(Duration::from_millis(300));
    let manager = env.manager(config).await;
    let ts = start(manager).await;
    env.server.kill();
    let (status, _, body) = get(&ts.url("/fast/u")).await;
    assert_eq!(status, 503, "{body}");
    let kind = json(&body)["error"].as_str().unwrap().to_owned();
    assert!(
        ["unavailable", "outcome_unknown"].contains(&kind.as_str()),
        "{body}"
    );
}
