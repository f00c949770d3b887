//! Looking at the bucket as a whole, from any process: who holds which key now
//! ([`KeyHolder`]), and a stream of what happens to keys ([`LockEvent`]). For observers,
//! admin pages and command lines; none of it decides who holds a lock (only a
//! compare-and-set does).

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::holder::Holder;
use crate::store::{Change, ChangeOp, Changes, End};

/// A key that is held, as the bucket shows it.
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

/// One change to a key, as every process sees it.
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
    if change.op != ChangeOp::Put {
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
/// stop watching.
pub struct LockEvents {
    changes: Changes,
    /// Per key, what the last change seen left: `Some(value)` when held, `None` when free.
    /// It tells a refresh of a foreign value from a new tenure, and a marker on a key that
    /// was already free (the server's age-limit marker for an old delete marker) from an end.
    /// Bounded by the number of keys in the bucket.
    last: HashMap<String, Option<Vec<u8>>>,
}

impl std::fmt::Debug for LockEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockEvents")
            .field("keys", &self.last.len())
            .finish()
    }
}

impl LockEvents {
    pub(crate) fn new(changes: Changes) -> Self {
        LockEvents {
            changes,
            last: HashMap::new(),
        }
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
                let previous = self
                    .last
                    .insert(change.key.clone(), Some(change.value.to_vec()))
                    .flatten();
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
                if let Some(None) = self.last.insert(change.key.clone(), None) {
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
                Poll::Ready(Some(change)) => {
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
/// final `>` for one or more.
pub(crate) fn validate_filter(filter: &str) -> Result<(), crate::LockError> {
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
