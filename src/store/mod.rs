//! The only module that talks to `async_nats`: bucket setup, compare-and-set writes, delete
//! markers, reads and change streams of one lock bucket.
//!
//! Every write to a lock key carries `Nats-Expected-Last-Subject-Sequence`: there is no blind
//! put here. Writes are JetStream publishes rather than `kv.update`, because `kv.update`
//! cannot carry a `Nats-TTL` header and `kv.delete` does not return the delete marker's
//! revision, which a later acquire by this process uses to take the key in one round-trip.
//!
//! Layout: this file has the `Store` type and the key operations (`write`, `delete`, `read`)
//! with the classification of their errors; `bucket.rs` opens, creates, checks and
//! upgrades the bucket; `layout.rs` says what a bucket's stream should look like and whether
//! an existing one matches; `changes.rs` reads the bucket's change stream and snapshots;
//! `consumers.rs` deletes every consumer those create once its user is done.

mod bucket;
mod changes;
mod consumers;
mod denied;
mod grace;
mod layout;

pub(crate) use changes::{Change, ChangeOp, Changes, ChangesCloser, ChangesFrom};
pub(crate) use denied::Denials;
pub(crate) use grace::Admission;
pub use grace::RestartGrace;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, kv, ErrorCode};
use bytes::Bytes;

use crate::error::LockError;
use crate::telemetry::Meter;

const KV_OPERATION: &str = "KV-Operation";
/// Says why nlock wrote a delete marker (see [`End`]); KV clients ignore it.
const NLOCK_END: &str = "Nlock-End";

/// Why this process deletes a key it holds: watchers tell a holder's release from a lapsed
/// tenure cleared by its own holder, and both from someone else's delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The holder released the lock.
    Released,
    /// The tenure had already ended (its lease ran out, or an acquire was abandoned) and the
    /// holder clears its value rather than leave it to expire.
    Lapsed,
    /// An operator broke the lock ([`LockManager::force_release`](crate::LockManager)): not
    /// the holder's own end, so watchers and the holder see it as someone else's delete.
    Forced,
}

/// What the connected server can do, read once when the manager starts.
///
/// ```no_run
/// # fn f(m: nlock::LockManager) {
/// let caps = m.capabilities();
/// if !caps.per_lock_ttl {
///     eprintln!("nats-server {} has no per-lock TTL", caps.server_version);
/// }
/// println!("restart grace {:?}, expiry events {}", caps.restart_grace, caps.expiry_events);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The server's version string, e.g. `2.15.1`.
    pub server_version: String,
    /// Locks may carry their own TTL (`Nats-TTL`, server 2.11+).
    pub per_lock_ttl: bool,
    /// The server writes a marker when a lock expires, so waiters wake on expiry instead of
    /// at the next fallback poll (limit markers, server 2.11+).
    pub expiry_events: bool,
    /// How long after a bucket's data begins (a new or re-created bucket, a reset) no lock is
    /// granted: the longest lease of the data it replaced (the bucket's TTL) plus the allowed
    /// clock skew. `None` when [`ConfigBuilder::restart_grace`](crate::ConfigBuilder::restart_grace)
    /// is off. Whether a grace is in force now, and until when:
    /// [`LockManager::restart_grace`](crate::LockManager::restart_grace).
    pub restart_grace: Option<std::time::Duration>,
}

/// What one compare-and-set write can end in, from the lock's point of view.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The key's last revision was not the expected one (JetStream 10071): the write did not
    /// happen.
    Conflict,
    /// The write may or may not have happened: an ack timeout, a broken connection, or an
    /// answer that names no JetStream error.
    Unknown(Box<dyn std::error::Error + Send + Sync>),
    /// Nothing was written, and retrying later may work: no responders (no stream leader),
    /// or the leader refused for now (10163 after a leader change, 10164 while another write
    /// to the key is in flight).
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// The server refused the write for good (bad TTL, too large, ...): nothing was written.
    Rejected { code: u64, description: String },
    /// This user may not publish to `subject` (a permission violation): nothing was written.
    Denied { subject: String },
}

impl WriteError {
    /// Converts into the public error for `key`.
    pub(crate) fn into_lock_error(self, key: &str) -> LockError {
        match self {
            WriteError::Conflict => LockError::Busy {
                key: key.to_owned(),
                holder: None,
            },
            WriteError::Unknown(source) => LockError::OutcomeUnknown {
                key: key.to_owned(),
                source,
            },
            WriteError::Unavailable(source) => LockError::Unavailable { source },
            WriteError::Rejected { code, description } => LockError::Rejected {
                key: key.to_owned(),
                code,
                description,
            },
            WriteError::Denied { subject } => LockError::PermissionDenied { subject },
        }
    }
}

/// The kind of the last message on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A lock value.
    Put,
    /// A delete marker (release) or purge / expiry marker: the key is free.
    Gone,
}

