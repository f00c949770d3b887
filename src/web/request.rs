//! A lock per request: the [`LockPerRequest`] middleware takes the key from the request,
//! acquires (waiting up to a set time, or failing fast), hands the handler a [`HeldLock`],
//! and releases when the response body is dropped: after its last byte is written, or when
//! the client disconnects.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};

use crate::client::LockManager;
use crate::error::{KeyRule, LockError};
use crate::handle::LockHandle;
use crate::lock::lease::Lease;
use crate::lock::requests::LockOptions;
use crate::web::error::LockErrorResponse;

/// A function that finds a request's lock key.
///
/// ```
/// let f: nlock::web::KeyFn = std::sync::Arc::new(|req: &actix_web::HttpRequest| {
///     req.headers().get("x-tenant")?.to_str().ok().map(|t| format!("tenant.{t}"))
/// });
/// let from = nlock::web::KeyFrom::Fn(f);
/// ```
pub type KeyFn = Arc<dyn Fn(&HttpRequest) -> Option<String> + Send + Sync>;

/// Where a request's lock key comes from.
///
/// ```
/// use nlock::web::KeyFrom;
/// let by_path = KeyFrom::path("id");
/// let by_header = KeyFrom::header("x-order-id");
/// let by_query = KeyFrom::func(|req| req.query_string().strip_prefix("order=").map(str::to_owned));
/// ```
#[derive(Clone)]
pub enum KeyFrom {
    /// A path segment by name (`{id}` in `/orders/{id}`). Wrap the resource or scope whose
    /// pattern names it: an app-wide middleware runs before the path is matched.
    Path(String),
    /// A request header's value.
    Header(String),
    /// A function of the request; `None` answers 400 `invalid_key`.
    Fn(KeyFn),
}

impl KeyFrom {
    /// The path segment `name`.
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// use actix_web::{web, HttpResponse};
    /// let orders = web::resource("/orders/{id}")
    ///     .wrap(locks.lock_per_request(nlock::web::KeyFrom::path("id")))
    ///     .route(web::put().to(|| async { HttpResponse::Ok().finish() }));
    /// # }
    /// ```
    pub fn path(name: impl Into<String>) -> Self {
        KeyFrom::Path(name.into())
    }

    /// The header `name`.
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// let middleware = locks.lock_per_request(nlock::web::KeyFrom::header("x-job-id"));
    /// # }
    /// ```
    pub fn header(name: impl Into<String>) -> Self {
        KeyFrom::Header(name.into())
    }

    /// Whatever `f` makes of the request.
    ///
    /// ```
    /// let from = nlock::web::KeyFrom::func(|req| {
    ///     let user = req.headers().get("x-user")?.to_str().ok()?;
    ///     Some(format!("users.{user}"))
    /// });
    /// ```
    pub fn func(f: impl Fn(&HttpRequest) -> Option<String> + Send + Sync + 'static) -> Self {
        KeyFrom::Fn(Arc::new(f))
    }

    fn key(&self, req: &HttpRequest) -> Option<String> {
        match self {
            KeyFrom::Path(name) => req.match_info().get(name).map(str::to_owned),
            KeyFrom::Header(name) => req
                .headers()
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            KeyFrom::Fn(f) => f(req),
        }
    }
}

impl std::fmt::Debug for KeyFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFrom::Path(name) => f.debug_tuple("Path").field(name).finish(),
            KeyFrom::Header(name) => f.debug_tuple("Header").field(name).finish(),
            KeyFrom::Fn(_) => f.write_str("Fn(..)"),
        }
    }
}

