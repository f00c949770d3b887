//! Getting a lock. First a compare-and-set against what the key is believed to be (a delete
//! marker this process wrote, else "no message"); on a conflict one read tells whether the
//! key is free (a marker: one more compare-and-set takes it) or held. A waiter then watches
//! the key and tries again whenever it is deleted, purged or expires, with a jittered poll as
//! the fallback for expiries that a server without limit markers never announces.
//!
//! At most one contender per key runs in a process (the manager sees to that), so waiters in
//! one process never compete with each other over the network.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use tokio::time::Instant;

use crate::error::LockError;
use crate::holder::Holder;
use crate::lock::tenure::{explain, release_if_ours, Confirmed, Explained, Tenure};
use crate::store::{KeyWatch, Op, Store, WriteError};

/// A lock just taken: its fencing token and the write that proved it.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The create revision of this tenure: the fencing token.
    pub token: u64,
    /// The last acknowledged write (the create, or the confirmation after an unknown one).
    pub confirmed: Confirmed,
    /// The holder record that write stored.
    pub holder: Holder,
    /// Whether the previous tenure ended uncleanly (someone else's delete or purge, or not
    /// known); only found out for a waiter with a lock-delay, else false.
    pub previous_unclean: bool,
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
    /// Held by someone else; the record if it could be read.
    Held(Option<Holder>),
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
                previous_unclean,
            }),
            Err(WriteError::Conflict) => Cas::Conflict,
            Err(WriteError::Rejected { code, description }) => Cas::Fatal(LockError::Rejected {
                key: t.key.clone(),
                code,
                description,
            }),
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
            Ok(Some(ev)) if ev.op == Op::Put => return Round::Held(Holder::decode(&ev.value)),
            Ok(Some(ev)) => ev.revision,
            Ok(None) => 0,
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

    /// Runs rounds until one decides, resolving unknown outcomes for `resolve_for`.
    /// `None` means: held by someone else (with the record when it could be read).
    async fn settle(&self, mut expected: u64) -> Result<Grant, Settled> {
        // A handful of rounds: each `Again` means the key changed between two requests.
        for _ in 0..4 {
            match self.round(expected).await {
                Round::Won(g) => return Ok(g),
                Round::Held(h) => return Err(Settled::Held(h)),
                Round::Fatal(e) => return Err(Settled::Failed(e)),
                Round::Again(next) => expected = next,
                Round::Unknown(at, e) => {
                    let until = Instant::now() + self.resolve_for;
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
        Err(Settled::Held(None))
    }

    /// One attempt, as Go's `TryAcquire`: take the key if it is free right now.
    pub(crate) async fn try_once(&self, hint: Option<u64>) -> Contended {
        match self.settle(hint.unwrap_or(0)).await {
            Ok(g) => Contended::Acquired(g),
            Err(Settled::Held(h)) => Contended::Busy(h),
            Err(Settled::Failed(e)) => Contended::Failed(e),
        }
    }

    /// Waits until the lock is taken or `stop` resolves.
    pub(crate) async fn wait(
        &self,
        hint: Option<u64>,
        stop: impl Future<Output = ()>,
    ) -> Contended {
        tokio::pin!(stop);
        match self.settle(hint.unwrap_or(0)).await {
            Ok(g) => return Contended::Acquired(g),
            Err(Settled::Failed(e)) if !worth_waiting_on(&e) => return Contended::Failed(e),
            // Held, or unknown and cleaned up: wait for the next change.
            Err(_) => {}
        }
        // The watch's first event is the key's current last message, so a release between
        // the round above and this line is not missed.
        let mut watch = self.store.watch(&self.tenure.key).await.ok();
        let mut next_poll = Instant::now() + self.jittered();
        loop {
            let expected = tokio::select! {
                biased;
                _ = &mut stop => return Contended::Stopped,
                event = next_event(&mut watch) => match event {
                    // The key is free at this revision: one compare-and-set takes it.
                    Some(ev) if ev.op == Op::Gone => ev.revision,
                    // Our own write whose answer was lost: claim it rather than wait it out.
                    Some(ev) if self.tenure.is_ours(&ev.value) => {
                        match self.claim(ev.revision).await {
                            Cas::Won(g) => return Contended::Acquired(g),
                            Cas::Fatal(e) => return Contended::Failed(e),
                            _ => continue,
                        }
                    }
                    Some(_) => continue,
                    None => {
                        // The watch broke: the poll carries on, and reopens it.
                        watch = None;
                        continue;
                    }
                },
                _ = tokio::time::sleep_until(next_poll) => {
                    next_poll = Instant::now() + self.jittered();
                    if watch.is_none() {
                        watch = self.store.watch(&self.tenure.key).await.ok();
                    }
                    // Fallback for an expiry nobody announced: the key may have no message.
                    0
                }
            };
            match self.settle(expected).await {
                Ok(g) => return Contended::Acquired(g),
                Err(Settled::Failed(e)) if !worth_waiting_on(&e) => return Contended::Failed(e),
                // Someone else got it first, or the outcome stayed unknown and was cleaned
                // up: the watch shows what happens next.
                Err(_) => {}
            }
        }
    }

    /// The retry interval plus up to half of it again, so waiters in many processes do not
    /// poll in step.
    fn jittered(&self) -> Duration {
        let base = self.retry_interval;
        let extra = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
        base + Duration::from_millis(extra)
    }
}

/// Whether a waiter keeps waiting after `e`: yes for trouble that passes (an unknown outcome,
/// already cleaned up; NATS unavailable for now), no for a refusal that will not change.
fn worth_waiting_on(e: &LockError) -> bool {
    use crate::ErrorKind::{OutcomeUnknown, Unavailable};
    matches!(e.kind(), OutcomeUnknown | Unavailable)
}

/// How [`Contender::settle`] failed to take the key.
enum Settled {
    Held(Option<Holder>),
    Failed(LockError),
}

/// The next event of a watch, or never when there is none (the poll still runs).
async fn next_event(watch: &mut Option<KeyWatch>) -> Option<crate::store::KeyEvent> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}
