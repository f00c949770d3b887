//! The only module that talks to `async_nats`: bucket setup, compare-and-set writes, delete
//! markers, reads and watches of one lock bucket.
//!
//! Every write to a lock key carries `Nats-Expected-Last-Subject-Sequence`: there is no blind
//! put here. Writes are JetStream publishes rather than `kv.update`, because `kv.update`
//! cannot carry a `Nats-TTL` header and `kv.delete` does not return the delete marker's
//! revision, which a later acquire by this process uses to take the key in one round-trip.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, kv, ErrorCode};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::config::{BucketLayout, Config, JetStreamApi, Storage};
use crate::error::{ConfigError, LockError};

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
}

/// What the connected server can do, read once when the manager starts.
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
}

/// What one compare-and-set write can end in, from the lock's point of view.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The key's last revision was not the expected one (JetStream 10071): the write did not
    /// happen.
    Conflict,
    /// The write may or may not have happened: an ack timeout, a broken connection, or a
    /// retryable server answer after a leader change (10163, 10164).
    Unknown(Box<dyn std::error::Error + Send + Sync>),
    /// Nothing was written, and retrying later may work: no responders (no stream leader),
    /// or the leader refused for now (10163 after a leader change, 10164 while another write
    /// to the key is in flight).
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// The server refused the write for good (bad TTL, too large, ...): nothing was written.
    Rejected { code: u64, description: String },
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

/// The last message on a key, as seen by a read or a watch.
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
}

/// How long one answer of [`Store::bucket_missing`] is reused: short against a lease, long
/// against a burst of refreshes that all met "no responders" at once.
const MISSING_CHECK_REUSE: Duration = Duration::from_millis(250);

/// `(major, minor)` of a server version string like `2.15.1` or `v2.9.10-beta`.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> LockError {
    LockError::Unavailable {
        source: Box::new(e),
    }
}

/// The first JetStream request of a manager failed. No responders means no JetStream API at
/// `api_prefix` (a server whose INFO claims JetStream but whose account has none reachable,
/// or a domain that does not exist), as do the server's own "not enabled" answers; anything
/// else is the server being unreachable for now.
fn open_failed(e: jetstream::context::GetStreamError, api_prefix: String) -> LockError {
    use std::error::Error as _;
    let not_enabled = match e.kind() {
        jetstream::context::GetStreamErrorKind::JetStream(j) => matches!(
            j.error_code(),
            ErrorCode::JETSTREAM_NOT_ENABLED | ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT
        ),
        jetstream::context::GetStreamErrorKind::Request => e
            .source()
            .and_then(|s| s.downcast_ref::<jetstream::context::RequestError>())
            .is_some_and(|r| r.kind() == jetstream::context::RequestErrorKind::NoResponders),
        _ => false,
    };
    if not_enabled {
        LockError::JetStreamNotEnabled { api_prefix }
    } else {
        unavailable(e)
    }
}