/// Middleware that holds a lock for each request it wraps.
///
/// The key is [`KeyFrom`] the request, with an optional [`prefix`](LockPerRequest::prefix).
/// With [`wait`](LockPerRequest::wait) a request waits up to that long for the lock
/// (`503 acquire_timed_out` with `Retry-After` after it); with
/// [`fail_fast`](LockPerRequest::fail_fast) (the default) it gets `409 busy` at once. Either
/// way the handler runs only while the lock is held, reads it through the [`HeldLock`]
/// extractor, and the lock is released when the response body is dropped: once it has been
/// written, or when the client disconnects (actix-web then drops the handler and the body).
///
/// ```no_run
/// use std::time::Duration;
/// use actix_web::{web, App, HttpResponse};
/// use nlock::web::{HeldLock, KeyFrom, LockPerRequest};
///
/// async fn reindex(lock: HeldLock) -> HttpResponse {
///     // Fence the writes with the token.
///     HttpResponse::Ok().body(format!("reindexed {} with token {}", lock.key(), lock.token()))
/// }
///
/// # fn f(manager: nlock::LockManager) {
/// let app = App::new().service(
///     web::resource("/indexes/{name}/reindex")
///         .wrap(
///             LockPerRequest::new(manager, KeyFrom::path("name"))
///                 .prefix("indexes.")
///                 .wait(Duration::from_secs(2)),
///         )
///         .route(web::post().to(reindex)),
/// );
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LockPerRequest {
    inner: Rc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    manager: LockManager,
    key: KeyFrom,
    prefix: String,
    /// `None`: fail fast with `busy`.
    wait: Option<Duration>,
    options: LockOptions,
    holder_details: bool,
}

impl LockPerRequest {
    /// Locks each request on the key `key` gives, failing fast when it is held.
    ///
    /// ```no_run
    /// # fn f(m: nlock::LockManager) {
    /// use nlock::web::{KeyFrom, LockPerRequest};
    /// let middleware = LockPerRequest::new(m, KeyFrom::path("id"));
    /// # }
    /// ```
    pub fn new(manager: LockManager, key: KeyFrom) -> Self {
        LockPerRequest {
            inner: Rc::new(Settings {
                manager,
                key,
                prefix: String::new(),
                wait: None,
                options: LockOptions::default(),
                holder_details: false,
            }),
        }
    }

    fn settings(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Rc::make_mut(&mut self.inner));
        self
    }

    /// Put before every key (`"orders."`), so that request keys stay in their own part of
    /// the bucket.
    #[must_use]
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// let m = locks.lock_per_request(nlock::web::KeyFrom::path("id")).prefix("orders.");
    /// # }
    /// ```
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.settings(|s| s.prefix = prefix)
    }

    /// Wait up to `timeout` for a held lock, serialising requests for one key.
    #[must_use]
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// use std::time::Duration;
    /// let m = locks.lock_per_request(nlock::web::KeyFrom::path("id")).wait(Duration::from_secs(2));
    /// # }
    /// ```
    pub fn wait(self, timeout: Duration) -> Self {
        self.settings(|s| s.wait = Some(timeout))
    }

    /// Answer `409 busy` at once when the lock is held (the default).
    #[must_use]
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// let m = locks.lock_per_request(nlock::web::KeyFrom::path("id")).fail_fast();
    /// # }
    /// ```
    pub fn fail_fast(self) -> Self {
        self.settings(|s| s.wait = None)
    }

    /// A per-lock TTL or a description (shown in busy answers to other requests).
    #[must_use]
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// use std::time::Duration;
    /// let options = nlock::LockOptions::default().ttl(Duration::from_secs(5)).description("order update");
    /// let m = locks.lock_per_request(nlock::web::KeyFrom::path("id")).options(options);
    /// # }
    /// ```
    pub fn options(self, options: LockOptions) -> Self {
        self.settings(|s| s.options = options)
    }

    /// Whether busy answers name the holder's owner id, host and pid (default false).
    ///
    /// ```no_run
    /// # fn f(locks: nlock::web::WebLocks) {
    /// // An internal service: busy answers may name the holder.
    /// let m = locks.lock_per_request(nlock::web::KeyFrom::path("id")).holder_details(true);
    /// # }
    /// ```
    #[must_use]
    pub fn holder_details(self, on: bool) -> Self {
        self.settings(|s| s.holder_details = on)
    }
}

