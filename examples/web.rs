//! nlock in an actix-web app: a lock per request, the admin page (with the leader of an
//! election), a readiness probe that is 200 only on the leader, and a graceful shutdown that
//! leaves no lock behind.
//!
//! ```text
//! nats-server -js &
//! cargo run --example web --features actix-web
//! curl -X POST localhost:8080/accounts/42/close     # holds accounts.42 for 5 s
//! curl -X POST localhost:8080/accounts/42/close     # meanwhile: waits up to 2 s, then 503
//! open http://localhost:8080/admin/locks/            # the admin page
//! curl -i localhost:8080/ready                       # 200 while this process leads, else 503
//! curl localhost:8080/metrics                        # nlock's metrics, Prometheus text format
//! ```
//!
//! Start a second one (`BIND=127.0.0.1:8081 NODE=node-b`): one of the two leads
//! `web.leader` and is ready; stop it and the other takes over. `NODE` (default: the host
//! name and pid) names the candidate on the admin page.
//!
//! `NATS_URL` (default `nats://127.0.0.1:4222`) and the other `nats` CLI variables choose the
//! server; `NLOCK_NO_RESTART_GRACE=1`, as for the CLI, skips the restart grace (on a new
//! bucket, locks wait out one TTL first); `BIND` (default `127.0.0.1:8080`) the address. Ctrl-C (SIGINT) and `kill -TERM`
//! both stop it gracefully: in-flight requests finish (up to 10 s), the leader's role stops,
//! every lock is released, and it says which.
//!
//! Its own dependencies (dev-dependencies of nlock): `metrics-exporter-prometheus` (without
//! default features: no HTTP listener of its own, `/metrics` is a route of this app),
//! `serde_json`, `tokio`; and nlock with the features `actix-web` and `metrics`.

use std::time::Duration;

use actix::AsyncContext;
use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use nlock::web::{HeldLock, KeyFrom, WebLocks};
use nlock::{ElectorOptions, LockOptions, Term};

/// Closes an account under its lock. The fencing token goes with every write, so that the
/// store can refuse a write from a request whose lock was lost meanwhile.
async fn close_account(lock: HeldLock) -> Result<HttpResponse, nlock::LockError> {
    tokio::select! {
        // Stands for the work: five seconds, so that the admin page has something to show.
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            Ok(HttpResponse::Ok().body(format!("closed {} with token {}\n", lock.key(), lock.token())))
        }
        // Stop working as soon as the lock is gone, and say why (409 or 503 with the reason).
        lost = lock.lease().lost() => Err(nlock::LockError::Lost { key: lost.key, reason: lost.reason }),
    }
}

/// What only the leader does: here, say so once a minute.
struct Leading(Term);

impl actix::Actor for Leading {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        println!("leading {} with token {}", self.0.key(), self.0.token());
        ctx.run_interval(Duration::from_secs(60), |this, _| {
            if this.0.is_held() {
                println!("still leading, token {}", this.0.token());
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        println!(
            "stopped leading {} (token {})",
            self.0.key(),
            self.0.token()
        );
    }
}

/// Installs the Prometheus recorder, before the manager starts: nlock's metrics go to it.
/// Histograms get buckets (else the exporter renders summaries, which cannot be aggregated).
fn install_prometheus() -> std::io::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ])
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(std::io::Error::other)?;
    nlock::telemetry::describe();
    // The exporter's upkeep (it drains histogram samples); its own HTTP listener would do it.
    let upkeep = handle.clone();
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `GET /metrics`: what the recorder holds, in the Prometheus text format.
async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let prometheus = web::Data::new(install_prometheus()?);
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    // Once, before HttpServer::new, in the main system: the lock actors run on this thread's
    // arbiter, which serves no requests, so a busy worker never delays a refresh.
    // As the CLI: NLOCK_NO_RESTART_GRACE=1 skips the restart grace, for a server you just
    // started that cannot have had earlier holders.
    let no_grace = std::env::var("NLOCK_NO_RESTART_GRACE").is_ok_and(|v| !v.is_empty());
    let config = nlock::Config::builder()
        .restart_grace(!no_grace)
        .build()
        .map_err(std::io::Error::other)?;
    let manager = nlock::LockManager::from_env(config)
        .await
        .map_err(std::io::Error::other)?;
    let node =
        std::env::var("NODE").unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
    let elector = manager
        .elector(
            "web.leader",
            ElectorOptions::new(node).metadata(serde_json::json!({ "bind": bind })),
        )
        .actor(Leading)
        .map_err(std::io::Error::other)?;
    let locks = WebLocks::new(manager)
        .observe_leaders(["web.leader"])
        .map_err(std::io::Error::other)?;

    let (app_locks, app_elector) = (locks.clone(), elector.clone());
    let server = HttpServer::new(move || {
        let per_account = app_locks
            .lock_per_request(KeyFrom::path("id"))
            .prefix("accounts.")
            .wait(Duration::from_secs(2))
            .options(LockOptions::default().description("closing an account"));
        App::new()
            .app_data(prometheus.clone())
            .route("/metrics", web::get().to(metrics))
            // Operators only: it shows hosts and pids.
            .service(app_locks.admin("/admin/locks"))
            // For a load balancer that should send traffic to the leader only.
            .service(app_locks.readiness("/ready", &app_elector))
            .service(
                web::resource("/accounts/{id}/close")
                    .wrap(per_account)
                    .route(web::post().to(close_account)),
            )
    })
    // A client that disconnects mid-request ends the request, which releases its lock.
    .h1_allow_half_closed(false)
    // Requests still running 10 s after a stop are dropped; their locks are released.
    .shutdown_timeout(10)
    // `locks.run_reporting` stops gracefully on SIGINT and SIGTERM alike; actix-server's own
    // handling would stop at once on SIGINT, dropping in-flight requests.
    .disable_signals()
    .bind(&bind)?
    .run();
    println!("listening on http://{bind}, admin page at http://{bind}/admin/locks/");
    // On a stop the term ends with the rest: its role is told, and the key released.
    let stopped = locks.run_reporting(server).await?;
    let why = stopped.signal.unwrap_or("a stop");
    if stopped.released.is_empty() {
        println!("stopped on {why}: in-flight requests finished; no lock was held");
    } else {
        println!(
            "stopped on {why}: in-flight requests finished; released {}",
            stopped.released.join(", ")
        );
    }
    Ok(())
}

/// The host name, for a default candidate name.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