impl Store {
    /// Connects to the bucket: creates it, or accepts an existing one whose settings match.
    pub(crate) async fn open(
        client: async_nats::Client,
        config: &Config,
    ) -> Result<Store, LockError> {
        let info = client.server_info();
        let version = info.version;
        let modern = major_minor(&version) >= (2, 11);
        let api_prefix = match &config.jetstream_api {
            None => "$JS.API".to_owned(),
            Some(JetStreamApi::Domain(domain)) => format!("$JS.{domain}.API"),
            Some(JetStreamApi::Prefix(prefix)) => prefix.clone(),
        };
        // The INFO of a server without -js says so: no need to wait for a request to find
        // out. Only when it counts: a domain or prefix may reach JetStream elsewhere (a leaf
        // node's hub), and a client still connecting has no INFO yet (empty server id).
        if config.jetstream_api.is_none() && !info.server_id.is_empty() && !info.jetstream {
            return Err(LockError::JetStreamNotEnabled { api_prefix });
        }
        // The request timeout bounds every JetStream request and publish ack; past it an
        // outcome is "unknown" and the caller's own deadline decides what happens next.
        let js = jetstream::ContextBuilder::new()
            .api_prefix(api_prefix.clone())
            .timeout(config.request_timeout)
            .build(client);
        let mut wanted = bucket_stream_config(config, modern);
        let kv = match js.get_stream(&wanted.name).await {
            Ok(stream) => {
                adopt_bucket(&js, config, &wanted, stream.cached_info().config.clone()).await?;
                js.get_key_value(&config.bucket)
                    .await
                    .map_err(unavailable)?
            }
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(js_err)
                    if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    create_bucket(&js, config, wanted.clone()).await?
                }
                _ => return Err(open_failed(e, api_prefix)),
            },
        };
        if config.upgrade_bucket && !modern {
            tracing::info!(
                bucket = %config.bucket,
                server = %version,
                "upgrade_bucket: the server has no per-message TTL or limit markers (2.11+); \
                 the bucket is left as it is"
            );
        }
        let cfg = &kv.stream.cached_info().config;
        // A bucket lost and re-created (memory storage on a restart) gets the layout it was
        // used with, so that it keeps matching these capabilities, and Go nlock processes
        // sharing it.
        wanted.allow_message_ttl = cfg.allow_message_ttl;
        wanted.subject_delete_marker_ttl = cfg.subject_delete_marker_ttl;
        let caps = Capabilities {
            server_version: version,
            per_lock_ttl: modern && cfg.allow_message_ttl,
            expiry_events: modern && cfg.subject_delete_marker_ttl.is_some(),
        };
        Ok(Store {
            js,
            kv,
            subject_prefix: format!("$KV.{}.", config.bucket),
            caps,
            wanted,
            missing_check: Arc::default(),
            request_timeout: config.request_timeout,
        })
    }

    /// What the server and bucket support.
    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether the server says the bucket's stream does not exist. Only that answer counts:
    /// a timeout or a leaderless cluster is not "missing".
    pub(crate) async fn bucket_missing(&self) -> bool {
        let recent = self
            .missing_check
            .lock()
            .ok()
            .and_then(|c| *c)
            .filter(|(at, _)| at.elapsed() < MISSING_CHECK_REUSE);
        if let Some((_, missing)) = recent {
            return missing;
        }
        let missing = match self.js.get_stream(&self.wanted.name).await {
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND
            ),
        };
        if let Ok(mut c) = self.missing_check.lock() {
            *c = Some((std::time::Instant::now(), missing));
        }
        missing
    }

    /// Re-creates the bucket if it is missing (after a memory-storage server restart), with
    /// the settings it was opened with and a first sequence above every revision the lost
    /// bucket can have used. Returns whether the bucket exists again.
    pub(crate) async fn recreate_if_missing(&self) -> bool {
        if !self.bucket_missing().await {
            return false;
        }
        let mut wanted = self.wanted.clone();
        wanted.first_sequence = first_sequence();
        let created = self.js.create_stream(wanted).await;
        if let Ok(mut c) = self.missing_check.lock() {
            *c = None;
        }
        tracing::warn!(
            bucket = %self.wanted.name,
            ok = created.is_ok(),
            "the lock bucket was missing (a memory-storage server restart?); re-created it"
        );
        created.is_ok()
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
        self.publish(key, headers, value).await
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
            },
        );
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        self.publish(key, headers, payload).await
    }

    async fn publish(
        &self,
        key: &str,
        headers: async_nats::HeaderMap,
        payload: Bytes,
    ) -> Result<u64, WriteError> {
        let subject = format!("{}{}", self.subject_prefix, key);
        let ack = match self
            .js
            .publish_with_headers(subject, headers, payload)
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        ack.map(|a| a.sequence).map_err(classify_publish)
    }

    /// Reads the last message on `key`. Used to choose an expected revision or to explain a
    /// conflict, never to decide who holds a lock: only a compare-and-set decides that.
    pub(crate) async fn read(&self, key: &str) -> Result<Option<KeyEvent>, WriteError> {
        match self.kv.entry(key).await {
            Ok(entry) => Ok(entry.map(to_event)),
            Err(e) if e.kind() == kv::EntryErrorKind::TimedOut => {
                Err(WriteError::Unknown(Box::new(e)))
            }
            Err(e) => Err(WriteError::Unavailable(Box::new(e))),
        }
    }

    /// Watches `key`: first its last message (if any), then every change.
    pub(crate) async fn watch(&self, key: &str) -> Result<KeyWatch, WriteError> {
        // With history: the key's current last message comes first, so a delete marker
        // written before the watch started still wakes the waiter.
        match self.kv.watch_with_history(key).await {
            Ok(inner) => Ok(KeyWatch { inner }),
            Err(e) => Err(WriteError::Unavailable(Box::new(e))),
        }
    }
}

