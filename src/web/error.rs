//! nlock's errors as HTTP responses: a status a client can act on and a JSON body that names
//! the error kind, without telling the internet who holds a lock unless the app opts in.
//!
//! `impl ResponseError for LockError` lives here because the orphan rule allows it only in
//! nlock. The status table is in the [module docs](crate::web#error-responses).

use std::time::Duration;

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::{ErrorKind, LockError, LossReason};
use crate::holder::Holder;

/// A [`LockError`] as a response, with the holder's details (owner id, host, pid) in a busy
/// body when the app opts in with [`holder_details`](LockErrorResponse::holder_details).
/// `LockError` itself answers with the holder's public description only.
///
/// ```no_run
/// use actix_web::{get, web, HttpResponse};
///
/// #[get("/jobs/{name}/run")]
/// async fn run(
///     manager: web::Data<nlock::LockManager>,
///     name: web::Path<String>,
/// ) -> Result<HttpResponse, nlock::web::LockErrorResponse> {
///     // An internal API: the caller may see which host holds the job.
///     let lock = manager
///         .try_acquire(&format!("jobs.{name}"))
///         .await
///         .map_err(|e| nlock::web::LockErrorResponse::new(e).holder_details(true))?;
///     lock.release().await?;
///     Ok(HttpResponse::Ok().finish())
/// }
/// ```
#[derive(Debug)]
pub struct LockErrorResponse {
    error: LockError,
    holder_details: bool,
}

impl LockErrorResponse {
    /// The response for `error` (a [`LockError`], or any error of a family such as
    /// [`AcquireError`](crate::AcquireError)), with the holder's public description only.
    ///
    /// ```
    /// use nlock::web::LockErrorResponse;
    /// let err = nlock::validate_key("").unwrap_err();
    /// let response = LockErrorResponse::new(err);
    /// assert_eq!(response.error().kind(), nlock::ErrorKind::InvalidKey);
    /// assert_eq!(response.into_error().kind(), nlock::ErrorKind::InvalidKey);
    /// ```
    pub fn new(error: impl Into<LockError>) -> Self {
        LockErrorResponse {
            error: error.into(),
            holder_details: false,
        }
    }

    /// Whether a busy body also names the holder's owner id, host and pid (default false:
    /// those are for operators, not for the internet).
    ///
    /// ```no_run
    /// # async fn handler(m: nlock::LockManager) -> Result<&'static str, nlock::web::LockErrorResponse> {
    /// let lock = m
    ///     .try_acquire("reports.nightly")
    ///     .await
    ///     .map_err(|e| nlock::web::LockErrorResponse::new(e).holder_details(true))?;
    /// # Ok("started") }
    /// ```
    #[must_use]
    pub fn holder_details(mut self, on: bool) -> Self {
        self.holder_details = on;
        self
    }

    /// The error.
    pub fn error(&self) -> &LockError {
        &self.error
    }

    /// Takes the error back.
    pub fn into_error(self) -> LockError {
        self.error
    }
}

impl From<LockError> for LockErrorResponse {
    fn from(error: LockError) -> Self {
        LockErrorResponse::new(error)
    }
}

impl<K> From<crate::error::Error<K>> for LockErrorResponse {
    fn from(error: crate::error::Error<K>) -> Self {
        LockErrorResponse::new(error)
    }
}

impl std::fmt::Display for LockErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl ResponseError for LockErrorResponse {
    fn status_code(&self) -> StatusCode {
        status(&self.error)
    }

    fn error_response(&self) -> HttpResponse {
        response(&self.error, self.holder_details)
    }
}

impl ResponseError for LockError {
    fn status_code(&self) -> StatusCode {
        status(self)
    }

    fn error_response(&self) -> HttpResponse {
        response(self, false)
    }
}

/// The errors per family of operations answer as the [`LockError`] they carry, so a handler
/// can return `AcquireError`, `ReleaseError`, ... with `?` as it returns a `LockError`.
impl<K: std::fmt::Debug> ResponseError for crate::error::Error<K> {
    fn status_code(&self) -> StatusCode {
        status(self.lock_error())
    }

    fn error_response(&self) -> HttpResponse {
        response(self.lock_error(), false)
    }
}

