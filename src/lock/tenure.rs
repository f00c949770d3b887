//! A tenure: what one holder writes, and the refresh and release loops that keep and give it up.
//!
//! Both loops retry an unknown outcome (a timeout, a broken connection, a retryable server
//! error) until the local lease deadline and no further: past the deadline the server may
//! already have expired the key, so the lock is treated as lost whatever NATS says later.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::error::LossReason;
use crate::holder::Holder;
use crate::store::{End, Op, Store, WriteError};

/// Backoff between attempts whose outcome was unknown: short first, because a stream leader
/// change usually settles within a few hundred milliseconds, and capped so a lock with a
/// short TTL still gets several attempts before its deadline.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// What one tenure writes: the value that won the key, again on every refresh.
///
/// The holder record is kept encoded only, as the value: a held lock keeps its tenure for as
/// long as it is held, and the record's strings would be a second copy of what the value
/// says. It is decoded when asked for ([`Tenure::holder`]: a lock's state, a busy error) and
/// to stamp an acquire attempt.
///
/// The value is a plain buffer, and each write sends a copy of it ([`Tenure::payload`]): a
/// shared `Bytes` would carry a reference count (24 bytes) per lock from its first write on,
/// for as long as the lock is held, where a copy of about 170 bytes per write is freed when
/// the write is sent.
#[derive(Debug, Clone)]
pub(crate) struct Tenure {
    pub key: String,
    /// The holder record, encoded: what the winning compare-and-set wrote.
    pub value: Box<[u8]>,
    /// The record's `tenure` field, unique to this tenure: how a holder recognises its own
    /// writes.
    pub id: TenureId,
    pub ttl: Duration,
    /// Whether writes carry `Nats-TTL` (servers 2.11+ with a per-message TTL bucket).
    pub send_ttl: bool,
}

impl Tenure {
    /// The tenure that writes `holder`, whose `tenure` field must be `id`'s text.
    pub(crate) fn new(
        key: String,
        holder: &Holder,
        id: TenureId,
        ttl: Duration,
        send_ttl: bool,
    ) -> Tenure {
        Tenure {
            key,
            value: holder.encode_boxed(),
            id,
            ttl,
            send_ttl,
        }
    }

    /// The holder record this tenure writes.
    pub(crate) fn holder(&self) -> Holder {
        Holder::decode(&self.value).unwrap_or_else(|| Holder::foreign(&self.value))
    }

    /// Writes `holder` from now on (it must keep this tenure's id).
    pub(crate) fn set_holder(&mut self, holder: &Holder) {
        self.value = holder.encode_boxed();
    }

    /// The value, for one write.
    pub(crate) fn payload(&self) -> Bytes {
        Bytes::copy_from_slice(&self.value)
    }

    /// The holder record stamped with the current time, and its encoding: what an acquire
    /// attempt writes, so the record says when the lock was taken, not when waiting began.
    pub(crate) fn stamped(&self) -> (Holder, Bytes) {
        let mut holder = self.holder();
        holder.acquired_at_ms = crate::holder::unix_ms(std::time::SystemTime::now());
        let value = holder.encode();
        (holder, value)
    }

    pub(crate) fn header_ttl(&self) -> Option<Duration> {
        self.send_ttl.then_some(self.ttl)
    }

    /// Whether a stored value was written by this tenure. A foreign value (one nlock did not
    /// write) never is, whatever it contains.
    pub(crate) fn is_ours(&self, value: &[u8]) -> bool {
        Holder::decode(value).is_some_and(|h| !h.foreign && self.id.is(&h.tenure))
    }
}

/// A tenure's id: 128 random bits, written in the holder record as 32 lowercase hex digits.
/// Kept as the number (no string to allocate) and compared digit by digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TenureId(u128);

impl TenureId {
    pub(crate) fn random() -> TenureId {
        TenureId(rand::random())
    }

    /// The id a holder record (or a line entry's key) writes as text, read back.
    pub(crate) fn parse(text: &str) -> Option<TenureId> {
        let id = TenureId(u128::from_str_radix(text, 16).ok()?);
        id.is(text).then_some(id)
    }

    /// The id as the holder record writes it.
    pub(crate) fn text(self) -> String {
        format!("{:032x}", self.0)
    }

    /// Whether `text` is exactly this id as the holder record writes it.
    pub(crate) fn is(self, text: &str) -> bool {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        text.len() == 32
            && text.bytes().enumerate().all(|(i, b)| {
                let nibble = (self.0 >> (4 * (31 - i))) & 0xf;
                DIGITS[nibble as usize] == b
            })
    }
}

/// A compare-and-set that the server acknowledged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Confirmed {
    /// The new revision.
    pub revision: u64,
    /// When the write was sent: the lease runs from here, not from the ack.
    pub sent_at: Instant,
}

