//! nlock's metrics (`nlock::telemetry`, feature `metrics`) scraped over HTTP in the
//! Prometheus text format, after lock traffic whose every count the test knows:
//! - the web example (`examples/web.rs`) as a child process: its `/metrics` after a request
//!   that timed out and one whose lock an operator broke;
//! - an app of the test's own serving `/metrics` from a recorder installed in this process,
//!   with managers on the test's bucket: grants, a busy try, handoffs (from another process's
//!   tenure, and from one of this process), a timeout, a loss, a refresh, consumers; and
//!   behind the fault proxy, refreshes without replies (failures, unknown outcomes, an
//!   expiry).
//!
//! Every metric carries the bucket's name as a label, so the counts of each test are its own
//! although the recorder is shared by the whole test process.

use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use nlock::{AcquireErrorKind, Config, LockManager, LossReason};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::fixture::{Env, PATIENCE};
use crate::harness::{must_eventually, ProxyMode, TcpProxy};

/// The sum of the samples of `name` whose labels include every pair of `labels`; `None`
/// when no series matches. Parses the Prometheus text format: `name{k="v",...} value`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let has = |(k, v): &(&str, &str)| {
            series_labels
                .split(',')
                .any(|pair| pair == format!("{k}=\"{v}\""))
        };
        if labels.iter().all(has) {
            *total.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    total
}

/// GET `url` (a `/metrics` endpoint): its body, after checking the status and content type.
async fn scrape(url: &str) -> String {
    let (status, headers, body) = crate::app::get(url).await;
    assert_eq!(status, 200, "{body}");
    let kind = headers.get("content-type").unwrap().to_str().unwrap();
    assert!(kind.starts_with("text/plain"), "{kind}");
    body
}

/// Reads metrics of one bucket from a `/metrics` endpoint.
struct Scraper {
    url: String,
    bucket: String,
}

impl Scraper {
    /// The value of `name` for this bucket and `labels` (0 when the series is absent: a
    /// counter never incremented, a histogram never observed).
    async fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut all = vec![("bucket", self.bucket.as_str())];
        all.extend_from_slice(labels);
        sample(&scrape(&self.url).await, name, &all).unwrap_or(0.0)
    }

    /// Waits until `name{labels}` is `value` (gauges that move when an actor stops, a
    /// moment after the caller is answered).
    async fn until(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let what = format!("{name}{labels:?} = {value}");
        must_eventually(PATIENCE, &what, || async {
            self.get(name, labels).await == value
        })
        .await;
    }
}

