//! The admin scope: JSON of the locks in the bucket and of this process, a server-sent-events
//! stream of lock changes, and one HTML page (inline script and style, nothing fetched from
//! elsewhere) that shows both live.
//!
//! Routes, under the path the app chooses:
//! - `GET {path}` and `GET {path}/`: the page.
//! - `GET {path}/locks`: [`AdminLocks`] as JSON. A key held by an elector's term carries
//!   its `candidate` ([`ElectionCandidate`]: identity and metadata) decoded from the lock's
//!   description, which the page shows instead of the raw record.
//! - `GET {path}/leaders`: for each key given to [`WebLocks::observe_leaders`], in that
//!   order, an [`ObservedLeader`]: `[{"key": ..., "leader": {"identity", "metadata",
//!   "token", "since_ms", "holder", ..} or null}]`. An election key is a lock key, so the
//!   `/events` stream tells its changes too; the page reads this again on each.
//! - `GET {path}/events?filter=jobs.>`: `text/event-stream`, one event per [`LockEvent`]
//!   (the SSE event name is its kind, the data its JSON); the filter defaults to `>`. It
//!   begins with each key's last change. It ends when [`WebLocks::begin_stop`] is called, so
//!   that a graceful stop does not wait for open pages.
//!
//! It shows owner ids, hosts and pids: mount it where only operators reach it.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::web::{self, Bytes};
use actix_web::{HttpResponse, Scope};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::client::LockManager;
use crate::error::LockError;
use crate::leader::{CandidateRecord, Leader};
use crate::lock::requests::LocksReport;
use crate::observe::{KeyHolder, LockEvent};
use crate::web::WebLocks;

/// The page, served as it is: no build step, no assets from elsewhere.
const PAGE: &str = include_str!("admin.html");

/// What `GET {path}/locks` answers.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let view = nlock::web::AdminLocks::read(&m).await?;
/// for lock in &view.bucket {
///     let mine = lock.lock.holder.owner == view.owner;
///     println!("{} token {} (this process: {mine})", lock.lock.key, lock.lock.token);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AdminLocks {
    /// This manager's owner id: the bucket's entries with it are this process's.
    pub owner: String,
    /// The connected nats-server's version.
    pub server_version: String,
    /// Every key held in the bucket, by any process, sorted by key.
    pub bucket: Vec<BucketLock>,
    /// What this process holds (with TTL and time left) and waits for.
    pub process: LocksReport,
}

impl AdminLocks {
    /// Reads both views from `manager`.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let view = nlock::web::AdminLocks::read(&m).await?;
    /// println!("{} keys in the bucket, {} held here", view.bucket.len(), view.process.held.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As a [`LockError`]: [`ErrorKind::ManagerGone`](crate::ErrorKind::ManagerGone) from
    /// [`LockManager::locks`], `Unavailable`, `OutcomeUnknown` and `PermissionDenied` from
    /// [`LockManager::holders`].
    pub async fn read(manager: &LockManager) -> Result<AdminLocks, LockError> {
        let process = manager.locks().await?;
        let bucket = manager.holders().await?;
        Ok(AdminLocks {
            owner: manager.owner().to_owned(),
            server_version: manager.capabilities().server_version.clone(),
            bucket: bucket.into_iter().map(BucketLock::new).collect(),
            process,
        })
    }
}

/// One key held in the bucket, in [`AdminLocks::bucket`]: the lock record (its fields at the
/// top level of the JSON, as [`KeyHolder`]'s) and, for an elector's term, the candidate.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// for lock in nlock::web::AdminLocks::read(&m).await?.bucket {
///     match lock.candidate {
///         Some(c) => println!("{}: term of {} {}", lock.lock.key, c.identity, c.metadata),
///         None => println!("{}: a plain lock", lock.lock.key),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BucketLock {
    /// The key, its token and its holder's record.
    #[serde(flatten)]
    pub lock: KeyHolder,
    /// The candidate an elector wrote in the lock's description (`{"leader":{"id":..,
    /// "meta":..}}`), decoded; absent (no `candidate` field) for any other lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<ElectionCandidate>,
}

