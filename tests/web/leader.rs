//! Leadership in the web layer: readiness that follows one elector, and the leaders the admin
//! scope shows.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use nlock::web::WebLocks;
use nlock::{Elector, ElectorOptions, ElectorStatus, ErrorKind, LockManager};
use serde_json::{json, Value};

use crate::app::get;
use crate::fixture::{Env, PATIENCE};

pub const KEY: &str = "jobs.leader";

/// A role that does nothing: the tests look at who leads, not at what the role does.
struct Idle;

impl actix::Actor for Idle {
    type Context = actix::Context<Self>;
}

pub fn elect(m: &LockManager, who: &str) -> Elector {
    let options = ElectorOptions::new(who)
        .metadata(json!({"who": who}))
        .backoff(Duration::from_millis(50), Duration::from_millis(500));
    m.elector(KEY, options).actor(|_term| Idle).unwrap()
}

/// Waits until `e` leads, and returns its token.
pub async fn leads(e: &Elector) -> u64 {
    let status = tokio::time::timeout(
        PATIENCE,
        e.wait_for(|s| matches!(s, ElectorStatus::Leading { .. })),
    )
    .await
    .unwrap_or_else(|_| panic!("{KEY} is led within {PATIENCE:?}"));
    match status {
        ElectorStatus::Leading { token } => token,
        other => panic!("not leading: {other:?}"),
    }
}