/// What a change to a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeOp {
    /// A value was written (an acquire, a refresh, or anyone's put).
    Put,
    /// A delete marker by someone else than the holder.
    Delete,
    /// A holder's own delete marker (see [`End`]).
    Ended(End),
    /// A purge by a client (`KV-Operation: PURGE`).
    Purge,
    /// The server removed the key's last message at its age limit and left a marker
    /// (limit markers, server 2.11+; without them an expiry is silent).
    Expired,
}

/// One change to a key of the bucket that landed in the stream.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub key: String,
    pub revision: u64,
    pub op: ChangeOp,
    pub value: Bytes,
    /// When the server stored it, in milliseconds since the Unix epoch (server clock), when
    /// the delivery said.
    pub stored_at_ms: Option<u64>,
}

/// Where a stream of changes starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangesFrom {
    /// Only changes from now on.
    Now,
    /// Each key's last message first, then every change.
    Current,
}

/// A never-ending stream of [`Change`]s (see [`Store::changes`]).
pub(crate) type Changes = Pin<Box<dyn Stream<Item = Change> + Send>>;

/// How long a broken change stream waits before it opens again: a memory-storage server
/// restart or a leader change takes about this long to settle, and a lock that changes in
/// the gap is still checked at its next refresh.
const CHANGES_REOPEN: Duration = Duration::from_millis(250);

impl Store {
    /// Every change that lands on the keys matching `filter` (a key or a wildcard such as
    /// `>`), from one JetStream ordered consumer: one per caller, not one per lock. The
    /// stream never ends: when the consumer breaks (a restart, a lost bucket) it is opened
    /// again after [`CHANGES_REOPEN`], from the revision after the last one delivered.
    pub(crate) fn changes(&self, filter: &str, from: ChangesFrom) -> Changes {
        struct State {
            store: Store,
            subject: String,
            from: ChangesFrom,
            last: Option<u64>,
            live: Option<jetstream::consumer::push::Ordered>,
        }
        let state = State {
            store: self.clone(),
            subject: format!("{}{}", self.subject_prefix, filter),
            from,
            last: None,
            live: None,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            loop {
                let Some(live) = st.live.as_mut() else {
                    let policy = match (st.last, st.from) {
                        (Some(last), _) => jetstream::consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: last + 1,
                        },
                        (None, ChangesFrom::Now) => jetstream::consumer::DeliverPolicy::New,
                        (None, ChangesFrom::Current) => {
                            jetstream::consumer::DeliverPolicy::LastPerSubject
                        }
                    };
                    match st.store.open_changes(&st.subject, policy).await {
                        Ok(live) => st.live = Some(live),
                        Err(e) => {
                            tracing::debug!(error = %e, "change stream not open; retrying");
                            tokio::time::sleep(CHANGES_REOPEN).await;
                        }
                    }
                    continue;
                };
                match live.next().await {
                    Some(Ok(msg)) => {
                        if let Some(change) = st.store.to_change(&msg) {
                            st.last = Some(change.revision);
                            return Some((change, st));
                        }
                    }
                    Some(Err(_)) | None => {
                        st.live = None;
                        tokio::time::sleep(CHANGES_REOPEN).await;
                    }
                }
            }
        }))
    }

    async fn open_changes(
        &self,
        subject: &str,
        deliver_policy: jetstream::consumer::DeliverPolicy,
    ) -> Result<jetstream::consumer::push::Ordered, async_nats::Error> {
        let consumer = self
            .kv
            .stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                description: Some("nlock change stream".to_owned()),
                filter_subject: subject.to_owned(),
                replay_policy: jetstream::consumer::ReplayPolicy::Instant,
                deliver_policy,
                ..Default::default()
            })
            .await?;
        Ok(consumer.messages().await?)
    }

    fn to_change(&self, msg: &jetstream::Message) -> Option<Change> {
        let key = msg.subject.strip_prefix(self.subject_prefix.as_str())?;
        let info = msg.info().ok()?;
        let headers = msg.headers.as_ref();
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        let op = match (header(KV_OPERATION), header("Nats-Marker-Reason")) {
            (Some("DEL"), _) => match header(NLOCK_END) {
                Some("released") => ChangeOp::Ended(End::Released),
                Some("lapsed") => ChangeOp::Ended(End::Lapsed),
                _ => ChangeOp::Delete,
            },
            (Some("PURGE"), _) => ChangeOp::Purge,
            (_, Some("MaxAge")) => ChangeOp::Expired,
            (_, Some("Remove")) => ChangeOp::Delete,
            (_, Some(_)) => ChangeOp::Purge,
            _ => ChangeOp::Put,
        };
        Some(Change {
            key: key.to_owned(),
            revision: info.stream_sequence,
            op,
            value: msg.payload.clone(),
            stored_at_ms: msg.reply.as_deref().and_then(ack_timestamp_ms),
        })
    }
}

