//! The actix-web integration (cargo feature `actix-web`, off by default): nlock's errors as
//! HTTP responses, a lock per request, an admin scope, and a graceful shutdown that leaves no
//! lock behind. Built on nlock's public API only; nothing else in nlock knows it exists.
//!
//! # Layout
//! - `error.rs`: `impl ResponseError for LockError` and [`LockErrorResponse`].
//! - `request.rs`: the [`LockPerRequest`] middleware, [`KeyFrom`] and the [`HeldLock`]
//!   extractor.
//! - `admin.rs` and `admin.html`: the admin scope ([`WebLocks::admin`], [`AdminLocks`],
//!   and the leaders it observes, [`WebLocks::observe_leaders`], [`ObservedLeader`]).
//! - `ready.rs`: leader-gated readiness ([`WebLocks::readiness`], [`Readiness`]).
//! - this file: [`WebLocks`], which ties them to one manager and runs the shutdown.
//!
//! # Error responses
//!
//! Every body is JSON: `{"error": kind, "message": ..., "key": ...}` plus the fields below.
//! `error` is [`ErrorKind::as_str`](crate::ErrorKind::as_str), stable across releases.
//!
//! | error | status | extra |
//! | --- | --- | --- |
//! | `busy`, in the restart grace ([`LockError::RestartGrace`]) | 503 Service Unavailable, `Retry-After` | `retry_after_s`: until the grace ends |
//! | `busy` | 409 Conflict | `holder.description` (the holder's [`LockOptions::description`](crate::LockOptions::description)); owner id, host and pid only with [`LockErrorResponse::holder_details`] |
//! | `acquire_timed_out` | 503 Service Unavailable | `Retry-After` header and `retry_after_s`: the time waited, rounded up, at least 1 s |
//! | `unavailable`, `outcome_unknown`, `manager_gone` | 503 Service Unavailable | no server addresses in the message |
//! | `invalid_key` | 400 Bad Request | also when [`KeyFrom`] finds no key in the request |
//! | `lost` | 409 Conflict; 503 when the reason is `shutdown` | `reason`: `deleted`, `taken`, `expired` or `shutdown` |
//! | `token_mismatch` | 409 Conflict | |
//! | anything else (`not_held`, `invalid_config`, `task_panicked`, ...) | 500 Internal Server Error | |
//!
//! # Where the manager lives, and on which thread things run
//!
//! Create the [`LockManager`] once, before `HttpServer::new`, inside `#[actix_web::main]`,
//! and clone it (or a [`WebLocks`]) into the app factory; never create one per worker. Its
//! actors then run on the main system's arbiter (the main thread), which serves no requests:
//! a worker busy in a handler never delays a refresh. Handlers and the middleware talk to the
//! actors through thread-safe addresses; a [`HeldLock`]'s `lease().is_held()` is read
//! locally without a message.
//!
//! # Shutdown
//!
//! [`WebLocks::run`] runs the server to its end and then releases what is left:
//! 1. On SIGINT or SIGTERM, [`WebLocks::run`] stops the server gracefully; build it with
//!    `HttpServer::disable_signals()`, or actix-server's own handling also sees the signal
//!    and stops at once on SIGINT (and SIGQUIT). On a signal or [`WebLocks::stop`], the admin
//!    event streams end, so that open pages do not hold up a graceful stop.
//! 2. actix-server stops accepting. In a graceful stop in-flight requests finish, and each
//!    one's lock is released when its response has been sent; requests still running at the
//!    server's `shutdown_timeout`, or any in a stop that is not graceful, are dropped, which
//!    releases their locks too.
//! 3. When the server has stopped, [`LockManager::shutdown`] tells every lock still held
//!    (`LockLost { Shutdown }`) and releases it, and ends every waiting acquire; `run`
//!    returns when the deletes are acknowledged. Electors started on the manager are shut
//!    down first: each waits for its role at most its `stop_timeout` (plus one request
//!    timeout for the release); a term whose role had not stopped by then is the one thing
//!    left behind: it is not released but left to expire by its TTL (a warning is logged).
//!
//! # Leadership
//!
//! [`WebLocks::readiness`] serves a readiness probe that answers 200 only while a given
//! [`Elector`] leads (503 otherwise), so that a load balancer sends traffic to
//! the leader only. [`WebLocks::observe_leaders`] names election keys whose current leaders
//! the admin scope shows (`{path}/leaders` and a table on the page), whoever leads them, in
//! any process.
//!
//! ```no_run
//! use std::time::Duration;
//! use actix_web::{web, App, HttpResponse, HttpServer};
//! use nlock::web::{HeldLock, KeyFrom, WebLocks};
//!
//! async fn close(lock: HeldLock) -> HttpResponse {
//!     HttpResponse::Ok().body(format!("closed with token {}", lock.token()))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // Once, before HttpServer::new: the actors run on this (main) thread's arbiter.
//!     let manager = nlock::LockManager::connect("nats://127.0.0.1:4222", nlock::Config::default())
//!         .await
//!         .map_err(std::io::Error::other)?;
//!     // The role: what only the leader does, until its term ends.
//!     let elector = manager
//!         .elector("jobs.leader", nlock::ElectorOptions::new("node-a"))
//!         .run(|term| async move { run_jobs(term.token()).await })
//!         .map_err(std::io::Error::other)?;
//!     let locks = WebLocks::new(manager).observe_leaders(["jobs.leader"]).map_err(std::io::Error::other)?;
//!     let (app_locks, app_elector) = (locks.clone(), elector.clone());
//!     let server = HttpServer::new(move || {
//!         App::new()
//!             .service(app_locks.admin("/admin/locks"))
//!             .service(app_locks.readiness("/ready", &app_elector))
//!             .service(
//!                 web::resource("/accounts/{id}/close")
//!                     .wrap(app_locks.lock_per_request(KeyFrom::path("id")).prefix("accounts.").wait(Duration::from_secs(2)))
//!                     .route(web::post().to(close)),
//!             )
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     // `locks.run` stops gracefully on SIGINT and SIGTERM; actix's own would not on SIGINT.
//!     .disable_signals()
//!     .run();
//!     // manager.shutdown() at the end also ends the term (its role is dropped first).
//!     locks.run(server).await
//! }
//! # async fn run_jobs(_token: u64) {}
//! ```