/// One request of each of the example's routes' outcomes, and the numbers its `/metrics`
/// shows for them. Also shows that `/metrics` is a route of the example, served over HTTP.
#[actix_web::test]
async fn the_web_example_serves_metrics_that_count_its_lock_traffic() {
    let env = Env::start().await;
    let bin = tokio::task::spawn_blocking(|| crate::example::example_bin().clone())
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(bin)
        .env("NATS_URL", env.server.url())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("NODE", "node-m")
        .env("NLOCK_NO_RESTART_GRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let lines = lines.clone();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
    }
    must_eventually(PATIENCE, "the example leads", || async {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("leading web.leader"))
    })
    .await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    // The example's bucket (its default config), from the test's own manager.
    let config = Config::builder().restart_grace(false).build().unwrap();
    let operator = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap();

    // Held by the test: the example's request waits its 2 s and gives up (503).
    let held = operator.lock("accounts.1").acquire().await.unwrap();
    let mut response = crate::app::client()
        .post(url("/accounts/1/close"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let _ = response.body().await;
    held.release().await.unwrap();

    // Granted, then broken by an operator while the request works: a loss, `deleted`.
    let request = {
        let url = url("/accounts/2/close");
        actix_web::rt::spawn(async move {
            let mut response = crate::app::client().post(url).send().await.unwrap();
            let _ = response.body().await;
            response.status().as_u16()
        })
    };
    must_eventually(PATIENCE, "the example holds accounts.2", || async {
        let holders = operator.holders().await.unwrap();
        holders.iter().any(|h| h.key == "accounts.2")
    })
    .await;
    operator.force_release("accounts.2", None).await.unwrap();
    assert_eq!(request.await.unwrap(), 409);

    let m = Scraper {
        url: url("/metrics"),
        bucket: "distributed_locks".into(),
    };
    // The elector's term and accounts.2; accounts.1 never.
    assert_eq!(m.get("nlock_grants_total", &[]).await, 2.0);
    let granted = [("mode", "wait"), ("outcome", "granted")];
    assert_eq!(
        m.get("nlock_acquire_duration_seconds_count", &granted)
            .await,
        2.0
    );
    let timed_out = [("mode", "wait"), ("outcome", "timeout")];
    assert_eq!(
        m.get("nlock_acquire_duration_seconds_count", &timed_out)
            .await,
        1.0
    );
    assert_eq!(m.get("nlock_acquire_timeouts_total", &[]).await, 1.0);
    let withdrawn = [("outcome", "withdrawn")];
    assert_eq!(
        m.get("nlock_wait_duration_seconds_count", &withdrawn).await,
        1.0
    );
    assert_eq!(m.get("nlock_handoffs_total", &[]).await, 0.0);
    assert_eq!(m.get("nlock_busy_total", &[]).await, 0.0);
    let deleted = [("reason", "deleted")];
    assert_eq!(m.get("nlock_losses_total", &deleted).await, 1.0);
    assert_eq!(m.get("nlock_losses_total", &[]).await, 1.0);
    let election = [("election", "web.leader")];
    assert_eq!(m.get("nlock_leader_terms_total", &election).await, 1.0);
    assert_eq!(
        m.get("nlock_leadership_changes_total", &election).await,
        1.0
    );
    // The lock actor of accounts.2 stops a moment after its loss is told.
    m.until("nlock_locks_held", &[], 1.0).await;
    assert_eq!(m.get("nlock_waiters", &[]).await, 0.0);
    // The manager's change stream, and the admin page's leader view (`observe_leaders`).
    assert_eq!(m.get("nlock_consumers_open", &[]).await, 2.0);
    // HELP lines: the example calls `nlock::telemetry::describe()`.
    let text = scrape(&m.url).await;
    assert!(text.contains("# HELP nlock_grants_total"), "{text}");
    operator.shutdown().await;
}

/// The recorder of this test process, installed once, with histogram buckets.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets(&[0.01, 0.1, 1.0, 10.0])
            .unwrap()
            .install_recorder()
            .expect("no other recorder in this test process");
        nlock::telemetry::describe();
        handle
    })
}