/// What a conflict turned out to mean, from one read.
pub(crate) enum Explained {
    /// The key holds this tenure's own value at `revision` (an earlier unknown write landed).
    Ours(u64),
    /// The key is free because of this tenure's own delete marker at `revision` (it carries
    /// the tenure's value): an earlier delete of ours landed.
    OwnMarker(u64),
    /// The key is free by someone else's hand, or the server's (deleted, purged, expired).
    Gone,
    /// The key holds someone else's value.
    Taken(Option<Holder>),
}

/// Reads the key after a conflict to say why. The conflict already decided that the expected
/// revision is stale; the read only tells whose write replaced it.
pub(crate) async fn explain(store: &Store, tenure: &Tenure) -> Option<Explained> {
    match store.read(&tenure.key).await {
        Ok(Some(ev)) if ev.op == Op::Put && tenure.is_ours(&ev.value) => {
            Some(Explained::Ours(ev.revision))
        }
        Ok(Some(ev)) if ev.op == Op::Put => Some(Explained::Taken(Holder::decode(&ev.value))),
        // This tenure's own delete marker carries exactly its value. (An operator's break
        // names the tenure too, in other bytes: `operator::marker`.)
        Ok(Some(ev)) if ev.value[..] == tenure.value[..] => Some(Explained::OwnMarker(ev.revision)),
        Ok(Some(_)) | Ok(None) => Some(Explained::Gone),
        Err(_) => None,
    }
}

/// Runs one request, cut at the lease deadline when that comes before the request timeout:
/// an answer after the deadline changes nothing. Otherwise the JetStream context's own
/// timeout (the request timeout) bounds it, and a second timer would only cost a wake-up.
async fn before_deadline<T>(
    request: impl std::future::Future<Output = T>,
    deadline: Instant,
    request_timeout: Duration,
) -> Result<T, tokio::time::error::Elapsed> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < request_timeout {
        tokio::time::timeout(left, request).await
    } else {
        Ok(request.await)
    }
}

/// Sleeps for the current backoff (never past `deadline`) and doubles it.
async fn back_off(backoff: &mut Duration, deadline: Instant) {
    let until = crate::deadline::deadline_after(*backoff).min(deadline);
    tokio::time::sleep_until(until).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

/// Refreshes the lock held at `revision`, retrying unknown outcomes until `deadline`.
pub(crate) async fn refresh(
    store: &Store,
    tenure: &Tenure,
    mut revision: u64,
    deadline: Instant,
    request_timeout: Duration,
) -> Result<Confirmed, LossReason> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let sent_at = Instant::now();
        if sent_at >= deadline {
            return Err(LossReason::Expired);
        }
        let write = store.write(&tenure.key, tenure.payload(), revision, tenure.header_ttl());
        match before_deadline(write, deadline, request_timeout).await {
            Ok(Ok(new)) => {
                return Ok(Confirmed {
                    revision: new,
                    sent_at,
                })
            }
            Ok(Err(WriteError::Conflict)) => match explain(store, tenure).await {
                // An earlier write of ours landed after all: carry on from it. (A follower
                // may serve a stale read: back off so that does not spin.)
                Some(Explained::Ours(r)) => {
                    if r == revision {
                        back_off(&mut backoff, deadline).await;
                    }
                    revision = r;
                }
                Some(Explained::Gone | Explained::OwnMarker(_)) => return Err(LossReason::Deleted),
                Some(Explained::Taken(h)) => {
                    return Err(LossReason::Taken {
                        holder: h.map(Box::new),
                    })
                }
                // The read failed: our own landed write cannot be ruled out, so the outcome
                // is still unknown; retry until the deadline decides.
                None => back_off(&mut backoff, deadline).await,
            },
            // Unknown, unavailable, or rejected: retry until the deadline decides.
            // No stream answers: if the server says the bucket is gone (a memory-storage
            // restart), so is the lock, and there is no point waiting for the deadline.
            Ok(Err(WriteError::Unavailable(_))) if store.bucket_missing().await => {
                return Err(LossReason::Deleted)
            }
            Ok(Err(e)) => {
                store.meter().refresh_failed();
                tracing::debug!(error = ?e, "refresh outcome unknown; retrying");
                back_off(&mut backoff, deadline).await
            }
            Err(_) => {
                store.meter().refresh_failed();
                tracing::debug!("refresh timed out; retrying");
                back_off(&mut backoff, deadline).await
            }
        }
    }
}

/// How a release ended.
pub(crate) enum Released {
    /// The delete landed: the key was freed, by a marker at this revision when known.
    Freed(Option<u64>),
    /// The lock had already been lost.
    WasLost(LossReason),
    /// No answer before the deadline: the lock is not ours any more either way, but whether
    /// the key is free now or only when the server expires it is unknown.
    Unknown(WriteError),
}