mod admin;
mod error;
mod ready;
mod request;

pub use admin::{AdminLocks, BucketLock, ElectionCandidate, ObservedLeader};
pub use error::LockErrorResponse;
pub use ready::Readiness;
pub use request::{HeldLock, KeyFn, KeyFrom, LockPerRequest, LockPerRequestService};

use std::future::Future;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{Resource, Scope};
use tokio::sync::watch;

use crate::client::LockManager;
use crate::error::LockError;
use crate::leader::Elector;

/// One manager's web integration: the per-request middleware, the admin scope, and the
/// shutdown that ties them together. Cheap to clone; clones share the stop signal.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> std::io::Result<()> {
/// use actix_web::{web, App, HttpServer};
/// let locks = nlock::web::WebLocks::new(m);
/// let server = HttpServer::new({
///     let locks = locks.clone();
///     move || App::new().service(locks.admin("/admin/locks"))
/// })
/// .bind("127.0.0.1:8080")?
/// .run();
/// println!("admin at /admin/locks, observing {:?}", locks.observed_leaders());
/// locks.run(server).await
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct WebLocks {
    manager: LockManager,
    /// Turned true once by `begin_stop`; a watch channel so that a stream opened later
    /// still sees it. In an `Arc` so every clone (one per worker) shares it.
    stopping: Arc<watch::Sender<bool>>,
    /// The election keys whose leaders the admin scope shows, validated, in the order given.
    /// An `Arc` so that the clone per worker does not copy them.
    leader_keys: Arc<[String]>,
}

impl WebLocks {
    /// The integration for `manager`.
    ///
    /// ```no_run
    /// # fn f(m: nlock::LockManager) {
    /// let locks = nlock::web::WebLocks::new(m);
    /// assert!(!locks.is_stopping());
    /// println!("owner {}", locks.manager().owner());
    /// # }
    /// ```
    pub fn new(manager: LockManager) -> Self {
        WebLocks {
            manager,
            stopping: Arc::new(watch::channel(false).0),
            leader_keys: Arc::from(Vec::new()),
        }
    }