/// A server with the admin scope at `/admin`, observing `KEY` and `other.leader`, and
/// readiness at `/ready` bound to `elector`.
pub fn serve(locks: WebLocks, elector: &Elector) -> (SocketAddr, ServerHandle) {
    let locks = locks.observe_leaders([KEY, "other.leader"]).unwrap();
    let elector = elector.clone();
    let server = HttpServer::new(move || {
        App::new()
            .service(locks.admin("/admin"))
            .service(locks.readiness("/ready", &elector))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (addr, handle)
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, headers, body) = get(&format!("http://{addr}{path}")).await;
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    (status, serde_json::from_str(&body).unwrap())
}

#[actix_web::test]
async fn readiness_flips_with_leadership() {
    let env = Env::start().await;
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let a = elect(&ma, "a");
    let a_token = leads(&a).await;
    let b = elect(&mb, "b");
    let (addr, handle) = serve(WebLocks::new(ma.clone()), &a);

    let (status, body) = get_json(addr, "/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"ready": true, "key": KEY, "status": "leading", "token": a_token})
    );
    let head = crate::app::client()
        .head(format!("http://{addr}/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);

    // A hands over; once B leads, A's readiness says no.
    a.resign(Duration::from_secs(60)).await;
    let b_token = leads(&b).await;
    assert!(b_token > a_token);
    let (status, body) = get_json(addr, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["key"], KEY);
    assert_eq!(body["status"], "holding_off");
    assert!(body.get("token").is_none(), "{body}");

    handle.stop(false).await;
    b.shutdown().await;
    a.shutdown().await;
}

#[actix_web::test]
async fn the_leaders_json_names_the_leader_after_an_election_and_a_handover() {
    let env = Env::start().await;
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    // The app's manager is neither candidate's: leaders are shown whoever leads.
    let observer = env.manager(env.config()).await;
    let a = elect(&ma, "a");
    let (addr, handle) = serve(WebLocks::new(observer), &a);
    let a_token = leads(&a).await;
    let b = elect(&mb, "b");

    let (status, body) = get_json(addr, "/admin/leaders").await;
    assert_eq!(status, 200, "{body}");
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 2, "{body}");
    assert_eq!(list[0]["key"], KEY);
    assert_eq!(list[0]["leader"]["identity"], "a");
    assert_eq!(list[0]["leader"]["metadata"], json!({"who": "a"}));
    assert_eq!(list[0]["leader"]["token"], a_token);
    assert_eq!(list[0]["leader"]["holder"]["owner"], ma.owner());
    assert!(
        list[0]["leader"]["since_ms"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert_eq!(list[1], json!({"key": "other.leader", "leader": null}));

    a.resign(Duration::from_secs(60)).await;
    let b_token = leads(&b).await;
    let (status, body) = get_json(addr, "/admin/leaders").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["leader"]["identity"], "b", "{body}");
    assert_eq!(body[0]["leader"]["token"], b_token);
    assert_eq!(body[0]["leader"]["holder"]["owner"], mb.owner());

    b.shutdown().await;
    let (_, body) = get_json(addr, "/admin/leaders").await;
    assert_eq!(body[0], json!({"key": KEY, "leader": null}), "{body}");

    handle.stop(false).await;
    a.shutdown().await;
}

#[actix_web::test]
async fn observing_an_invalid_election_key_is_refused() {
    let env = Env::start().await;
    let locks = WebLocks::new(env.manager(env.config()).await);
    let err = locks.observe_leaders([KEY, ".bad"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
}

/// A role that, once told to stop, keeps running until `release` turns true.
struct Stuck(tokio::sync::watch::Receiver<bool>);

impl actix::Actor for Stuck {
    type Context = actix::Context<Self>;
    fn stopping(&mut self, ctx: &mut Self::Context) -> actix::Running {
        use actix::{ActorContext, ActorFutureExt, AsyncContext, WrapFuture};
        // Released, or the test is gone (a failed test must not leave a role spinning).
        if *self.0.borrow() || self.0.has_changed().is_err() {
            return actix::Running::Stop;
        }
        let mut release = self.0.clone();
        let released = async move {
            let _ = release.wait_for(|r| *r).await;
        };
        ctx.spawn(released.into_actor(self).map(|_, _, ctx| ctx.stop()));
        actix::Running::Continue
    }
}

#[actix_web::test]
async fn readiness_says_no_once_the_term_is_lost_while_the_role_still_stops() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let (release, stuck) = tokio::sync::watch::channel(false);
    let a = m
        .elector(KEY, ElectorOptions::new("a"))
        .actor(move |_term| Stuck(stuck.clone()))
        .unwrap();
    let token = leads(&a).await;
    let (addr, handle) = serve(WebLocks::new(m.clone()), &a);
    assert_eq!(get_json(addr, "/ready").await.0, 200);

    env.kv().await.delete(KEY).await.unwrap();
    crate::harness::must_eventually(PATIENCE, "readiness turns 503", || async {
        get_json(addr, "/ready").await.0 != 200
    })
    .await;
    let (status, body) = get_json(addr, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"ready": false, "key": KEY, "status": "ending", "token": token})
    );

    release.send_replace(true);
    handle.stop(false).await;
    a.shutdown().await;
}

#[actix_web::test]
async fn the_bucket_json_names_a_terms_candidate_not_its_raw_record() {
    let env = Env::start().await;
    let (ma, observer) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let options = ElectorOptions::new("cand-a").metadata(json!({"pid": 13921}));
    let a = ma.elector(KEY, options).actor(|_term| Idle).unwrap();
    let plain = observer
        .lock("plain.lock")
        .options(nlock::LockOptions::default().description("closing day"))
        .acquire()
        .await
        .unwrap();
    let (addr, handle) = serve(WebLocks::new(observer.clone()), &a);
    let token = leads(&a).await;

    let (status, body) = get_json(addr, "/admin/locks").await;
    assert_eq!(status, 200, "{body}");
    let bucket = body["bucket"].as_array().unwrap();
    let term = bucket.iter().find(|k| k["key"] == KEY).expect("the term");
    assert_eq!(term["token"], token);
    assert_eq!(
        term["candidate"],
        json!({"identity": "cand-a", "metadata": {"pid": 13921}})
    );
    assert_eq!(term["holder"]["owner"], ma.owner());
    // Any other lock keeps its description and has no candidate.
    let other = bucket.iter().find(|k| k["key"] == "plain.lock").unwrap();
    assert!(other.get("candidate").is_none(), "{body}");
    assert_eq!(other["holder"]["description"], "closing day");

    plain.release().await.unwrap();
    handle.stop(false).await;
    a.shutdown().await;
}