/// The status for each error; the table in the module docs says the same.
fn status(error: &LockError) -> StatusCode {
    if let LockError::RestartGrace { .. } = error {
        // Nothing is held: no lock can be granted until the grace ends; retry then.
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match error.kind() {
        ErrorKind::Busy | ErrorKind::TokenMismatch => StatusCode::CONFLICT,
        ErrorKind::Lost => match error {
            // The process is stopping: the request may succeed elsewhere or later.
            LockError::Lost {
                reason: LossReason::Shutdown,
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            // Someone deleted or took the key, or it lapsed: the work may have raced another
            // holder, which is a conflict the client should look at before retrying.
            _ => StatusCode::CONFLICT,
        },
        ErrorKind::AcquireTimedOut
        | ErrorKind::Unavailable
        | ErrorKind::OutcomeUnknown
        | ErrorKind::ManagerGone => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::InvalidKey => StatusCode::BAD_REQUEST,
        // Everything else is the server's own problem (configuration, a bug, a panic).
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `Retry-After` in whole seconds for an acquire that timed out: as long as it waited
/// (rounded up, at least one second), a hint that the lock may be free by then.
pub(crate) fn retry_after(waited: Duration) -> u64 {
    let secs = waited
        .as_secs()
        .saturating_add(u64::from(waited.subsec_nanos() > 0));
    secs.max(1)
}

/// The JSON body of an error response.
#[derive(Debug, Serialize)]
struct Body<'a> {
    /// The stable kind name (`ErrorKind::as_str`).
    error: &'static str,
    /// A sentence for people; for a busy or lost lock it never names host, pid or owner.
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<HolderBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_s: Option<u64>,
}

/// What a busy body says about the holder.
#[derive(Debug, Serialize)]
struct HolderBody<'a> {
    /// The description the holder chose to publish (`LockOptions::description`).
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
}

fn holder_body(holder: &Holder, details: bool) -> HolderBody<'_> {
    // A foreign value is raw bytes from another client: never public, not even as a
    // description.
    let public = !holder.foreign;
    HolderBody {
        description: holder.description.as_deref().filter(|_| public),
        owner: details.then_some(holder.owner.as_str()),
        host: (details && public).then_some(holder.host.as_str()),
        pid: (details && public).then_some(holder.pid),
    }
}

/// A stable name for a loss reason, for the body's `reason`.
fn reason_name(reason: &LossReason) -> &'static str {
    match reason {
        LossReason::Deleted => "deleted",
        LossReason::Taken { .. } => "taken",
        LossReason::Expired => "expired",
        LossReason::Shutdown => "shutdown",
        LossReason::ReleaseUnconfirmed => "release_unconfirmed",
    }
}

