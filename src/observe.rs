//! Looking at the bucket as a whole, from any process: who holds which key now
//! ([`KeyHolder`]), and a stream of what happens to keys ([`LockEvent`]). For observers,
//! admin pages and command lines; none of it decides who holds a lock (only a
//! compare-and-set does).

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::holder::Holder;
use crate::store::{Change, ChangeOp, Changes, End};

/// A key that is held, as the bucket shows it.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// for h in m.holders().await? {
///     println!("{} token {} revision {} by {}", h.key, h.token, h.revision, h.holder);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyHolder {
    /// The key.
    pub key: String,
    /// The tenure's fencing token.
    pub token: u64,
    /// The key's current revision (it moves with every refresh).
    pub revision: u64,
    /// The holder's record. A value not written by nlock (a Go nlock client's random id,
    /// say) is a [`Holder::foreign`] record holding the raw value.
    pub holder: Holder,
    /// When the server stored the current revision (server clock, ms since the Unix epoch),
    /// if known.
    pub stored_at_ms: Option<u64>,
}

/// What happened to a key.
///
/// ```
/// let kind = nlock::LockEventKind::Released;
/// assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.as_str()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LockEventKind {
    /// A new tenure began (its first write; the token is that write's revision).
    Acquired,
    /// The holder refreshed its lease.
    Refreshed,
    /// The holder released the lock (its own delete, which names it).
    Released,
    /// Someone other than the holder deleted or purged the key.
    Deleted,
    /// The tenure lapsed: nobody refreshed it within its TTL. Told when the server expires
    /// the key (limit markers, nats-server 2.11+) or when the holder, past its lease
    /// deadline, clears its own value first.
    Expired,
}

impl LockEventKind {
    /// The kind's name as its JSON has it (`acquired`, `refreshed`, `released`, `deleted`,
    /// `expired`): for lines a person reads.
    ///
    /// ```
    /// assert_eq!(nlock::LockEventKind::Released.as_str(), "released");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            LockEventKind::Acquired => "acquired",
            LockEventKind::Refreshed => "refreshed",
            LockEventKind::Released => "released",
            LockEventKind::Deleted => "deleted",
            LockEventKind::Expired => "expired",
        }
    }
}

/// One change to a key, as every process sees it.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use futures::StreamExt;
/// let mut events = m.events("jobs.>").await?;
/// while let Some(e) = events.next().await {
///     if e.kind == nlock::LockEventKind::Expired {
///         eprintln!("{} expired at revision {} (holder {:?})", e.key, e.revision, e.holder);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LockEvent {
    /// The key.
    pub key: String,
    /// What happened.
    pub kind: LockEventKind,
    /// The revision of this change.
    pub revision: u64,
    /// The fencing token of the tenure it belongs to, when known (always for `Acquired`,
    /// `Refreshed` and `Released` written by nlock).
    pub token: Option<u64>,
    /// The holder's record, when the change carries one (a foreign record for a value not
    /// written by nlock).
    pub holder: Option<Holder>,
    /// When the server stored the change (server clock, ms since the Unix epoch), if known.
    pub stored_at_ms: Option<u64>,
}

pub(crate) fn key_holder(change: Change) -> Option<KeyHolder> {
    if change.op != ChangeOp::Put || crate::key::is_line_entry(&change.key) {
        return None;
    }
    let holder = Holder::decode(&change.value).unwrap_or_else(|| Holder::foreign(b""));
    Some(KeyHolder {
        token: holder.token.unwrap_or(change.revision),
        key: change.key,
        revision: change.revision,
        holder,
        stored_at_ms: change.stored_at_ms,
    })
}

/// A stream of [`LockEvent`]s, from [`LockManager::events`](crate::LockManager::events).
/// It does not end by itself: it reopens after a broken connection or a lost bucket, from the
/// revision after the last event (changes removed meanwhile are not replayed). Drop it to
/// stop watching: its server consumer is then deleted.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use futures::StreamExt;
/// let events: nlock::LockEvents = m.events(">").await?;
/// let mut events = events.filter(|e| std::future::ready(e.kind == nlock::LockEventKind::Released));
/// while let Some(e) = events.next().await {
///     println!("{} released at revision {}", e.key, e.revision);
/// }
/// # Ok(()) }
/// ```
pub struct LockEvents {
    changes: Changes,
    /// Per key, what the last change seen left, and when it was seen. It tells a refresh of a
    /// foreign value from a new tenure, and a marker on a key that was already free (the
    /// server's age-limit marker for an old delete marker) from an end. A key is forgotten
    /// when nothing more can come for it: after the server's age-limit marker (the last
    /// message the server writes for a key), or, where the server removes a key's last
    /// message without a marker, once that message is older than the bucket's `max_age`.
    last: HashMap<String, Seen>,
    /// The bucket's `max_age` when the server removes a key's last message silently.
    silent_expiry: Option<Duration>,
    /// When to forget silently expired keys next.
    next_sweep: Instant,
}