impl BucketLock {
    fn new(lock: KeyHolder) -> BucketLock {
        let candidate = lock
            .holder
            .description
            .as_deref()
            .and_then(CandidateRecord::decode)
            .map(|r| ElectionCandidate {
                identity: r.leader.id,
                metadata: r.leader.meta,
            });
        BucketLock { lock, candidate }
    }
}

/// Who an elector's term names, read from the lock's description.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let view = nlock::web::AdminLocks::read(&m).await?;
/// let candidates: Vec<&nlock::web::ElectionCandidate> =
///     view.bucket.iter().filter_map(|l| l.candidate.as_ref()).collect();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ElectionCandidate {
    /// The candidate's identity ([`ElectorOptions::identity`](crate::ElectorOptions)).
    pub identity: String,
    /// The candidate's metadata (`null` when none).
    pub metadata: serde_json::Value,
}

/// One observed election key and who leads it, in what `GET {path}/leaders` answers.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let keys = ["jobs.leader".to_owned(), "mail.leader".to_owned()];
/// for observed in nlock::web::ObservedLeader::read(&m, &keys).await? {
///     let who = observed.leader.map(|l| l.identity);
///     println!("{}: {}", observed.key, who.as_deref().unwrap_or("nobody"));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ObservedLeader {
    /// The election key.
    pub key: String,
    /// Its leader now, in any process; `None` (`null`) when nobody leads.
    pub leader: Option<Leader>,
}

impl ObservedLeader {
    /// Reads the leader of each of `keys` from `manager`, at once, in the order given.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let leaders = nlock::web::ObservedLeader::read(&m, &["jobs.leader".to_owned()]).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The first error of [`LockManager::leader`], as a [`LockError`]:
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) for a bad key, `Unavailable`,
    /// `OutcomeUnknown`, `PermissionDenied`.
    pub async fn read(
        manager: &LockManager,
        keys: &[String],
    ) -> Result<Vec<ObservedLeader>, LockError> {
        futures::future::try_join_all(keys.iter().map(|key| async move {
            let leader = manager.leader(key).await?;
            Ok::<_, LockError>(ObservedLeader {
                key: key.clone(),
                leader,
            })
        }))
        .await
    }
}

/// The scope; [`WebLocks::admin`] builds it.
pub(crate) fn scope(path: &str, web: WebLocks) -> Scope {
    web::scope(path)
        .app_data(web::Data::new(web))
        .route("", web::get().to(page))
        .route("/", web::get().to(page))
        .route("/locks", web::get().to(locks))
        .route("/leaders", web::get().to(leaders))
        .route("/events", web::get().to(events))
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(PAGE)
}

async fn locks(web: web::Data<WebLocks>) -> Result<HttpResponse, LockError> {
    let locks = AdminLocks::read(web.manager()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(locks))
}

async fn leaders(web: web::Data<WebLocks>) -> Result<HttpResponse, LockError> {
    let leaders = ObservedLeader::read(web.manager(), web.observed_leaders()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(leaders))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    filter: Option<String>,
}

async fn events(
    web: web::Data<WebLocks>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, LockError> {
    let filter = query.filter.as_deref().unwrap_or(">");
    let events = web.manager().events(filter).await?;
    let stopping = web.stopped();
    let stream = events
        .take_until(stopping)
        .map(|event| Ok::<_, std::convert::Infallible>(sse(&event)));
    // A first comment line makes the response start at once: a browser's EventSource (and a
    // test) sees the stream open before any lock changes.
    let open = futures::stream::once(async { Ok(Bytes::from_static(b": nlock events\n\n")) });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(open.chain(stream)))
}

/// One server-sent event: `id` the revision, `event` the kind, `data` the JSON.
fn sse(event: &LockEvent) -> Bytes {
    // Serialising strings, integers and a holder record cannot fail; an empty object keeps
    // the stream well-formed if it ever did.
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    let kind = serde_json::to_value(event.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "change".to_owned());
    Bytes::from(format!(
        "id: {}\nevent: {kind}\ndata: {data}\n\n",
        event.revision
    ))
}