fn response(error: &LockError, holder_details: bool) -> HttpResponse {
    let mut body = Body {
        error: error.kind().as_str(),
        message: error.to_string(),
        key: None,
        holder: None,
        reason: None,
        retry_after_s: None,
    };
    match error {
        LockError::Busy { key, holder } => {
            body.key = Some(key);
            body.holder = holder.as_deref().map(|h| holder_body(h, holder_details));
            // The error's own message names owner, pid and host: say it without them.
            body.message = match body.holder.as_ref().and_then(|h| h.description) {
                Some(d) => format!("lock {key:?} is held: {d}"),
                None => format!("lock {key:?} is held"),
            };
        }
        LockError::Lost { key, reason } => {
            body.key = Some(key);
            body.reason = Some(reason_name(reason));
            // `Taken`'s message names the new holder's host: keep to the reason's name.
            body.message = match reason {
                LossReason::Taken { .. } => {
                    format!("lock {key:?} was lost: another writer took it")
                }
                _ => format!("lock {key:?} was lost: {reason}"),
            };
        }
        LockError::AcquireTimedOut { key, waited } => {
            body.key = Some(key);
            body.retry_after_s = Some(retry_after(*waited));
        }
        LockError::RestartGrace { key, remaining } => {
            body.key = Some(key);
            body.retry_after_s = Some(retry_after(*remaining));
        }
        LockError::InvalidKey { key, .. } | LockError::NotHeld { key } => body.key = Some(key),
        LockError::OutcomeUnknown { key, .. } => {
            body.key = Some(key);
            // The client error may name the NATS server's address: not for the internet.
            body.message = format!("outcome unknown for lock {key:?}: NATS did not answer in time");
        }
        LockError::Unavailable { .. } => body.message = "NATS is unavailable".to_owned(),
        _ => {}
    }
    let mut response = HttpResponse::build(status(error));
    if let Some(secs) = body.retry_after_s {
        response.insert_header((RETRY_AFTER, HeaderValue::from(secs)));
    }
    response.json(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn holder() -> Box<Holder> {
        let mut h = Holder::foreign(b"");
        h.foreign = false;
        h.owner = "owner-1".into();
        h.host = "db-7.internal".into();
        h.pid = 4242;
        h.description = Some("nightly close".into());
        Box::new(h)
    }

    fn json(response: HttpResponse) -> serde_json::Value {
        let bytes = response.into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn io_error() -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(std::io::Error::other("connection refused by 10.0.0.3:4222"))
    }

    #[test]
    fn busy_is_409_with_the_public_description_only() {
        let e = LockError::Busy {
            key: "jobs.a".into(),
            holder: Some(holder()),
        };
        assert_eq!(e.status_code(), StatusCode::CONFLICT);
        let body = json(e.error_response());
        assert_eq!(body["error"], "busy");
        assert_eq!(body["key"], "jobs.a");
        assert_eq!(
            body["holder"],
            serde_json::json!({"description": "nightly close"})
        );
        let text = body.to_string();
        for secret in ["owner-1", "db-7", "4242"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn the_restart_grace_is_503_with_retry_after_its_end() {
        let e = LockError::RestartGrace {
            key: "jobs.a".into(),
            remaining: Duration::from_millis(2500),
        };
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let response = e.error_response();
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "3");
        let body = json(response);
        assert_eq!(body["error"], "busy");
        assert_eq!(body["key"], "jobs.a");
        assert_eq!(body["retry_after_s"], 3);
        assert!(body["message"].as_str().unwrap().contains("restart grace"));
    }

    #[test]
    fn busy_names_host_pid_and_owner_when_the_app_opts_in() {
        let e = LockError::Busy {
            key: "jobs.a".into(),
            holder: Some(holder()),
        };
        let body = json(
            LockErrorResponse::new(e)
                .holder_details(true)
                .error_response(),
        );
        assert_eq!(body["holder"]["owner"], "owner-1");
        assert_eq!(body["holder"]["host"], "db-7.internal");
        assert_eq!(body["holder"]["pid"], 4242);
    }

    #[test]
    fn a_foreign_holder_is_never_described() {
        let e = LockError::Busy {
            key: "jobs.a".into(),
            holder: Some(Box::new(Holder::foreign(b"go-client-secret"))),
        };
        let text = json(e.error_response()).to_string();
        assert!(!text.contains("go-client-secret"), "{text}");
    }

    #[test]
    fn acquire_timed_out_is_503_with_retry_after() {
        let e = LockError::AcquireTimedOut {
            key: "jobs.a".into(),
            waited: Duration::from_millis(1500),
        };
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let response = e.error_response();
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "2");
        let body = json(response);
        assert_eq!(body["error"], "acquire_timed_out");
        assert_eq!(body["retry_after_s"], 2);
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_secs(3)), 3);
        assert_eq!(retry_after(Duration::MAX), u64::MAX);
    }

    #[test]
    fn unavailable_outcome_unknown_and_manager_gone_are_503_without_addresses() {
        let errors = [
            LockError::Unavailable { source: io_error() },
            LockError::OutcomeUnknown {
                key: "jobs.a".into(),
                source: io_error(),
            },
            LockError::ManagerGone,
        ];
        for e in errors {
            let response = e.error_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
            assert!(response.headers().get(RETRY_AFTER).is_none());
            let body = json(response);
            assert_eq!(body["error"], e.kind().as_str());
            assert!(!body.to_string().contains("10.0.0.3"), "{body}");
        }
    }

    #[test]
    fn invalid_key_is_400() {
        let e = crate::key::validate_key("a b").unwrap_err();
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(json(e.error_response())["error"], "invalid_key");
    }

    #[test]
    fn lost_is_409_with_the_reason_and_503_on_shutdown() {
        let lost = |reason| LockError::Lost {
            key: "jobs.a".into(),
            reason,
        };
        for (reason, name) in [
            (LossReason::Deleted, "deleted"),
            (LossReason::Expired, "expired"),
            (
                LossReason::Taken {
                    holder: Some(holder()),
                },
                "taken",
            ),
        ] {
            let e = lost(reason);
            assert_eq!(e.status_code(), StatusCode::CONFLICT);
            let body = json(e.error_response());
            assert_eq!(body["error"], "lost");
            assert_eq!(body["reason"], name);
            assert!(!body.to_string().contains("db-7"), "{body}");
        }
        let e = lost(LossReason::Shutdown);
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(e.error_response())["reason"], "shutdown");
    }

    #[test]
    fn the_rest_is_500() {
        let e = LockError::NotHeld { key: "k".into() };
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let e = LockError::TaskPanicked { key: "k".into() };
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
