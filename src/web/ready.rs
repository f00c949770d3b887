//! Leader-gated readiness: a resource that answers 200 only while one [`Elector`] leads, for
//! a load balancer or an orchestrator's readiness probe that should send traffic to the
//! leader only.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse, Resource};
use serde::Serialize;

use crate::leader::{Elector, ElectorStatus};

/// The body of a readiness answer: `{"ready": true, "key": "jobs.leader", "status":
/// "leading", "token": 7}` with 200, or `{"ready": false, "key": ..., "status":
/// "campaigning"}` (or `ending`, `holding_off`, `stopped`) with 503. 503 from the moment the
/// term's lease is lost or runs out, or its end begins, while its role may still be stopping.
///
/// ```no_run
/// # fn f(elector: nlock::Elector) {
/// let r = nlock::web::Readiness::of(&elector);
/// let body = serde_json::to_value(&r).unwrap();
/// assert_eq!(body["ready"], r.ready);
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Whether the elector leads: the same as the status being 200.
    pub ready: bool,
    /// The election key.
    pub key: String,
    /// Where the elector stands: `status`, and the `token` of the term while it leads.
    #[serde(flatten)]
    pub status: ElectorStatus,
}

impl Readiness {
    /// Where `elector` stands now, read locally (no message, no request to the server).
    ///
    /// ```no_run
    /// # fn f(elector: nlock::Elector) {
    /// let r = nlock::web::Readiness::of(&elector);
    /// println!("{}: ready {} ({:?})", r.key, r.ready, r.status);
    /// # }
    /// ```
    pub fn of(elector: &Elector) -> Readiness {
        let status = elector.status();
        Readiness {
            ready: matches!(status, ElectorStatus::Leading { .. }),
            key: elector.key().to_owned(),
            status,
        }
    }
}

/// The resource; [`WebLocks::readiness`](crate::web::WebLocks::readiness) builds it.
pub(crate) fn resource(path: &str, elector: &Elector) -> Resource {
    let elector = elector.clone();
    let answer = move || {
        let readiness = Readiness::of(&elector);
        async move {
            let mut response = if readiness.ready {
                HttpResponse::Ok()
            } else {
                HttpResponse::ServiceUnavailable()
            };
            // A probe must see the state of now, never a cached one.
            response
                .insert_header(CacheControl(vec![CacheDirective::NoStore]))
                .json(readiness)
        }
    };
    web::resource(path)
        .route(web::get().to(answer.clone()))
        .route(web::head().to(answer))
}
