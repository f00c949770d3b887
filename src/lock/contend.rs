//! Getting a lock. First a compare-and-set against what the key is believed to be (a delete
//! marker this process wrote, else "no message"); on a conflict one read tells whether the
//! key is free (a marker: one more compare-and-set takes it) or held. A waiter then tries
//! again whenever the key is deleted, purged or expires, as the manager's change stream tells
//! it ([`Wakes`]), with a jittered poll as the fallback for expiries that a server without
//! limit markers never announces and for while the change stream is reconnecting.
//!
//! At most one contender per key runs in a process (the manager sees to that), so waiters in
//! one process never compete with each other over the network, and a process follows a key
//! with at most one consumer however many of its callers wait for it.
//!
//! A waiter also takes a key at the end of its holder's lease ([`Seen`]): the holder counts
//! its lease from before it sent its last write, and this process saw that write after it
//! landed, so `takeover_after` (the TTL, stretched for clock drift on both hosts) after the
//! moment it saw it, the holder's lease is over. A compare-and-set on exactly that write's
//! revision then takes the key, and fails if the holder wrote again meanwhile.

/// `Seen` and the moment of a takeover at the end of a holder's lease.
mod takeover;
/// `Contender::wait`, the waiting loop.
mod wait;
/// `Wakes`: what wakes a waiting contender.
mod wakes;

use takeover::Seen;
pub(crate) use wakes::Wakes;

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::deadline::deadline_after;
use crate::error::LockError;
use crate::holder::Holder;
use crate::lock::tenure::{explain, release_if_ours, Confirmed, Explained, Tenure};
use crate::store::{Admission, Op, RestartGrace, Store, WriteError};

/// A lock just taken: its fencing token and the write that proved it.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The create revision of this tenure: the fencing token.
    pub token: u64,
    /// The last acknowledged write (the create, or the confirmation after an unknown one).
    pub confirmed: Confirmed,
    /// The holder record that write stored.
    pub holder: Holder,
    /// The revision the winning compare-and-set expected: the key's last message before
    /// this tenure (0: the key had none). `None` when the grant claimed a write of ours whose
    /// answer was lost, so what came before it is not known.
    pub previous: Option<u64>,
    /// Whether the previous tenure ended uncleanly (someone else's delete or purge, or not
    /// known); only found out for a waiter with a lock-delay, else false.
    pub previous_unclean: bool,
    /// Whether the contender waited for another tenure's end before this grant (a handoff).
    pub waited: bool,
}

/// How a contention ended.
pub(crate) enum Contended {
    Acquired(Grant),
    /// `TryAcquire` found the key held.
    Busy(Option<Holder>),
    /// The waiter went away (timed out or dropped) before the lock was taken.
    Stopped,
    Failed(LockError),
}

/// The result of one compare-and-set.
enum Cas {
    Won(Grant),
    Conflict,
    Unknown(WriteError),
    Fatal(LockError),
}

/// What one round (compare-and-set, then if needed a read and a second one) found.
enum Round {
    Won(Grant),
    /// Held by someone else; the record if it could be read, and the write that said so.
    Held(Option<Holder>, Seen),
    /// The key changed under the round; try again expecting this revision.
    Again(u64),
    /// A write's outcome is unknown (it expected this revision).
    Unknown(u64, WriteError),
    Fatal(LockError),
}

/// Everything a contender needs.
pub(crate) struct Contender<'a> {
    pub store: &'a Store,
    pub tenure: &'a Tenure,
    pub retry_interval: Duration,
    /// How long to keep retrying a write whose outcome is unknown before giving up on it.
    pub resolve_for: Duration,
    /// Find out how the previous tenure ended (for a lock-delay): one read before each write.
    pub check_previous: bool,
    /// How long after seeing a holder's last write a waiter may take the key with a
    /// compare-and-set on it (`Config::takeover_after`); `None`: only once the key is free.
    pub takeover_after: Option<Duration>,
}