impl Store {
    /// The last change of every key matching `filter`, read once from a snapshot consumer:
    /// who holds what right now, as far as this (possibly follower-served) read can tell.
    /// For display and observers only, never to decide ownership.
    pub(crate) async fn snapshot(&self, filter: &str) -> Result<Vec<Change>, LockError> {
        let subject = format!("{}{}", self.subject_prefix, filter);
        let consumer = self
            .kv
            .stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                description: Some("nlock snapshot".to_owned()),
                filter_subject: subject,
                replay_policy: jetstream::consumer::ReplayPolicy::Instant,
                deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let mut changes = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(changes);
        }
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        loop {
            // Each message is due at once; the request timeout bounds a stalled delivery.
            let next = tokio::time::timeout(self.request_timeout, messages.next()).await;
            let msg = match next {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => return Err(unavailable(e)),
                Ok(None) => return Ok(changes),
                Err(e) => return Err(unavailable(e)),
            };
            let pending = msg.info().map(|i| i.pending).unwrap_or(0);
            changes.extend(self.to_change(&msg));
            if pending == 0 {
                return Ok(changes);
            }
        }
    }
}

/// The server's timestamp in a JetStream ack subject, in milliseconds since the epoch:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<nanos>.<pending>`, or the longer
/// form with domain and account hash in front (ADR-15), where it is the third from last
/// token but one.
fn ack_timestamp_ms(reply: &str) -> Option<u64> {
    let tokens: Vec<&str> = reply.split('.').collect();
    let nanos = match tokens.len() {
        9 => tokens[7],
        n if n >= 12 => tokens[n - 3],
        _ => return None,
    };
    nanos.parse::<u64>().ok().map(|n| n / 1_000_000)
}

/// The stream behind a lock bucket, as NATS KV lays it out (ADR-8), with history 1 and
/// `max_age` = TTL. Built here rather than by `create_key_value`, because that first queries
/// the account, and async-nats 0.51 cannot parse the account info of servers before 2.10.
///
/// With [`BucketLayout::GoCompatible`] (or a server before 2.11) it is the stream Go nlock's
/// `CreateOrUpdateKeyValue` makes, but for the first sequence. Go nlock's start-up update of
/// the bucket succeeds all the same and drops it from the config, which changes nothing: a
/// first sequence only acts when a stream is created (`tests/it/go_interop.rs` checks).
fn bucket_stream_config(config: &Config, modern: bool) -> jetstream::stream::Config {
    let full = modern && config.bucket_layout == BucketLayout::Full;
    jetstream::stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: 1,
        max_age: config.ttl,
        storage: match config.storage {
            Storage::Memory => jetstream::stream::StorageType::Memory,
            Storage::File => jetstream::stream::StorageType::File,
        },
        num_replicas: config.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        // Per-message TTL and limit markers (2.11+). A marker lives as long as a lock would:
        // long enough for any poller to see it.
        allow_message_ttl: full,
        subject_delete_marker_ttl: full.then_some(config.ttl),
        first_sequence: first_sequence(),
        ..Default::default()
    }
}

/// The first revision of a new bucket: this host's clock in microseconds since the epoch.
///
/// Revisions are fencing tokens, and a bucket that is lost (memory storage on a restart) and
/// created again would otherwise count from 1 again: old holders' revisions would point into
/// the new bucket, and tokens would go backwards. Starting at the clock keeps every revision
/// of a re-created bucket above those of the lost one, as long as the lost one made fewer
/// writes than microseconds passed since it was created (and clocks agree to within that).
fn first_sequence() -> Option<u64> {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    (micros > 0).then_some(micros)
}

async fn create_bucket(
    js: &jetstream::Context,
    config: &Config,
    wanted: jetstream::stream::Config,
) -> Result<kv::Store, LockError> {
    let bucket = &config.bucket;
    match js.create_stream(wanted.clone()).await {
        Ok(_) => js.get_key_value(bucket).await.map_err(unavailable),
        Err(e) => {
            // Two managers may race to create the bucket; the loser re-reads and compares.
            if let Ok(stream) = js.get_stream(&wanted.name).await {
                adopt_bucket(js, config, &wanted, stream.cached_info().config.clone()).await?;
                return js.get_key_value(bucket).await.map_err(unavailable);
            }
            Err(bucket_rejected(bucket, e))
        }
    }
}