/// The last message on a key, as a read sees it.
#[derive(Debug, Clone)]
pub(crate) struct KeyEvent {
    pub revision: u64,
    pub op: Op,
    pub value: Bytes,
}

/// One lock bucket on one connection.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    js: jetstream::Context,
    kv: kv::Store,
    subject_prefix: String,
    caps: Capabilities,
    /// The bucket's stream settings, to re-create it if it vanishes (a memory-storage server
    /// restarts without its streams).
    wanted: jetstream::stream::Config,
    /// The last answer of [`Store::bucket_missing`] and when it came. A std mutex: nothing
    /// awaits while holding it. Shared so that during a leader election, when every held
    /// lock's refresh finds no responders, they share one stream-info request per interval
    /// instead of sending one each.
    missing_check: Arc<Mutex<Option<(std::time::Instant, bool)>>>,
    /// Bounds reads that are not lock writes (a snapshot's deliveries).
    request_timeout: Duration,
    /// The connection's counters: `connects` changes when a server restart (or any break)
    /// made the client connect again, which is when the restart grace is checked anew.
    statistics: Arc<async_nats::Statistics>,
    /// The restart grace's shared state (`grace.rs`).
    grace: grace::Grace,
    /// Whether new tenures wait out the restart grace (`Config::restart_grace`).
    restart_grace: bool,
    /// This manager's TTL: the grace is at least this long.
    grace_ttl: Duration,
    /// The clock skew between hosts that the grace allows for (`Config::max_clock_skew`).
    clock_skew: Duration,
    /// The bucket's `max_age` as the server has it (zero: messages never age out).
    max_age: Duration,
    /// Whether a lost bucket may be re-created (`Config::create_bucket`).
    create_bucket: bool,
    /// Publishes the server refused on this connection (`denied.rs`).
    denials: Denials,
    /// The JetStream API prefix (`$JS.API`, or a domain's or an import's).
    api_prefix: String,
    /// The bucket's metrics, registered when it was opened.
    meter: Arc<Meter>,
}