    /// Shows the current leader of each of `keys` in the admin scope: `{path}/leaders` as
    /// JSON ([`ObservedLeader`]) and a "Leaders" table on the page. Whoever leads, in any
    /// process; a read of the bucket, for display. Replaces the keys given before.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind) for a key that is not a valid lock key.
    ///
    /// ```no_run
    /// # fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let locks = nlock::web::WebLocks::new(manager).observe_leaders(["jobs.leader", "mail.leader"])?;
    /// # Ok(()) }
    /// ```
    pub fn observe_leaders<I, K>(mut self, keys: I) -> Result<Self, LockError>
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        let keys = keys
            .into_iter()
            .map(|k| {
                let k = k.into();
                crate::validate_key(&k).map(|()| k)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.leader_keys = Arc::from(keys);
        Ok(self)
    }

    /// The election keys the admin scope shows; see [`observe_leaders`](WebLocks::observe_leaders).
    pub fn observed_leaders(&self) -> &[String] {
        &self.leader_keys
    }

    /// The manager.
    pub fn manager(&self) -> &LockManager {
        &self.manager
    }

    /// A [`LockPerRequest`] middleware on this manager.
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// use actix_web::{web, App, HttpResponse};
    /// let app = App::new().service(
    ///     web::resource("/orders/{id}")
    ///         .wrap(locks.lock_per_request(nlock::web::KeyFrom::path("id")).prefix("orders."))
    ///         .route(web::post().to(|| async { HttpResponse::Ok().finish() })),
    /// );
    /// # }
    /// ```
    pub fn lock_per_request(&self, key: KeyFrom) -> LockPerRequest {
        LockPerRequest::new(self.manager.clone(), key)
    }

    /// The admin scope at `path` (`"/admin/locks"`): the page, `/locks` JSON and the
    /// `/events` stream; see [`AdminLocks`] and the admin module's routes.
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// let app = actix_web::App::new().service(locks.admin("/ops/locks"));
    /// # }
    /// ```
    pub fn admin(&self, path: &str) -> Scope {
        admin::scope(path, self.clone())
    }

    /// A readiness resource at `path` (`"/ready"`) that answers 200 while `elector` leads and
    /// 503 otherwise (campaigning, holding off, stopped), with a small JSON body
    /// ([`Readiness`]: `ready`, `key`, `status`, and the term's `token` while leading), to
    /// GET and HEAD. Read locally from the elector: a probe costs no message and no request
    /// to the server. It is 200 from the moment the elector holds the key, also during the
    /// lock-delay before its role starts.
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks, elector: nlock::Elector) {
    /// let app = actix_web::App::new().service(locks.readiness("/ready", &elector));
    /// # }
    /// ```
    pub fn readiness(&self, path: &str, elector: &Elector) -> Resource {
        ready::resource(path, elector)
    }

    /// Ends the admin event streams, now and any opened later, so that a graceful stop does
    /// not wait for them. [`run`](WebLocks::run) and [`stop`](WebLocks::stop) call it.
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// locks.begin_stop();
    /// assert!(locks.is_stopping());
    /// # }
    /// ```
    pub fn begin_stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether [`begin_stop`](WebLocks::begin_stop) was called.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once [`begin_stop`](WebLocks::begin_stop) has been called.
    ///
    /// ```no_run
    /// # async fn f(locks: nlock::web::WebLocks) {
    /// let stopped = locks.stopped();
    /// actix_web::rt::spawn(async move {
    ///     stopped.await;
    ///     println!("stopping: closing long-lived streams");
    /// });
    /// # }
    /// ```
    pub fn stopped(&self) -> impl Future<Output = ()> + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            // The sender lives as long as any WebLocks; if all are gone, nothing can stop.
            if rx.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops the server through `handle` (gracefully or not, as actix-server's
    /// [`ServerHandle::stop`]), ending the admin event streams first. [`run`](WebLocks::run)
    /// then releases what is left.
    ///
    /// ```no_run
    /// # async fn f(locks: nlock::web::WebLocks, server: actix_web::dev::Server) {
    /// let handle = server.handle();
    /// // ... on an admin command:
    /// locks.stop(&handle, true).await;
    /// # }
    /// ```
    pub async fn stop(&self, handle: &ServerHandle, graceful: bool) {
        self.begin_stop();
        handle.stop(graceful).await;
    }

    /// Runs `server` until it stops (signal or [`stop`](WebLocks::stop)), then shuts the
    /// manager down: every lock still held is released and its holder told. See the
    /// [module docs](self#shutdown) for the order. [`run_reporting`](WebLocks::run_reporting)
    /// also says what stopped it and what it released.
    ///
    /// ```no_run
    /// # async fn f(locks: nlock::web::WebLocks) -> std::io::Result<()> {
    /// use actix_web::{App, HttpServer};
    /// let server = HttpServer::new({
    ///     let locks = locks.clone();
    ///     move || App::new().service(locks.admin("/admin/locks"))
    /// })
    /// .bind("127.0.0.1:8080")?
    /// .run();
    /// locks.run(server).await // returns once every lock is released
    /// # }
    /// ```
    ///
    /// # Errors
    /// The server's own [`std::io::Error`], after the manager has shut down.
    pub async fn run(&self, server: Server) -> std::io::Result<()> {
        self.run_reporting(server).await.map(|_| ())
    }

    /// As [`run`](WebLocks::run), and tells what stopped the server and which of this
    /// process's locks were held when the stop began or when the manager shut down: each was
    /// released by then (by its request's end, or by the shutdown), or, if its release failed,
    /// left to expire by its TTL (a warning is logged).
    ///
    /// On SIGINT or SIGTERM it stops the server gracefully ([`ServerHandle::stop`]`(true)`).
    /// For SIGINT (Ctrl-C) to be graceful too, build the server with
    /// `HttpServer::disable_signals()`: otherwise actix-server also sees it and stops at once.
    ///
    /// ```no_run
    /// # async fn f(locks: nlock::web::WebLocks, server: actix_web::dev::Server) -> std::io::Result<()> {
    /// let stopped = locks.run_reporting(server).await?;
    /// println!("stopped by {:?}; released {:?}", stopped.signal, stopped.released);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The server's own [`std::io::Error`], after the manager has shut down.
    pub async fn run_reporting(&self, server: Server) -> std::io::Result<Stopped> {
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let mut held = Vec::new();
        let (result, signal) = tokio::select! {
            result = &mut server => (result, None),
            signal = termination() => {
                self.begin_stop();
                held = self.held_keys().await;
                // Sent at once; the server future, polled below, carries the stop out.
                let stopping = handle.stop(true);
                let (result, ()) = futures::join!(&mut server, stopping);
                (result, Some(signal))
            }
        };
        self.begin_stop();
        held.extend(self.held_keys().await);
        held.sort();
        held.dedup();
        self.manager.shutdown().await;
        result.map(|()| Stopped {
            signal,
            released: held,
        })
    }

    /// The keys this process holds now; none if the manager no longer answers.
    async fn held_keys(&self) -> Vec<String> {
        match self.manager.locks().await {
            Ok(report) => report.held.into_iter().map(|l| l.key).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// How a [`WebLocks::run_reporting`] ended.
///
/// ```no_run
/// # async fn f(locks: nlock::web::WebLocks, server: actix_web::dev::Server) -> std::io::Result<()> {
/// let stopped: nlock::web::Stopped = locks.run_reporting(server).await?;
/// if stopped.signal == Some("SIGTERM") {
///     println!("terminated; released {:?}", stopped.released);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stopped {
    /// The signal that stopped the server (`"SIGINT"` or `"SIGTERM"`); `None` when it stopped
    /// otherwise (a [`ServerHandle`], [`WebLocks::stop`]).
    pub signal: Option<&'static str>,
    /// This process's keys held when the stop began or when the manager shut down, sorted:
    /// released by the time `run_reporting` returns (see there).
    pub released: Vec<String>,
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn termination() -> &'static str {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            // Without a SIGTERM handler, Ctrl-C still works.
            ctrl_c().await;
            return "SIGINT";
        };
        tokio::select! {
            () = ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await;
        "SIGINT"
    }
}

/// Resolves on Ctrl-C; never, when no handler can be installed (then a stop comes from
/// actix-server's own handling or a handle, and must not be mistaken for a signal).
async fn ctrl_c() {
    if actix_web::rt::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