/// Accepts an existing bucket whose safety settings match `wanted`. One that lacks
/// per-message TTL or limit markers (made by a server before 2.11, or by Go nlock) is used
/// without them, with one warning, or upgraded when the config asks for it.
async fn adopt_bucket(
    js: &jetstream::Context,
    config: &Config,
    wanted: &jetstream::stream::Config,
    found: jetstream::stream::Config,
) -> Result<(), LockError> {
    let missing = check_matches(&config.bucket, wanted, &found)?;
    let Some(what) = missing.describe() else {
        return Ok(());
    };
    if !config.upgrade_bucket {
        tracing::warn!(
            bucket = %config.bucket,
            missing = what,
            "the lock bucket has no {what} (made by a nats-server before 2.11 or by Go nlock): \
             no per-lock TTL, and waiters notice an expired lock only at their next fallback \
             poll. To upgrade it, start one manager with `upgrade_bucket(true)` once no Go \
             nlock process uses the bucket (Go nlock cannot start on an upgraded one)"
        );
        return Ok(());
    }
    // Everything else as found, so only these two settings change. The server refuses to
    // turn per-message TTL off again, so this cannot be undone.
    let mut upgraded = found;
    upgraded.allow_message_ttl = true;
    upgraded.subject_delete_marker_ttl = upgraded
        .subject_delete_marker_ttl
        .or(wanted.subject_delete_marker_ttl);
    js.update_stream(&upgraded)
        .await
        .map_err(|e| bucket_rejected(&config.bucket, e))?;
    tracing::info!(
        bucket = %config.bucket,
        added = what,
        "upgraded the lock bucket (upgrade_bucket); Go nlock can no longer start on it"
    );
    Ok(())
}

/// What an existing bucket lacks of the layout asked for, among the settings whose lack is
/// safe: without them nlock works as on a server before 2.11.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Missing {
    message_ttl: bool,
    limit_markers: bool,
}

impl Missing {
    /// The missing features in words, or `None` when nothing is missing.
    fn describe(self) -> Option<&'static str> {
        match (self.message_ttl, self.limit_markers) {
            (true, true) => Some("per-message TTL and limit markers"),
            (true, false) => Some("per-message TTL"),
            (false, true) => Some("limit markers"),
            (false, false) => None,
        }
    }
}

/// A bucket the server refused to create (too many replicas for the cluster, for one) is a
/// configuration problem; anything else means the server could not be asked.
fn bucket_rejected(bucket: &str, e: jetstream::context::CreateStreamError) -> LockError {
    match e.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(j) => LockError::BucketRejected {
            bucket: bucket.to_owned(),
            code: j.error_code().0,
            description: j.to_string(),
        },
        _ => unavailable(e),
    }
}

/// Compares the settings that matter for safety, and says which optional features the
/// existing bucket lacks.
fn check_matches(
    bucket: &str,
    wanted: &jetstream::stream::Config,
    found: &jetstream::stream::Config,
) -> Result<Missing, LockError> {
    let mismatch = |setting: &'static str, w: String, f: String| {
        Err(LockError::InvalidConfig(ConfigError::BucketMismatch {
            bucket: bucket.to_owned(),
            setting,
            wanted: w,
            found: f,
        }))
    };
    if found.max_age != wanted.max_age {
        return mismatch(
            "ttl (max_age)",
            format!("{:?}", wanted.max_age),
            format!("{:?}", found.max_age),
        );
    }
    if found.max_messages_per_subject != wanted.max_messages_per_subject {
        return mismatch(
            "history",
            wanted.max_messages_per_subject.to_string(),
            found.max_messages_per_subject.to_string(),
        );
    }
    if found.storage != wanted.storage {
        return mismatch(
            "storage",
            format!("{:?}", wanted.storage),
            format!("{:?}", found.storage),
        );
    }
    if found.num_replicas != wanted.num_replicas {
        return mismatch(
            "replicas",
            wanted.num_replicas.to_string(),
            found.num_replicas.to_string(),
        );
    }
    if found.discard != wanted.discard || !found.deny_delete || !found.allow_direct {
        return mismatch(
            "KV layout (discard new, deny delete, direct get)",
            "a NATS KV bucket".into(),
            format!(
                "discard {:?}, deny_delete {}, allow_direct {}",
                found.discard, found.deny_delete, found.allow_direct
            ),
        );
    }
    // Per-message TTL and limit markers only add features, so a bucket without them is
    // used without them. One with them where none are wanted (`BucketLayout::GoCompatible`)
    // is refused: Go nlock's start-up update could not turn per-message TTL off again.
    if found.allow_message_ttl && !wanted.allow_message_ttl {
        return mismatch(
            "per-message TTL (Go nlock cannot start on such a bucket)",
            "false".into(),
            "true".into(),
        );
    }
    let markers = found.subject_delete_marker_ttl;
    if markers.is_some() && wanted.subject_delete_marker_ttl.is_none() {
        return mismatch(
            "limit markers",
            format!("{:?}", wanted.subject_delete_marker_ttl),
            format!("{markers:?}"),
        );
    }
    Ok(Missing {
        message_ttl: wanted.allow_message_ttl && !found.allow_message_ttl,
        limit_markers: wanted.subject_delete_marker_ttl.is_some() && markers.is_none(),
    })
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