/// An app that serves this process's metrics at `/metrics` on a loopback port; its URL.
fn serve_metrics() -> String {
    let handle = recorder().clone();
    let server = HttpServer::new(move || {
        let handle = handle.clone();
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let body = handle.render();
                async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    format!("http://{addr}/metrics")
}

/// Whether another process's waiter (its entry in the key's line) waits for `key`: its
/// contender has found the key held, so its grant will follow this tenure's end.
async fn waits_in_line(env: &Env, key: &str) -> bool {
    use futures::StreamExt;
    let prefix = format!("_nlock.q.{key}.");
    let keys: Vec<String> = env
        .kv()
        .await
        .keys()
        .await
        .unwrap()
        .map(|k| k.unwrap())
        .collect()
        .await;
    keys.iter().any(|k| k.starts_with(&prefix))
}

#[actix_web::test]
async fn metrics_count_grants_busy_tries_handoffs_timeouts_losses_and_refreshes() {
    let env = Env::start().await;
    let m = Scraper {
        url: serve_metrics(),
        bucket: env.bucket.clone(),
    };
    let (a, b) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    // One change stream per manager.
    assert_eq!(m.get("nlock_consumers_open", &[]).await, 2.0);

    let first = a.lock("k").acquire().await.unwrap();
    let busy = b.lock("k").try_acquire().await.unwrap_err();
    assert_eq!(busy.kind(), AcquireErrorKind::Busy);

    // A waiter of another manager: granted when `first` is released (a handoff).
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.lock("k").timeout(PATIENCE).acquire().await })
    };
    must_eventually(PATIENCE, "b waits in k's line", || waits_in_line(&env, "k")).await;
    assert_eq!(m.get("nlock_waiters", &[]).await, 1.0);
    first.release().await.unwrap();
    let second = waiter.await.unwrap().unwrap();
    // The manager lets go of an answered request a moment after its caller has the answer.
    m.until("nlock_waiters", &[], 0.0).await;

    // A waiter queued behind b's own holder: granted when that is released (a handoff).
    let queued = {
        let b = b.clone();
        tokio::spawn(async move { b.lock("k").timeout(PATIENCE).acquire().await })
    };
    m.until("nlock_waiters", &[], 1.0).await;
    second.release().await.unwrap();
    let third = queued.await.unwrap().unwrap();
    m.until("nlock_waiters", &[], 0.0).await;

    // Held by b: a's short wait times out.
    let timeout = a
        .lock("k")
        .timeout(Duration::from_millis(300))
        .acquire()
        .await
        .unwrap_err();
    assert_eq!(timeout.kind(), AcquireErrorKind::AcquireTimedOut);

    // An explicit refresh, then an operator's break: the holder loses k, `deleted`.
    third.refresh().await.unwrap();
    a.force_release("k", None).await.unwrap();
    assert_eq!(third.lost().await.reason, LossReason::Deleted);

    assert_eq!(m.get("nlock_grants_total", &[]).await, 3.0);
    assert_eq!(m.get("nlock_busy_total", &[]).await, 1.0);
    let busy = [("mode", "try"), ("outcome", "busy")];
    assert_eq!(
        m.get("nlock_acquire_duration_seconds_count", &busy).await,
        1.0
    );
    let granted = [("mode", "wait"), ("outcome", "granted")];
    assert_eq!(
        m.get("nlock_acquire_duration_seconds_count", &granted)
            .await,
        3.0
    );
    assert_eq!(m.get("nlock_handoffs_total", &[]).await, 2.0);
    let waited = [("outcome", "granted")];
    assert_eq!(
        m.get("nlock_wait_duration_seconds_count", &waited).await,
        2.0
    );
    assert_eq!(m.get("nlock_acquire_timeouts_total", &[]).await, 1.0);
    let withdrawn = [("outcome", "withdrawn")];
    assert_eq!(
        m.get("nlock_wait_duration_seconds_count", &withdrawn).await,
        1.0
    );
    let deleted = [("reason", "deleted")];
    assert_eq!(m.get("nlock_losses_total", &deleted).await, 1.0);
    assert_eq!(m.get("nlock_losses_total", &[]).await, 1.0);
    // At least the explicit one; keep-alive may have refreshed too.
    assert!(m.get("nlock_refreshes_total", &[]).await >= 1.0);
    assert_eq!(m.get("nlock_unknown_outcomes_total", &[]).await, 0.0);
    m.until("nlock_locks_held", &[], 0.0).await;

    // A manager's shutdown deletes its change stream's consumer.
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(m.get("nlock_consumers_open", &[]).await, 0.0);
}

/// Refreshes whose replies never come: each attempt is a refresh failure and an unknown
/// outcome, and the lease runs out (`expired`); a try whose reply never comes is an error.
#[actix_web::test]
async fn metrics_count_unanswered_refreshes_unknown_outcomes_and_an_expiry() {
    let env = Env::start().await;
    let m = Scraper {
        url: serve_metrics(),
        bucket: env.bucket.clone(),
    };
    let proxy = TcpProxy::start(env.server.addr()).await;
    let a = LockManager::connect(&proxy.url(), env.config().build().unwrap())
        .await
        .unwrap();
    let held = a.lock("k").acquire().await.unwrap();
    assert_eq!(m.get("nlock_refresh_failures_total", &[]).await, 0.0);
    assert_eq!(m.get("nlock_unknown_outcomes_total", &[]).await, 0.0);

    // The refreshes reach the server; their acknowledgements never come back.
    proxy.set_mode(ProxyMode::DropReplies);
    let lost = tokio::time::timeout(PATIENCE, held.lost()).await.unwrap();
    assert_eq!(lost.reason, LossReason::Expired);
    let err = a.lock("k2").try_acquire().await.unwrap_err();
    assert_eq!(err.kind(), AcquireErrorKind::OutcomeUnknown, "{err}");

    let expired = [("reason", "expired")];
    assert_eq!(m.get("nlock_losses_total", &expired).await, 1.0);
    assert_eq!(m.get("nlock_losses_total", &[]).await, 1.0);
    // How many attempts fit before the deadline depends on the backoff: at least one.
    assert!(m.get("nlock_refresh_failures_total", &[]).await >= 1.0);
    let writes = [("op", "write")];
    assert!(m.get("nlock_unknown_outcomes_total", &writes).await >= 2.0);
    let error = [("mode", "try"), ("outcome", "error")];
    assert_eq!(
        m.get("nlock_acquire_duration_seconds_count", &error).await,
        1.0
    );
    m.until("nlock_locks_held", &[], 0.0).await;
}