/// What the last change of a key left.
#[derive(Debug)]
struct Seen {
    /// The value when held, `None` when free.
    value: Option<Vec<u8>>,
    at: Instant,
}

impl std::fmt::Debug for LockEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockEvents")
            .field("keys", &self.last.len())
            .finish()
    }
}

impl LockEvents {
    pub(crate) fn new(changes: Changes, silent_expiry: Option<Duration>) -> Self {
        LockEvents {
            changes,
            last: HashMap::new(),
            silent_expiry,
            next_sweep: Instant::now(),
        }
    }

    /// How many keys this stream keeps state for (after forgetting the keys that are gone);
    /// for tests that check it does not grow with keys that no longer exist. Not stable API.
    #[doc(hidden)]
    pub fn tracked_keys(&mut self) -> usize {
        self.sweep(true);
        self.last.len()
    }

    /// Forgets the keys whose last message the server has removed without a marker by now;
    /// unless `now_anyway`, at most twice per `max_age` (so a key is kept at most one and a
    /// half `max_age`).
    fn sweep(&mut self, now_anyway: bool) {
        let Some(max_age) = self.silent_expiry else {
            return;
        };
        let now = Instant::now();
        if now < self.next_sweep && !now_anyway {
            return;
        }
        // Seen no earlier than stored: older than max_age since seen means removed.
        self.last
            .retain(|_, seen| now.duration_since(seen.at) < max_age);
        self.next_sweep = now + max_age / 2;
    }

    /// The event for `change`, or `None` when it tells nothing new: a marker on a key this
    /// stream already saw free.
    fn event(&mut self, change: Change) -> Option<LockEvent> {
        let holder = Holder::decode(&change.value);
        let (kind, token) = match change.op {
            ChangeOp::Put => {
                let token = holder.as_ref().and_then(|h| h.token);
                // An nlock value names its token from the first refresh on; a foreign value
                // is a refresh when it repeats the previous write on the key.
                let seen = Seen {
                    value: Some(change.value.to_vec()),
                    at: Instant::now(),
                };
                let previous = self
                    .last
                    .insert(change.key.clone(), seen)
                    .and_then(|s| s.value);
                let refreshed = match &holder {
                    Some(h) if !h.foreign => token.is_some(),
                    _ => previous.as_deref() == Some(&change.value[..]),
                };
                if refreshed {
                    (LockEventKind::Refreshed, token)
                } else {
                    (LockEventKind::Acquired, Some(change.revision))
                }
            }
            ChangeOp::Delete | ChangeOp::Purge | ChangeOp::Expired | ChangeOp::Ended(_) => {
                let previous = if change.op == ChangeOp::Expired {
                    // The server's age-limit marker is the last message it writes for the
                    // key; only a new write follows it, and that starts afresh.
                    self.last.remove(&change.key)
                } else {
                    let seen = Seen {
                        value: None,
                        at: Instant::now(),
                    };
                    self.last.insert(change.key.clone(), seen)
                };
                if let Some(Seen { value: None, .. }) = previous {
                    return None;
                }
                let kind = match change.op {
                    ChangeOp::Ended(End::Released) => LockEventKind::Released,
                    // A holder clearing its own lapsed tenure: to the world, it expired.
                    ChangeOp::Expired | ChangeOp::Ended(End::Lapsed) => LockEventKind::Expired,
                    _ => LockEventKind::Deleted,
                };
                (kind, holder.as_ref().and_then(|h| h.token))
            }
        };
        Some(LockEvent {
            key: change.key,
            kind,
            revision: change.revision,
            token,
            holder,
            stored_at_ms: change.stored_at_ms,
        })
    }
}