/// A boxed client error as the public error: a refused permission
/// ([`denied::Refused`]) is [`LockError::PermissionDenied`], anything else unavailable.
fn unavailable_or_denied(source: async_nats::Error) -> LockError {
    match source.downcast::<denied::Refused>() {
        Ok(refused) => LockError::PermissionDenied { subject: refused.0 },
        Err(source) => LockError::Unavailable { source },
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> LockError {
    LockError::Unavailable {
        source: Box::new(e),
    }
}

impl Store {
    /// The bucket's metrics (`crate::telemetry`).
    pub(crate) fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// What the server and bucket support.
    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The bucket's `max_age` as the server has it: no key outlives its last write by more
    /// (zero: messages never age out).
    pub(crate) fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The bucket's `max_age` as the server has it (zero: messages never age out), when the
    /// server leaves no marker as it removes a key's last message
    /// (no limit markers: before 2.11, or a bucket without them). `None` when such removals
    /// are announced or never happen.
    pub(crate) fn silent_expiry(&self) -> Option<Duration> {
        (!self.caps.expiry_events && !self.max_age.is_zero()).then_some(self.max_age)
    }

    /// Writes `value` to `key` if its last revision is `expected` (0: no message at all).
    /// `ttl` is sent as `Nats-TTL` when given. Returns the new revision.
    pub(crate) async fn write(
        &self,
        key: &str,
        value: Bytes,
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<u64, WriteError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        if let Some(ttl) = ttl {
            headers.insert(
                async_nats::header::NATS_MESSAGE_TTL,
                format!("{}s", ttl.as_secs()).as_str(),
            );
        }
        self.publish(key, headers, value, "write").await
    }

    /// Writes a delete marker on `key` if its last revision is `expected`. Returns the
    /// marker's revision. The holder's record rides along in the marker's payload and `end`
    /// in a header (KV readers ignore both), so watchers can tell a holder's own release from
    /// a lapsed tenure and from someone else's delete.
    pub(crate) async fn delete(
        &self,
        key: &str,
        expected: u64,
        payload: Bytes,
        end: End,
    ) -> Result<u64, WriteError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(KV_OPERATION, "DEL");
        headers.insert(
            NLOCK_END,
            match end {
                End::Released => "released",
                End::Lapsed => "lapsed",
                End::Forced => "forced",
            },
        );
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        self.publish(key, headers, payload, "delete").await
    }

    async fn publish(
        &self,
        key: &str,
        headers: async_nats::HeaderMap,
        payload: Bytes,
        op: &'static str,
    ) -> Result<u64, WriteError> {
        let subject = format!("{}{}", self.subject_prefix, key);
        let send = async {
            match self
                .js
                .publish_with_headers(subject.clone(), headers, payload)
                .await
            {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            }
        };
        let ack = self
            .denials
            .refused(|s| s == subject, send)
            .await
            .map_err(|subject| WriteError::Denied { subject })?;
        let revision = ack.map(|a| a.sequence).map_err(classify_publish);
        if let Err(WriteError::Unknown(_)) = &revision {
            self.meter.unknown_outcome(op == "delete");
        }
        let revision = revision?;
        self.saw_revision(revision);
        Ok(revision)
    }

    /// Reads the last message on `key`. Used to choose an expected revision or to explain a
    /// conflict, never to decide who holds a lock: only a compare-and-set decides that.
    pub(crate) async fn read(&self, key: &str) -> Result<Option<KeyEvent>, WriteError> {
        let direct = format!(
            "{}.DIRECT.GET.{}.{}{key}",
            self.api_prefix, self.wanted.name, self.subject_prefix
        );
        let get = format!("{}.STREAM.MSG.GET.{}", self.api_prefix, self.wanted.name);
        let entry = self
            .denials
            .refused(|s| s == direct || s == get, self.kv.entry(key))
            .await
            .map_err(|subject| WriteError::Denied { subject })?;
        match entry {
            Ok(entry) => Ok(entry.map(to_event)),
            Err(e) if e.kind() == kv::EntryErrorKind::TimedOut => {
                Err(WriteError::Unknown(Box::new(e)))
            }
            Err(e) => Err(WriteError::Unavailable(Box::new(e))),
        }
    }

    /// What the message at `revision` did to its key (a release, someone else's delete, an
    /// expiry marker, ...): how the tenure before a new one ended.
    pub(crate) async fn op_at(&self, revision: u64) -> Result<ChangeOp, WriteError> {
        match self.kv.stream.get_raw_message(revision).await {
            Ok(msg) => Ok(changes::op_of(Some(&msg.headers))),
            Err(e) => Err(WriteError::Unavailable(Box::new(e))),
        }
    }
}

fn classify_publish(e: jetstream::context::PublishError) -> WriteError {
    use std::error::Error as _;
    match e.kind() {
        PublishErrorKind::WrongLastSequence => WriteError::Conflict,
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
            WriteError::Unknown(Box::new(e))
        }
        // No responders: the request reached no stream (no leader right now); nothing written.
        PublishErrorKind::StreamNotFound | PublishErrorKind::MaxAckPending => {
            WriteError::Unavailable(Box::new(e))
        }
        PublishErrorKind::MaxPayloadExceeded => WriteError::Rejected {
            code: 0,
            description: e.to_string(),
        },
        _ => {
            let js = e
                .source()
                .and_then(|s| s.downcast_ref::<jetstream::Error>());
            match js.map(|j| j.error_code()) {
                // After a stream leader change the new leader may not yet know the last
                // sequence per subject (10163), or another write to the key is in flight
                // (10164): the leader refused this write for now; nothing was written, and
                // the lock may still be ours.
                Some(ErrorCode::STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_NOT_READY)
                | Some(ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT) => {
                    WriteError::Unavailable(Box::new(e))
                }
                Some(code) => WriteError::Rejected {
                    code: code.0,
                    description: js.map(|j| j.to_string()).unwrap_or_default(),
                },
                None => WriteError::Unknown(Box::new(e)),
            }
        }
    }
}

fn to_event(entry: kv::Entry) -> KeyEvent {
    KeyEvent {
        revision: entry.revision,
        op: match entry.operation {
            kv::Operation::Put => Op::Put,
            kv::Operation::Delete | kv::Operation::Purge => Op::Gone,
        },
        value: entry.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JetStream API error as the server sends it in a publish ack, wrapped the way
    /// async-nats wraps an ack error it has no kind for.
    fn from_server(err_code: u64) -> jetstream::context::PublishError {
        let json = format!(r#"{{"code":503,"err_code":{err_code},"description":"test"}}"#);
        let api: jetstream::Error = serde_json::from_str(&json).unwrap();
        jetstream::context::PublishError::with_source(PublishErrorKind::Other, api)
    }

    #[test]
    fn a_write_refused_for_now_is_unavailable_not_unknown() {
        // 10163 (a new stream leader does not know the last sequence per subject yet) and
        // 10164 (another write to the key is in flight): refused, nothing written. Retried,
        // and never reported as an unknown outcome.
        for code in [10163, 10164] {
            let e = classify_publish(from_server(code));
            assert!(matches!(e, WriteError::Unavailable(_)), "{code}: {e:?}");
            let public = e.into_lock_error("k");
            assert_eq!(public.kind(), crate::ErrorKind::Unavailable, "{code}");
        }
        // The others keep their meaning: a conflict, a refusal for good, and a timeout.
        let conflict = jetstream::context::PublishError::new(PublishErrorKind::WrongLastSequence);
        assert!(matches!(classify_publish(conflict), WriteError::Conflict));
        assert!(matches!(
            classify_publish(from_server(10054)),
            WriteError::Rejected { code: 10054, .. }
        ));
        let timeout = jetstream::context::PublishError::new(PublishErrorKind::TimedOut);
        assert!(matches!(classify_publish(timeout), WriteError::Unknown(_)));
    }
}