/// A stream of [`KeyEvent`]s for one key. Ends when the watch breaks; the caller then falls
/// back to polling.
pub(crate) struct KeyWatch {
    inner: kv::Watch,
}

impl Stream for KeyWatch {
    type Item = KeyEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<KeyEvent>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(entry))) => Poll::Ready(Some(to_event(entry))),
            // A broken watch ends the stream: the waiter's fallback poll takes over.
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BucketLayout;

    fn layout(layout: BucketLayout, modern: bool) -> jetstream::stream::Config {
        let config = Config::builder().bucket_layout(layout).build().unwrap();
        bucket_stream_config(&config, modern)
    }

    #[test]
    fn a_bucket_without_ttl_and_markers_is_used_without_them() {
        let full = layout(BucketLayout::Full, true);
        let go = layout(BucketLayout::GoCompatible, true);
        assert!(full.allow_message_ttl && full.subject_delete_marker_ttl.is_some());
        assert!(!go.allow_message_ttl && go.subject_delete_marker_ttl.is_none());
        let missing = check_matches("b", &full, &go).unwrap();
        assert_eq!(
            missing.describe(),
            Some("per-message TTL and limit markers")
        );
        let no_markers = jetstream::stream::Config {
            subject_delete_marker_ttl: None,
            ..full.clone()
        };
        let missing = check_matches("b", &full, &no_markers).unwrap();
        assert_eq!(missing.describe(), Some("limit markers"));
        assert_eq!(check_matches("b", &full, &full).unwrap().describe(), None);
        assert_eq!(check_matches("b", &go, &go).unwrap().describe(), None);
        // Before 2.11 both layouts are Go's, and nothing is missing.
        let old = layout(BucketLayout::Full, false);
        assert!(!old.allow_message_ttl && old.subject_delete_marker_ttl.is_none());
        assert_eq!(check_matches("b", &old, &go).unwrap().describe(), None);
    }

    #[test]
    fn safety_settings_and_extra_features_are_still_mismatches() {
        let full = layout(BucketLayout::Full, true);
        let go = layout(BucketLayout::GoCompatible, true);
        let setting = |wanted, found| match check_matches("b", wanted, found) {
            Err(LockError::InvalidConfig(ConfigError::BucketMismatch { setting, .. })) => setting,
            other => panic!("expected a mismatch, got {other:?}"),
        };
        assert!(setting(&go, &full).starts_with("per-message TTL"));
        let other_ttl = jetstream::stream::Config {
            max_age: Duration::from_secs(5),
            ..go.clone()
        };
        assert_eq!(setting(&full, &other_ttl), "ttl (max_age)");
        let history = jetstream::stream::Config {
            max_messages_per_subject: 5,
            ..go.clone()
        };
        assert_eq!(setting(&full, &history), "history");
        let file = jetstream::stream::Config {
            storage: jetstream::stream::StorageType::File,
            ..go.clone()
        };
        assert_eq!(setting(&full, &file), "storage");
    }

    #[test]
    fn parses_server_versions() {
        assert_eq!(major_minor("2.15.1"), (2, 15));
        assert_eq!(major_minor("2.9.10"), (2, 9));
        assert_eq!(major_minor("v2.11.0-RC.1"), (2, 11));
        assert!(major_minor("2.9.10") < (2, 11));
        assert_eq!(major_minor("garbage"), (0, 0));
    }
}