impl Stream for LockEvents {
    type Item = LockEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LockEvent>> {
        loop {
            match self.changes.poll_next_unpin(cx) {
                // The entries of the lines across processes are not locks.
                Poll::Ready(Some(change)) if crate::key::is_line_entry(&change.key) => {}
                Poll::Ready(Some(change)) => {
                    self.sweep(false);
                    if let Some(event) = self.event(change) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Checks a key filter: a key, or dot-separated tokens where `*` stands for one token and a
/// final `>` for one or more, as [`LockManager::events`](crate::LockManager::events) takes it.
/// A bad one is [`LockError::InvalidKey`](crate::LockError::InvalidKey) naming the filter.
///
/// ```
/// assert!(nlock::validate_filter("jobs.>").is_ok());
/// assert!(nlock::validate_filter("*.nightly").is_ok());
/// assert!(nlock::validate_filter("jobs.>.x").is_err());
/// assert!(nlock::validate_filter("_nlock.s.pool.>").is_ok());
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey): a
/// [`LockError::InvalidKey`](crate::LockError::InvalidKey) naming the filter.
pub fn validate_filter(filter: &str) -> Result<(), crate::LockError> {
    // The permits of semaphores may be watched: `_nlock.s.<name>.>` and the like.
    if let Some(rest) = filter.strip_prefix(crate::key::PERMIT_PREFIX) {
        return validate_filter(rest).map_err(|_| crate::LockError::InvalidKey {
            key: filter.to_owned(),
            rule: crate::KeyRule::Reserved,
        });
    }
    let tokens: Vec<&str> = filter.split('.').collect();
    let wildcard = |t: &str| t == "*" || t == ">";
    if !tokens.iter().any(|t| wildcard(t)) {
        return crate::key::validate_key(filter);
    }
    for (i, token) in tokens.iter().enumerate() {
        let ok = match *token {
            "*" => true,
            ">" => i + 1 == tokens.len(),
            t => crate::key::validate_key(t).is_ok(),
        };
        if !ok {
            return Err(crate::LockError::InvalidKey {
                key: filter.to_owned(),
                rule: crate::KeyRule::Character,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, revision: u64, op: ChangeOp) -> Change {
        let value = match op {
            ChangeOp::Put => bytes::Bytes::from_static(b"someone"),
            _ => bytes::Bytes::new(),
        };
        Change {
            key: key.to_owned(),
            revision,
            op,
            value,
            stored_at_ms: None,
        }
    }

    fn events(silent_expiry: Option<Duration>) -> LockEvents {
        LockEvents::new(Box::pin(futures::stream::empty()), silent_expiry)
    }

    #[tokio::test]
    async fn the_age_limit_marker_ends_what_is_kept_of_a_key() {
        let mut ev = events(None);
        assert!(ev.event(change("a", 1, ChangeOp::Put)).is_some());
        assert!(ev.event(change("a", 2, ChangeOp::Delete)).is_some());
        assert_eq!(ev.tracked_keys(), 1);
        // The marker for the old delete marker: no event, and nothing more is kept.
        assert!(ev.event(change("a", 3, ChangeOp::Expired)).is_none());
        assert_eq!(ev.tracked_keys(), 0);
        // A held key that expires: an event, and nothing kept.
        assert!(ev.event(change("b", 4, ChangeOp::Put)).is_some());
        let expired = ev.event(change("b", 5, ChangeOp::Expired)).unwrap();
        assert_eq!(expired.kind, LockEventKind::Expired);
        assert_eq!(ev.tracked_keys(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn without_markers_keys_are_forgotten_once_older_than_max_age() {
        let max_age = Duration::from_secs(10);
        let mut ev = events(Some(max_age));
        assert!(ev.event(change("a", 1, ChangeOp::Put)).is_some());
        assert!(ev.event(change("b", 2, ChangeOp::Put)).is_some());
        assert!(ev.event(change("b", 3, ChangeOp::Delete)).is_some());
        tokio::time::advance(max_age - Duration::from_millis(1)).await;
        assert_eq!(ev.tracked_keys(), 2);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(ev.tracked_keys(), 0);
    }

    #[test]
    fn filters() {
        for ok in ["a", "a.b", ">", "a.>", "*.b", "a.*.c"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.>.b", "a..b", "a b", "a*", ">x"] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
    }
}
