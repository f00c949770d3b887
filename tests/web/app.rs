//! A test app: nlock's middleware and admin scope on a real `HttpServer` bound to
//! 127.0.0.1:0, and an HTTP client for it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;
use nlock::web::{HeldLock, KeyFrom, WebLocks};
use nlock::LockManager;
use tokio::sync::Semaphore;

/// What handlers record, in order: `("enter" | "exit", key, token)`.
pub type Log = Arc<Mutex<Vec<(&'static str, String, u64)>>>;

/// Shared with the handlers: the log, and a gate that `/gated` handlers wait on.
#[derive(Clone)]
pub struct Probe {
    pub log: Log,
    /// Each `/wait` or `/fast` handler takes one permit before it answers; a test lets
    /// handlers through with `gate.add_permits(n)`.
    pub gate: Arc<Semaphore>,
    /// Handlers that reached the gate, so a test knows they run.
    pub at_gate: Arc<Mutex<Vec<String>>>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            log: Log::default(),
            gate: Arc::new(Semaphore::new(0)),
            at_gate: Arc::default(),
        }
    }
}

impl Probe {
    pub fn entered(&self) -> Vec<String> {
        self.at_gate.lock().unwrap().clone()
    }

    pub fn log(&self) -> Vec<(&'static str, String, u64)> {
        self.log.lock().unwrap().clone()
    }
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub locks: WebLocks,
    pub probe: Probe,
    /// `WebLocks::run` on the server, in the test's system.
    pub run: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Holds the lock while it waits for the gate, then answers with the token.
async fn gated(lock: HeldLock, probe: web::Data<Probe>) -> HttpResponse {
    let key = lock.key().to_owned();
    probe
        .log
        .lock()
        .unwrap()
        .push(("enter", key.clone(), lock.token()));
    probe.at_gate.lock().unwrap().push(key.clone());
    probe.gate.acquire().await.unwrap().forget();
    assert!(lock.lease().is_held());
    probe.log.lock().unwrap().push(("exit", key, lock.token()));
    HttpResponse::Ok().body(lock.token().to_string())
}

/// Answers at once with the token.
async fn quick(lock: HeldLock) -> HttpResponse {
    HttpResponse::Ok().body(lock.token().to_string())
}

/// Answers with a streamed body: one chunk at once, the rest after a gate permit. The lock
/// must outlive the handler until the last byte is sent.
async fn streamed(lock: HeldLock, probe: web::Data<Probe>) -> HttpResponse {
    let first = format!("{}\n", lock.token());
    let gate = probe.gate.clone();
    let rest = async move {
        gate.acquire().await.unwrap().forget();
        Ok::<_, std::convert::Infallible>(web::Bytes::from_static(b"done\n"))
    };
    let body = futures::stream::once(async move { Ok(web::Bytes::from(first)) })
        .chain(futures::stream::once(rest));
    HttpResponse::Ok().streaming(body)
}

/// Never answers: the request ends only when the client leaves or the server stops.
async fn forever(lock: HeldLock, probe: web::Data<Probe>) -> HttpResponse {
    probe.at_gate.lock().unwrap().push(lock.key().to_owned());
    std::future::pending::<()>().await;
    HttpResponse::Ok().finish()
}

/// Works until the lock is lost, and answers with the loss as nlock's error response.
async fn until_lost(
    lock: HeldLock,
    probe: web::Data<Probe>,
) -> Result<HttpResponse, nlock::LockError> {
    probe.at_gate.lock().unwrap().push(lock.key().to_owned());
    let lost = lock.lease().lost().await;
    Err(nlock::LockError::Lost {
        key: lost.key,
        reason: lost.reason,
    })
}

/// Starts a server for `manager`, with:
/// - `/wait/{k}`: gated, waits up to 30 s for the lock on `wait.{k}`;
/// - `/fast/{k}`: gated, fails fast on `wait.{k}` (the same keys as `/wait`);
/// - `/short/{k}`: quick, waits up to 300 ms on `wait.{k}`;
/// - `/header`: quick, key from the `x-lock-key` header;
/// - `/func?k=name`: quick, key `func.name` from a closure;
/// - `/stream/{k}`, `/forever/{k}`, `/lost/{k}`: on `wait.{k}` too;
/// - `/admin`: the admin scope.
pub async fn start(manager: LockManager) -> TestServer {
    let locks = WebLocks::new(manager);
    let probe = Probe::default();
    let (app_locks, app_probe) = (locks.clone(), probe.clone());
    let server = HttpServer::new(move || {
        let l = &app_locks;
        let per = |k: &str| l.lock_per_request(KeyFrom::path(k)).prefix("wait.");
        App::new()
            .app_data(web::Data::new(app_probe.clone()))
            .service(l.admin("/admin"))
            .service(
                web::resource("/wait/{k}")
                    .wrap(per("k").wait(Duration::from_secs(30)))
                    .to(gated),
            )
            .service(web::resource("/fast/{k}").wrap(per("k")).to(gated))
            .service(
                web::resource("/short/{k}")
                    .wrap(per("k").wait(Duration::from_millis(300)))
                    .to(quick),
            )
            .service(
                web::resource("/header")
                    .wrap(l.lock_per_request(KeyFrom::header("x-lock-key")))
                    .to(quick),
            )
            .service(
                web::resource("/func")
                    .wrap(l.lock_per_request(KeyFrom::func(|req| {
                        // The key from the query string: `?k=name`.
                        let query = req.query_string();
                        query.strip_prefix("k=").map(|k| format!("func.{k}"))
                    })))
                    .to(quick),
            )
            .service(web::resource("/stream/{k}").wrap(per("k")).to(streamed))
            .service(web::resource("/forever/{k}").wrap(per("k")).to(forever))
            .service(web::resource("/lost/{k}").wrap(per("k")).to(until_lost))
    })
    .workers(1)
    // A client that closes its side mid-request ends the request (and releases its lock);
    // actix-web's default lets a handler run on for a half-closed connection.
    .h1_allow_half_closed(false)
    // A request still running this long after a stop is dropped (which releases its lock).
    .shutdown_timeout(2)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server: Server = server.run();
    let handle = server.handle();
    let run = {
        let locks = locks.clone();
        actix_web::rt::spawn(async move { locks.run(server).await })
    };
    TestServer {
        addr,
        handle,
        locks,
        probe,
        run: Some(run),
    }
}

/// A client whose requests may wait long for a lock (awc's default timeout is 5 s).
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
}

/// Sends GET `url` and returns status, headers and body.
pub async fn get(url: &str) -> (u16, awc::http::header::HeaderMap, String) {
    let mut response = client().get(url).send().await.unwrap();
    let body = response.body().await.unwrap();
    (
        response.status().as_u16(),
        response.headers().clone(),
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Who holds `key` in the bucket, read through `m` (any manager on the bucket).
pub async fn token_of(m: &LockManager, key: &str) -> Option<u64> {
    m.holder(key).await.unwrap().map(|h| h.token)
}

/// [`get`] in the background.
pub fn spawn_get(
    url: String,
) -> tokio::task::JoinHandle<(u16, awc::http::header::HeaderMap, String)> {
    actix_web::rt::spawn(async move { get(&url).await })
}