impl Contender<'_> {
    /// One write expecting `expected`. If no stream answers because the bucket is gone (a
    /// memory server restarted), the bucket is re-created and the write tried once more.
    async fn cas(&self, expected: u64) -> Cas {
        match self.cas_once(expected).await {
            Cas::Unknown(WriteError::Unavailable(_)) if self.store.recreate_if_missing().await => {
                self.cas_once(expected).await
            }
            other => other,
        }
    }

    async fn cas_once(&self, expected: u64) -> Cas {
        let t = self.tenure;
        // Read before the write: the write replaces the message it expects (one per key).
        let previous_unclean = self.check_previous
            && expected != 0
            && crate::lock::delay::unclean_end_at(self.store, expected).await;
        let (holder, value) = t.stamped();
        let sent_at = Instant::now();
        match self
            .store
            .write(&t.key, value.clone(), expected, t.header_ttl())
            .await
        {
            Ok(revision) => Cas::Won(Grant {
                token: revision,
                confirmed: Confirmed { revision, sent_at },
                holder,
                previous: Some(expected),
                previous_unclean,
                waited: false,
            }),
            Err(WriteError::Conflict) => Cas::Conflict,
            Err(WriteError::Rejected { code, description }) => Cas::Fatal(LockError::Rejected {
                key: t.key.clone(),
                code,
                description,
            }),
            // The server let nothing through: known not written, and a retry is refused too.
            Err(WriteError::Denied { subject }) => {
                Cas::Fatal(LockError::PermissionDenied { subject })
            }
            Err(e) => Cas::Unknown(e),
        }
    }

    /// Takes over a write of this tenure found at `landed` (one whose answer was lost): a
    /// compare-and-set on it proves the key is still ours, and `landed` is the token.
    async fn claim(&self, landed: u64) -> Cas {
        match self.cas(landed).await {
            // What came before our own earlier write is not known any more.
            Cas::Won(g) => Cas::Won(Grant {
                token: landed,
                previous: None,
                previous_unclean: self.check_previous,
                ..g
            }),
            other => other,
        }
    }

    /// A compare-and-set expecting `expected`; on a conflict, one read says whether the key
    /// is free (then one more compare-and-set on the marker), held, or ours.
    async fn round(&self, expected: u64) -> Round {
        match self.cas(expected).await {
            Cas::Won(g) => return Round::Won(g),
            Cas::Fatal(e) => return Round::Fatal(e),
            Cas::Unknown(e) => return Round::Unknown(expected, e),
            Cas::Conflict => {}
        }
        let free_at = match self.store.read(&self.tenure.key).await {
            Ok(Some(ev)) if ev.op == Op::Put && self.tenure.is_ours(&ev.value) => {
                return match self.claim(ev.revision).await {
                    Cas::Won(g) => Round::Won(g),
                    Cas::Fatal(e) => Round::Fatal(e),
                    Cas::Unknown(e) => Round::Unknown(ev.revision, e),
                    Cas::Conflict => Round::Again(0),
                };
            }
            Ok(Some(ev)) if ev.op == Op::Put => {
                return Round::Held(Holder::decode(&ev.value), Seen::now(ev.revision));
            }
            Ok(Some(ev)) => ev.revision,
            Ok(None) => 0,
            // Our write conflicted, so nothing of ours landed; the read is refused for good.
            Err(WriteError::Denied { subject }) => {
                return Round::Fatal(LockError::PermissionDenied { subject })
            }
            Err(e) => return Round::Unknown(expected, e),
        };
        if free_at == expected {
            // A stale read of the revision that just conflicted: the key has moved on.
            return Round::Again(free_at);
        }
        match self.cas(free_at).await {
            Cas::Won(g) => Round::Won(g),
            Cas::Fatal(e) => Round::Fatal(e),
            Cas::Unknown(e) => Round::Unknown(free_at, e),
            Cas::Conflict => Round::Again(free_at),
        }
    }

    /// Retries a write whose outcome is unknown until it resolves or `until` passes. If an
    /// earlier attempt landed, the key shows this tenure's value and [`Self::claim`] takes it.
    async fn resolve(&self, expected: u64, mut last: WriteError, until: Instant) -> Cas {
        while Instant::now() < until {
            // Short: the usual cause (a leader change, a reconnect) settles in milliseconds
            // to seconds, and `until` bounds the whole.
            tokio::time::sleep(Duration::from_millis(20)).await;
            match self.cas(expected).await {
                Cas::Unknown(e) => last = e,
                Cas::Conflict => match explain(self.store, self.tenure).await {
                    Some(Explained::Ours(landed)) => return self.claim(landed).await,
                    Some(_) => return Cas::Conflict,
                    None => {}
                },
                done => return done,
            }
        }
        Cas::Unknown(last)
    }

    /// Runs rounds until one decides, once the bucket is past its restart grace, and checks
    /// the grant against a reset that may have landed meanwhile (`store/grace.rs`). A grant
    /// that fails that check is withdrawn before anyone sees it.
    async fn settle(&self, expected: u64) -> Result<Grant, Settled> {
        let ticket = match self.store.admit().await {
            Ok(Admission::Open(ticket)) => ticket,
            Ok(Admission::Grace(g)) => return Err(Settled::Grace(g)),
            Err(e) => return Err(Settled::Failed(e.into_lock_error(&self.tenure.key))),
        };
        let grant = self.settle_rounds(expected).await?;
        match self
            .store
            .confirm_grant(ticket, &self.tenure.key, grant.token)
            .await
        {
            Ok(()) => Ok(grant),
            Err(g) => {
                release_if_ours(self.store, self.tenure).await;
                Err(Settled::Grace(g))
            }
        }
    }

    /// Runs rounds until one decides, resolving unknown outcomes for `resolve_for`.
    /// `None` means: held by someone else (with the record when it could be read).
    async fn settle_rounds(&self, mut expected: u64) -> Result<Grant, Settled> {
        // A handful of rounds: each `Again` means the key changed between two requests.
        for _ in 0..4 {
            match self.round(expected).await {
                Round::Won(g) => return Ok(g),
                Round::Held(h, seen) => return Err(Settled::Held(h, Some(seen))),
                Round::Fatal(e) => return Err(Settled::Failed(e)),
                Round::Again(next) => expected = next,
                Round::Unknown(at, e) => {
                    let until = deadline_after(self.resolve_for);
                    match self.resolve(at, e, until).await {
                        Cas::Won(g) => return Ok(g),
                        Cas::Fatal(e) => return Err(Settled::Failed(e)),
                        Cas::Conflict => expected = 0,
                        Cas::Unknown(e) => {
                            release_if_ours(self.store, self.tenure).await;
                            return Err(Settled::Failed(e.into_lock_error(&self.tenure.key)));
                        }
                    }
                }
            }
        }
        Err(Settled::Held(None, None))
    }

    /// One attempt, as Go's `TryAcquire`: take the key if it is free right now.
    pub(crate) async fn try_once(&self, hint: Option<u64>) -> Contended {
        match self.settle(hint.unwrap_or(0)).await {
            Ok(g) => Contended::Acquired(g),
            Err(Settled::Held(h, _)) => Contended::Busy(h),
            Err(Settled::Failed(e)) => Contended::Failed(e),
            Err(Settled::Grace(g)) => Contended::Failed(LockError::RestartGrace {
                key: self.tenure.key.clone(),
                remaining: g.remaining,
            }),
        }
    }

    /// The retry interval plus up to half of it again, so waiters in many processes do not
    /// poll in step.
    fn jittered(&self) -> Duration {
        let base = self.retry_interval;
        let half = u64::try_from(base.as_millis() / 2).unwrap_or(u64::MAX);
        let extra = rand::rng().random_range(0..=half);
        // Saturating: a caller's huge retry interval must not overflow (it then means "poll
        // never", and the watch alone wakes the waiter).
        base.saturating_add(Duration::from_millis(extra))
    }
}

/// How [`Contender::settle`] failed to take the key.
enum Settled {
    /// Held by someone else: the record if it could be read, and the holder's write seen
    /// (none when the rounds ran out without a read that showed it).
    Held(Option<Holder>, Option<Seen>),
    Failed(LockError),
    /// The bucket is in its restart grace.
    Grace(RestartGrace),
}
