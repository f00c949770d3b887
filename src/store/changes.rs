//! The bucket's changes as a stream (`changes`) and as a one-off snapshot of each key's last
//! change (`snapshot`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::consumers::ConsumerGuard;
use super::denied::Refused;
use super::{unavailable, unavailable_or_denied, End, Store, KV_OPERATION, NLOCK_END};
use crate::error::LockError;

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

/// What a message of the bucket's stream did to its key, from its headers.
pub(crate) fn op_of(headers: Option<&async_nats::HeaderMap>) -> ChangeOp {
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    match (header(KV_OPERATION), header("Nats-Marker-Reason")) {
        (Some("DEL"), _) => match header(NLOCK_END) {
            Some("released") => ChangeOp::Ended(End::Released),
            Some("lapsed") => ChangeOp::Ended(End::Lapsed),
            // Anyone else's delete, an operator's break ("forced") included.
            _ => ChangeOp::Delete,
        },
        (Some("PURGE"), _) => ChangeOp::Purge,
        (_, Some("MaxAge")) => ChangeOp::Expired,
        (_, Some("Remove")) => ChangeOp::Delete,
        (_, Some(_)) => ChangeOp::Purge,
        _ => ChangeOp::Put,
    }
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

/// Ends a change stream and deletes its consumer, waiting for the server's answer (see
/// [`Store::changes_closable`]).
#[derive(Clone)]
pub(crate) struct ChangesCloser(Arc<Mutex<Current>>);

/// A change stream's current consumer. A std mutex: nothing awaits while holding it.
#[derive(Default)]
struct Current {
    guard: Option<ConsumerGuard>,
    /// Set by [`ChangesCloser::close`]: the stream ends and opens no new consumer.
    closed: bool,
}

impl Current {
    /// Sets (or clears) the current consumer; a replaced one is deleted on a task. Returns
    /// false, and deletes `guard`, if the stream was closed meanwhile.
    fn set(slot: &Mutex<Current>, guard: Option<ConsumerGuard>) -> bool {
        let Ok(mut current) = slot.lock() else {
            return false;
        };
        if current.closed {
            drop(current);
            drop(guard);
            return false;
        }
        current.guard = guard;
        true
    }
}

impl ChangesCloser {
    /// Ends the stream (its next poll ends it) and deletes its consumer now.
    pub(crate) async fn close(&self) {
        let guard = match self.0.lock() {
            Ok(mut current) => {
                current.closed = true;
                current.guard.take()
            }
            Err(_) => None,
        };
        if let Some(guard) = guard {
            guard.delete_now().await;
        }
    }
}

impl Store {
    /// [`Store::changes`], with a handle that ends the stream and deletes its consumer
    /// awaiting the server's answer, for a caller that must leave nothing behind before it
    /// returns (the manager's shutdown).
    pub(crate) async fn changes_closable(
        &self,
        filter: &str,
        from: ChangesFrom,
    ) -> Result<(Changes, ChangesCloser), LockError> {
        let current = Arc::new(Mutex::new(Current::default()));
        let changes = self.open_stream(filter, from, current.clone()).await?;
        Ok((changes, ChangesCloser(current)))
    }

    /// Every change that lands on the keys matching `filter` (a key or a wildcard such as
    /// `>`), from one JetStream ordered consumer: one per caller, not one per lock. The
    /// stream never ends: when the consumer breaks (a restart, a lost bucket) it is opened
    /// again after [`CHANGES_REOPEN`], from the revision after the last one delivered. The
    /// first consumer is created before this returns, so changes from then on are not missed;
    /// failing that is an error.
    pub(crate) async fn changes(
        &self,
        filter: &str,
        from: ChangesFrom,
    ) -> Result<Changes, LockError> {
        self.open_stream(filter, from, Arc::default()).await
    }

    async fn open_stream(
        &self,
        filter: &str,
        from: ChangesFrom,
        current: Arc<Mutex<Current>>,
    ) -> Result<Changes, LockError> {
        struct State {
            store: Store,
            subject: String,
            from: ChangesFrom,
            last: Option<u64>,
            live: Option<jetstream::consumer::push::Ordered>,
            /// The live consumer's guard: replacing it (a break) or dropping the last
            /// reference (the stream's drop, and its closer's) deletes the consumer.
            current: Arc<Mutex<Current>>,
        }
        let subject = format!("{}{}", self.subject_prefix, filter);
        let first = match from {
            ChangesFrom::Now => jetstream::consumer::DeliverPolicy::New,
            ChangesFrom::Current => jetstream::consumer::DeliverPolicy::LastPerSubject,
        };
        let (live, guard) = self
            .open_changes(&subject, first)
            .await
            .map_err(unavailable_or_denied)?;
        Current::set(&current, Some(guard));
        let state = State {
            store: self.clone(),
            subject,
            from,
            last: None,
            live: Some(live),
            current,
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut st| async move {
                loop {
                    if st.current.lock().map_or(true, |c| c.closed) {
                        return None;
                    }
                    let Some(live) = st.live.as_mut() else {
                        let policy = match (st.last, st.from) {
                            (Some(last), _) => {
                                jetstream::consumer::DeliverPolicy::ByStartSequence {
                                    start_sequence: last + 1,
                                }
                            }
                            (None, ChangesFrom::Now) => jetstream::consumer::DeliverPolicy::New,
                            (None, ChangesFrom::Current) => {
                                jetstream::consumer::DeliverPolicy::LastPerSubject
                            }
                        };
                        match st.store.open_changes(&st.subject, policy).await {
                            Ok((live, guard)) => {
                                if !Current::set(&st.current, Some(guard)) {
                                    return None;
                                }
                                st.live = Some(live);
                            }
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
                            Current::set(&st.current, None);
                            tokio::time::sleep(CHANGES_REOPEN).await;
                        }
                    }
                }
            },
        )))
    }

    async fn open_changes(
        &self,
        subject: &str,
        deliver_policy: jetstream::consumer::DeliverPolicy,
    ) -> Result<(jetstream::consumer::push::Ordered, ConsumerGuard), async_nats::Error> {
        let (consumer, guard) = self
            .ordered_consumer(subject, deliver_policy, "nlock change stream")
            .await?;
        Ok((consumer.messages().await?, guard))
    }

    /// An ordered push consumer on the bucket's stream: no acks, recreated by the client
    /// from the next sequence if it breaks, and deleted when its guard is dropped.
    async fn ordered_consumer(
        &self,
        subject: &str,
        deliver_policy: jetstream::consumer::DeliverPolicy,
        description: &str,
    ) -> Result<
        (
            jetstream::consumer::Consumer<jetstream::consumer::push::OrderedConfig>,
            ConsumerGuard,
        ),
        async_nats::Error,
    > {
        // Made first: a create whose answer is lost may still have made the consumer.
        let guard = ConsumerGuard::new(
            self.js.clone(),
            self.kv.stream_name.clone(),
            self.meter.clone(),
        );
        let create = format!(
            "{}.CONSUMER.CREATE.{}.{}",
            self.api_prefix,
            self.kv.stream_name,
            guard.name()
        );
        let ours = |s: &str| s == create || s.starts_with(&format!("{create}."));
        let created = self
            .kv
            .stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                name: Some(guard.name().to_owned()),
                deliver_subject: self.js.client().new_inbox(),
                description: Some(description.to_owned()),
                filter_subject: subject.to_owned(),
                replay_policy: jetstream::consumer::ReplayPolicy::Instant,
                deliver_policy,
                ..Default::default()
            });
        let consumer = self
            .denials
            .refused(ours, created)
            .await
            .map_err(Refused)??;
        Ok((consumer, guard))
    }

    fn to_change(&self, msg: &jetstream::Message) -> Option<Change> {
        let key = msg.subject.strip_prefix(self.subject_prefix.as_str())?;
        let info = msg.info().ok()?;
        let op = op_of(msg.headers.as_ref());
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
        // A key written while the snapshot consumer starts can leave it waiting for a message
        // it counted but no longer has (seen on 2.9 servers, about once in 200 reads under
        // writes): such a read times out, and a fresh snapshot answers.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.snapshot_once(filter).await {
                Err(SnapshotError::Stalled(_)) if attempt < SNAPSHOT_ATTEMPTS => continue,
                Err(SnapshotError::Stalled(e)) | Err(SnapshotError::Failed(e)) => return Err(e),
                Ok(changes) => return Ok(changes),
            }
        }
    }

    async fn snapshot_once(&self, filter: &str) -> Result<Vec<Change>, SnapshotError> {
        use SnapshotError::{Failed, Stalled};
        let subject = format!("{}{}", self.subject_prefix, filter);
        let policy = jetstream::consumer::DeliverPolicy::LastPerSubject;
        // Deleted before an answer returns; on an error, on a task when the guard drops.
        let (consumer, guard) = self
            .ordered_consumer(&subject, policy, "nlock snapshot")
            .await
            .map_err(|source| Failed(unavailable_or_denied(source)))?;
        let mut changes = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            drop(consumer);
            guard.delete_now().await;
            return Ok(changes);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Failed(unavailable(e)))?;
        loop {
            // Each message is due at once; the request timeout bounds a stalled delivery.
            let next = tokio::time::timeout(self.request_timeout, messages.next()).await;
            let msg = match next {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => return Err(Failed(unavailable(e))),
                Ok(None) => return Ok(changes),
                Err(e) => return Err(Stalled(unavailable(e))),
            };
            let pending = msg.info().map(|i| i.pending).unwrap_or(0);
            changes.extend(self.to_change(&msg));
            if pending == 0 {
                drop(messages);
                guard.delete_now().await;
                return Ok(changes);
            }
        }
    }
}

/// How many times a stalled snapshot is taken again before its timeout is the answer.
const SNAPSHOT_ATTEMPTS: u32 = 3;

/// Why one snapshot attempt failed: a delivery that stalled (worth another attempt), or
/// anything else.
enum SnapshotError {
    Stalled(LockError),
    Failed(LockError),
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
