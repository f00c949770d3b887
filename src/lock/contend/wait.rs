//! [`Contender::wait`]: rounds until the key is taken, woken by the key's changes, by the
//! fallback poll, and at the end of the holder's lease (the takeover).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::takeover::{until, Seen};
use super::wakes::{next_change, Wakes};
use super::{Cas, Contended, Contender, Settled};
use crate::deadline::deadline_after;
use crate::error::LockError;
use crate::store::{ChangeOp, Changes, ChangesFrom, RestartGrace};

impl Contender<'_> {
    /// Waits until the lock is taken or `stop` resolves.
    pub(crate) async fn wait(
        &self,
        hint: Option<u64>,
        wakes: Wakes,
        stop: impl Future<Output = ()>,
    ) -> Contended {
        tokio::pin!(stop);
        let mut first = hint.unwrap_or(0);
        // The holder's last write seen, for the takeover at the end of its lease.
        let mut seen: Option<Seen> = None;
        loop {
            match self.settle(first).await {
                Ok(g) => return Contended::Acquired(g),
                Err(Settled::Failed(e)) if !worth_waiting_on(&e) => return Contended::Failed(e),
                // The bucket's restart grace: no grant before it ends, then try again.
                Err(Settled::Grace(g)) => {
                    if !sit_out(g, self.jittered(), &mut stop).await {
                        return Contended::Stopped;
                    }
                    first = 0;
                }
                Err(Settled::Held(_, s)) => {
                    seen = s;
                    break;
                }
                // Unknown and cleaned up: wait for the next change.
                Err(_) => break,
            }
        }
        let (mut feed, mut own) = match wakes {
            Wakes::Feed(rx) => (Some(rx), None),
            // Opened after the round, so it starts with the key's last message: a release
            // between the round and the open is its first change.
            Wakes::Own => (None, self.follow_key().await),
        };
        let follows_own = feed.is_none();
        let mut next_poll = deadline_after(self.jittered());
        loop {
            let takeover_at = seen.and_then(|s| s.takeover_at(self.takeover_after));
            let mut takeover = false;
            let expected = tokio::select! {
                biased;
                _ = &mut stop => return Contended::Stopped,
                // The holder's lease is over by now: take the key if its last write is still
                // the one seen (a compare-and-set on it; a newer write makes it fail).
                Some(revision) = until(takeover_at) => {
                    takeover = true;
                    revision
                }
                change = next_change(&mut feed, &mut own) => match change {
                    // The key is free at this revision: one compare-and-set takes it.
                    Some(c) if c.op != ChangeOp::Put => c.revision,
                    // Our own write whose answer was lost: claim it rather than wait it out.
                    Some(c) if self.tenure.is_ours(&c.value) => {
                        match self.claim(c.revision).await {
                            Cas::Won(g) => return Contended::Acquired(g),
                            Cas::Fatal(e) => return Contended::Failed(e),
                            _ => continue,
                        }
                    }
                    // Someone else's write (only a key's own change stream shows these): the
                    // holder's latest, from which its lease now counts.
                    Some(c) => {
                        seen = Seen::now(c.revision).or_earlier(seen);
                        continue;
                    }
                    None => {
                        // The manager is gone: only the poll is left (and `stop` follows).
                        feed = None;
                        continue;
                    }
                },
                _ = tokio::time::sleep_until(next_poll) => {
                    next_poll = deadline_after(self.jittered());
                    if follows_own && own.is_none() {
                        own = self.follow_key().await;
                    }
                    // Fallback for an expiry nobody announced (the key may have no message),
                    // or for changes missed while the change stream reconnects.
                    0
                }
            };
            match self.settle(expected).await {
                Ok(mut g) => {
                    if takeover && g.previous == Some(expected) {
                        // The previous tenure ended by its lease running out: a clean end,
                        // as an expiry is, whatever the key still showed.
                        g.previous_unclean = false;
                        tracing::info!(
                            previous = expected,
                            "took the key at the end of its holder's lease"
                        );
                    }
                    return Contended::Acquired(g);
                }
                Err(Settled::Failed(e)) if !worth_waiting_on(&e) => return Contended::Failed(e),
                // Someone else got it first (or refreshed): its lease counts from the write
                // seen now. Without one, no takeover until a write is seen again.
                Err(Settled::Held(_, s)) => match s {
                    Some(s) => seen = s.or_earlier(seen),
                    None if takeover => seen = None,
                    None => {}
                },
                Err(Settled::Grace(g)) => {
                    if !sit_out(g, self.jittered(), &mut stop).await {
                        return Contended::Stopped;
                    }
                    // Past the grace the key may have no message at all: try it at once.
                    next_poll = Instant::now();
                }
                // The outcome stayed unknown and was cleaned up: the next change or poll
                // tries again (and a takeover waits for a write seen again).
                Err(Settled::Failed(_)) => {
                    if takeover {
                        seen = None;
                    }
                }
            }
        }
    }

    /// The key's own change stream, first its last message; `None` if it cannot be opened
    /// now (the poll tries again). Its consumer is deleted when it is dropped.
    async fn follow_key(&self) -> Option<Changes> {
        self.store
            .changes(&self.tenure.key, ChangesFrom::Current)
            .await
            .ok()
    }
}

/// Whether a waiter keeps waiting after `e`: yes for trouble that passes (an unknown outcome,
/// already cleaned up; NATS unavailable for now), no for a refusal that will not change.
fn worth_waiting_on(e: &LockError) -> bool {
    use crate::ErrorKind::{OutcomeUnknown, Unavailable};
    matches!(e.kind(), OutcomeUnknown | Unavailable)
}

/// Waits out a restart grace plus `jitter` (so that the waiters of many processes, whose
/// graces end together, do not all write at once), or until `stop`: whether the grace ended.
async fn sit_out(
    grace: RestartGrace,
    jitter: Duration,
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    tokio::select! {
        biased;
        _ = stop.as_mut() => false,
        _ = tokio::time::sleep(grace.remaining.saturating_add(jitter)) => true,
    }
}
