//! Getting a lock: one compare-and-set when the key's state is known, otherwise a watch on
//! the key that retries when it is deleted, purged or expires, with a jittered poll as the
//! fallback for expiries a server without limit markers never announces.
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
use crate::lease::{explain, release_if_ours, Confirmed, Explained, Tenure};
use crate::store::{KeyWatch, Op, Store, WriteError};

/// A lock just taken: its fencing token and the write that proved it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    /// The create revision of this tenure: the fencing token.
    pub token: u64,
    /// The last acknowledged write (the create, or the confirmation after an unknown one).
    pub confirmed: Confirmed,
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

/// The result of one compare-and-set, with unknown outcomes resolved where possible.
enum Cas {
    Won(Grant),
    Conflict,
    Unknown(WriteError),
    Fatal(LockError),
}

/// Everything a contender needs.
pub(crate) struct Contender<'a> {
    pub store: &'a Store,
    pub tenure: &'a Tenure,
    pub retry_interval: Duration,
    /// How long to keep retrying a write whose outcome is unknown, in `try_acquire`.
    pub resolve_for: Duration,
}

impl Contender<'_> {
    /// One write expecting `expected`; a conflict after an unknown outcome is checked
    /// against this tenure's own value, and confirmed with a second compare-and-set.
    async fn cas(&self, expected: u64) -> Cas {
        match self.cas_once(expected).await {
            // Nothing was written, and the bucket may be gone with a restarted memory
            // server: bring it back so that waiting is not in vain.
            Cas::Unknown(WriteError::Unavailable(_)) if self.store.recreate_if_missing().await => {
                self.cas_once(expected).await
            }
            other => other,
        }
    }

    async fn cas_once(&self, expected: u64) -> Cas {
        let t = self.tenure;
        let sent_at = Instant::now();
        match self
            .store
            .write(&t.key, t.value.clone(), expected, t.header_ttl())
            .await
        {
            Ok(revision) => Cas::Won(Grant {
                token: revision,
                confirmed: Confirmed { revision, sent_at },
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

    /// Retries an unknown write until it resolves or `until` passes. If an earlier attempt
    /// landed, the key shows this tenure's value: a compare-and-set on that revision proves
    /// the lock is ours, and the landed write's revision is the fencing token.
    async fn resolve(&self, expected: u64, mut last: WriteError, until: Instant) -> Cas {
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match self.cas(expected).await {
                Cas::Unknown(e) => last = e,
                Cas::Conflict => match explain(self.store, self.tenure).await {
                    Some(Explained::Ours(landed)) => {
                        return match self.cas(landed).await {
                            Cas::Won(g) => Cas::Won(Grant {
                                token: landed,
                                confirmed: g.confirmed,
                            }),
                            other => other,
                        }
                    }
                    Some(_) => return Cas::Conflict,
                    None => {}
                },
                done => return done,
            }
        }
        Cas::Unknown(last)
    }

    /// One attempt, as Go's `TryAcquire`: take the key if it is free right now.
    pub(crate) async fn try_once(&self, hint: Option<u64>) -> Contended {
        let mut expected = hint.unwrap_or(0);
        // Three rounds: a hint or a read can be stale by one change; more means contention.
        for _ in 0..3 {
            let outcome = match self.cas(expected).await {
                Cas::Unknown(e) => {
                    self.resolve(expected, e, Instant::now() + self.resolve_for)
                        .await
                }
                other => other,
            };
            match outcome {
                Cas::Won(g) => return Contended::Acquired(g),
                Cas::Fatal(e) => return Contended::Failed(e),
                Cas::Unknown(e) => {
                    release_if_ours(self.store, self.tenure).await;
                    return Contended::Failed(e.into_lock_error(&self.tenure.key));
                }
                Cas::Conflict => {}
            }
            match self.store.read(&self.tenure.key).await {
                Ok(Some(ev)) if ev.op == Op::Put => {
                    return Contended::Busy(Holder::decode(&ev.value));
                }
                Ok(Some(ev)) => expected = ev.revision,
                Ok(None) => expected = 0,
                Err(e) => return Contended::Failed(e.into_lock_error(&self.tenure.key)),
            }
        }
        Contended::Busy(None)
    }

    /// Waits until the lock is taken or `stop` resolves.
    pub(crate) async fn wait(
        &self,
        hint: Option<u64>,
        stop: impl Future<Output = ()>,
    ) -> Contended {
        tokio::pin!(stop);
        let mut pending: Option<(u64, WriteError)> = None;
        match self.cas(hint.unwrap_or(0)).await {
            Cas::Won(g) => return Contended::Acquired(g),
            Cas::Fatal(e) => return Contended::Failed(e),
            Cas::Unknown(e) => pending = Some((hint.unwrap_or(0), e)),
            Cas::Conflict => {}
        }
        let mut watch = self.store.watch(&self.tenure.key).await.ok();
        let mut next_poll = Instant::now() + self.jittered();
        loop {
            // An unknown write is settled before anything else: it may have taken the lock.
            if let Some((expected, e)) = pending.take() {
                let until = Instant::now() + self.resolve_for;
                match self.resolve(expected, e, until).await {
                    Cas::Won(g) => return Contended::Acquired(g),
                    Cas::Fatal(e) => return Contended::Failed(e),
                    Cas::Unknown(_) => release_if_ours(self.store, self.tenure).await,
                    Cas::Conflict => {}
                }
            }
            let expected = tokio::select! {
                biased;
                _ = &mut stop => return Contended::Stopped,
                event = next_event(&mut watch) => match event {
                    // The key is free at this revision: one compare-and-set takes it.
                    Some(ev) if ev.op == Op::Gone => Some(ev.revision),
                    Some(_) => None,
                    None => {
                        // The watch broke: the poll carries on, and reopens it.
                        watch = None;
                        None
                    }
                },
                _ = tokio::time::sleep_until(next_poll) => {
                    next_poll = Instant::now() + self.jittered();
                    if watch.is_none() {
                        watch = self.store.watch(&self.tenure.key).await.ok();
                    }
                    // Fallback for an expiry nobody announced: the key may have no message.
                    match self.cas(0).await {
                        Cas::Conflict => match self.store.read(&self.tenure.key).await {
                            Ok(Some(ev)) if ev.op == Op::Gone => Some(ev.revision),
                            _ => None,
                        },
                        Cas::Won(g) => return Contended::Acquired(g),
                        Cas::Fatal(e) => return Contended::Failed(e),
                        Cas::Unknown(e) => {
                            pending = Some((0, e));
                            None
                        }
                    }
                }
            };
            if let Some(expected) = expected {
                match self.cas(expected).await {
                    Cas::Won(g) => return Contended::Acquired(g),
                    Cas::Fatal(e) => return Contended::Failed(e),
                    Cas::Unknown(e) => pending = Some((expected, e)),
                    // Someone else got it first; the watch shows their value next.
                    Cas::Conflict => {}
                }
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

/// The next event of a watch, or never when there is none (the poll still runs).
async fn next_event(watch: &mut Option<KeyWatch>) -> Option<crate::store::KeyEvent> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}