/// Deletes the lock held at `revision`, retrying unknown outcomes until `deadline`.
pub(crate) async fn release(
    store: &Store,
    tenure: &Tenure,
    mut revision: u64,
    deadline: Instant,
    request_timeout: Duration,
) -> Released {
    let mut backoff = FIRST_BACKOFF;
    let mut had_unknown = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Released::Unknown(WriteError::Unknown(Box::new(DeadlinePassed)));
        }
        let delete = store.delete(&tenure.key, revision, tenure.payload(), End::Released);
        match before_deadline(delete, deadline, request_timeout).await {
            Ok(Ok(marker)) => return Released::Freed(Some(marker)),
            Ok(Err(WriteError::Conflict)) => match explain(store, tenure).await {
                Some(Explained::Ours(r)) => {
                    if r == revision {
                        back_off(&mut backoff, deadline).await;
                    }
                    revision = r;
                }
                // Our own earlier delete landed but its ack was lost: the marker is ours.
                Some(Explained::OwnMarker(marker)) => return Released::Freed(Some(marker)),
                // Our earlier delete landed, and someone else has taken the free key since:
                // before the deadline nobody else could, unless a delete freed it. (A foreign
                // delete before that take cannot be told apart any more: the bucket keeps one
                // message per key.)
                Some(Explained::Taken(_)) if had_unknown => return Released::Freed(None),
                // Someone else's marker (or the server's): whatever our unanswered delete did,
                // the key was freed by another hand. A loss, never a release.
                Some(Explained::Gone) => return Released::WasLost(LossReason::Deleted),
                Some(Explained::Taken(h)) => {
                    return Released::WasLost(LossReason::Taken {
                        holder: h.map(Box::new),
                    })
                }
                None => back_off(&mut backoff, deadline).await,
            },
            // Refused or unanswered: nothing written, retry.
            Ok(Err(
                WriteError::Unavailable(_)
                | WriteError::Rejected { .. }
                | WriteError::Denied { .. },
            )) => {
                back_off(&mut backoff, deadline).await;
            }
            // The delete may have landed: a later conflict may be our own marker.
            Ok(Err(WriteError::Unknown(_))) | Err(_) => {
                had_unknown = true;
                back_off(&mut backoff, deadline).await;
            }
        }
    }
}

/// The lease deadline passed before a request was answered.
#[derive(Debug)]
pub(crate) struct DeadlinePassed;

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer before the lease deadline")
    }
}

impl std::error::Error for DeadlinePassed {}

/// Best effort after a loss or an unresolved acquire: if the key still holds this tenure's
/// value (a write whose answer never came may have landed), delete it so that nobody waits
/// for a lease no one will refresh. If this fails, the key expires with its TTL.
pub(crate) async fn release_if_ours(store: &Store, tenure: &Tenure) {
    if let Some(Explained::Ours(revision)) = explain(store, tenure).await {
        let outcome = store
            .delete(&tenure.key, revision, tenure.payload(), End::Lapsed)
            .await;
        tracing::debug!(key = %tenure.key, revision, ok = outcome.is_ok(), "cleaned up own write");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenure_id_matches_exactly_its_own_text() {
        let id = TenureId(0x0123_4567_89ab_cdef_0000_0000_0000_00ff);
        let text = id.text();
        assert_eq!(text, "0123456789abcdef00000000000000ff");
        assert!(id.is(&text));
        assert!(!id.is(&text.to_uppercase()));
        assert!(!id.is(&text[1..]));
        assert!(!id.is(&format!("{text}0")));
        assert!(!TenureId(1).is(&id.text()));
        let random = TenureId::random();
        assert!(random.is(&random.text()));
        assert_eq!(TenureId::parse(&random.text()), Some(random));
        assert_eq!(TenureId::parse("not hex"), None);
        assert_eq!(TenureId::parse("ff"), None, "only the full 32 digits");
    }

    #[test]
    fn the_holder_record_is_read_back_from_the_value() {
        let id = TenureId::random();
        let mut holder = Holder::foreign(b"");
        holder.foreign = false;
        holder.owner = "o".into();
        holder.tenure = id.text();
        let mut tenure = Tenure::new("k".into(), &holder, id, Duration::from_secs(30), false);
        assert_eq!(tenure.holder(), holder);
        assert!(tenure.is_ours(&tenure.value));
        holder.token = Some(9);
        tenure.set_holder(&holder);
        assert_eq!(tenure.holder(), holder);
        assert!(tenure.is_ours(&tenure.value));
        let (stamped, value) = tenure.stamped();
        assert_eq!(
            (stamped.tenure.as_str(), stamped.token),
            (holder.tenure.as_str(), Some(9))
        );
        assert!(tenure.is_ours(&value));
        let mut other = holder.clone();
        other.tenure = TenureId(1).text();
        assert!(!tenure.is_ours(&other.encode()));
    }
}