impl<S, B> Transform<S, ServiceRequest> for LockPerRequest
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = LockPerRequestService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(LockPerRequestService {
            service: Rc::new(service),
            settings: self.inner.clone(),
        }))
    }
}

/// The service [`LockPerRequest`] wraps around a resource.
///
/// ```no_run
/// # fn f(locks: nlock::web::WebLocks) {
/// use actix_web::{web, App, HttpResponse};
/// // Made by `.wrap(...)` for each service it wraps; never built by hand.
/// let app = App::new().service(
///     web::resource("/jobs/{id}")
///         .wrap(locks.lock_per_request(nlock::web::KeyFrom::path("id")))
///         .route(web::post().to(|| async { HttpResponse::Accepted().finish() })),
/// );
/// # }
/// ```
#[derive(Debug)]
pub struct LockPerRequestService<S> {
    service: Rc<S>,
    settings: Rc<Settings>,
}

impl<S, B> Service<ServiceRequest> for LockPerRequestService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let (service, settings) = (self.service.clone(), self.settings.clone());
        Box::pin(async move {
            let refuse = |req: ServiceRequest, error: LockError| {
                let response = LockErrorResponse::new(error)
                    .holder_details(settings.holder_details)
                    .error_response();
                Ok(req.into_response(response))
            };
            let Some(key) = settings.key.key(req.request()) else {
                let error = LockError::InvalidKey {
                    key: String::new(),
                    rule: KeyRule::Empty,
                };
                return refuse(req, error);
            };
            let key = format!("{}{key}", settings.prefix);
            let manager = &settings.manager;
            let options = settings.options.clone();
            // Dropping this future (the client went away while waiting) withdraws the
            // request: nlock leaves no lock behind.
            let request = manager.lock(&key).options(options);
            let acquired = match settings.wait {
                Some(timeout) => request.timeout(timeout).acquire().await,
                None => request.try_acquire().await,
            };
            let handle = match acquired {
                Ok(handle) => handle,
                Err(error) => return refuse(req, error.into()),
            };
            req.extensions_mut().insert(HeldLock {
                lease: handle.lease().clone(),
            });
            // If the handler is dropped (client gone), `handle` drops with this future and
            // releases the lock.
            let response = service.call(req).await?;
            Ok(response.map_body(|_, body| {
                BoxBody::new(LockedBody {
                    body: body.boxed(),
                    _lock: handle,
                })
            }))
        })
    }
}

/// A response body that holds the request's lock until it is dropped: after its last byte
/// is written, or when the connection closes first.
struct LockedBody {
    body: BoxBody,
    /// Dropped with the body: `LockHandle`'s drop sends the release to its actor.
    _lock: LockHandle,
}

impl MessageBody for LockedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// The lock [`LockPerRequest`] holds for this request, for the handler: key, fencing token,
/// and the [`Lease`] to watch for a loss. Extracting it from a request that the middleware
/// does not wrap is a 500 (the route is wired wrongly).
///
/// ```no_run
/// # async fn write(_: u64) {}
/// async fn handler(lock: nlock::web::HeldLock) -> actix_web::Result<&'static str> {
///     tokio::select! {
///         _ = write(lock.token()) => Ok("done"),
///         lost = lock.lease().lost() => Err(nlock::LockError::Lost { key: lost.key, reason: lost.reason }.into()),
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct HeldLock {
    lease: Lease,
}

impl HeldLock {
    /// The lock key (prefix included).
    pub fn key(&self) -> &str {
        self.lease.key()
    }

    /// The fencing token: give it to the resource the handler writes to.
    pub fn token(&self) -> u64 {
        self.lease.token()
    }

    /// The tenure's lease: `is_held()`, `lost()`, `time_left()`.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl FromRequest for HeldLock {
    type Error = actix_web::Error;
    type Future = Ready<Result<HeldLock, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(req.extensions().get::<HeldLock>().cloned().ok_or_else(|| {
            actix_web::error::ErrorInternalServerError(
                "HeldLock used on a route that LockPerRequest does not wrap",
            )
        }))
    }
}
