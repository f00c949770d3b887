//! [`Contender::wait`]: rounds until the key is taken, woken by the key's changes, by the
//! fallback poll, and at the end of the holder's lease (the takeover).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::takeover::{until, Seen};
use super::wakes::{next_change, Wakes};
use super::{Cas, Contended, Contender, Grant, Settled};
use crate::deadline::deadline_after;
use crate::error::LockError;
use crate::lock::line::{Ahead, Seat};
use crate::store::{ChangeOp, Changes, ChangesFrom, RestartGrace};

impl Contender<'_> {
    /// Waits until the lock is taken or `stop` resolves. With a `seat`, the waiter keeps its
    /// place in the key's line across processes and writes to the key only when first in it.
    pub(crate) async fn wait(
        &self,
        hint: Option<u64>,
        wakes: Wakes,
        mut seat: Option<Seat>,
        stop: impl Future<Output = ()>,
    ) -> Contended {
        tokio::pin!(stop);
        let mut first = hint.unwrap_or(0);
        // The holder's last write seen, for the takeover at the end of its lease.
        let mut seen: Option<Seen> = None;
        let me = self.tenure.id.text();
        let me = me.as_str();
        // A newcomer joins a line that has others in it rather than write to the key first.
        let joins_line = seat
            .as_ref()
            .is_some_and(|s| s.others_waiting(&self.tenure.key, me));
        if !joins_line {
            loop {
                match self.settle(first).await {
                    Ok(g) => return Contended::Acquired(g),
                    Err(Settled::Failed(e)) if !worth_waiting_on(&e) => {
                        return Contended::Failed(e)
                    }
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
        }
        if let Some(s) = seat.as_mut() {
            let until = deadline_after(self.resolve_for);
            if !s.take_place(&self.tenure.key, me, until).await {
                // No entry could be written: wait outside the line (as a client without one).
                tracing::debug!("no place in the line; waiting outside it");
                seat = None;
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
        // The key's free revision, seen while others were ahead in the line.
        let mut free_at: Option<u64> = None;
        // Whether a round ran since this waiter became first in the line.
        let mut tried_as_first = !joins_line;
        loop {
            let ahead = seat
                .as_ref()
                .map_or(Ahead::Nobody, |s| s.ahead(&self.tenure.key));
            let is_first = ahead == Ahead::Nobody;
            let recheck = match ahead {
                Ahead::Until(at) => Some(at),
                Ahead::Nobody => None,
            };
            let takeover_at = seen
                .filter(|_| is_first)
                .and_then(|s| s.takeover_at(self.takeover_after));
            let mut takeover = false;
            // First in line now: the key seen free meanwhile is this waiter's to take; with
            // nothing known of the key, one round tells.
            let due = match (is_first, free_at.take()) {
                (true, Some(revision)) => Some(revision),
                (true, None) if !tried_as_first && seen.is_none() => Some(0),
                (false, pending) => {
                    free_at = pending;
                    None
                }
                (true, None) => None,
            };
            if is_first {
                tried_as_first = true;
            }
            let expected = match due {
                Some(revision) => revision,
                None => tokio::select! {
                biased;
                _ = &mut stop => return Contended::Stopped,
                // The holder's lease is over by now: take the key if its last write is still
                // the one seen (a compare-and-set on it; a newer write makes it fail).
                Some(revision) = until(takeover_at) => {
                    takeover = true;
                    revision
                }
                // Whoever was first in line may count as gone now: look again.
                _ = sleep_until(recheck) => continue,
                change = next_change(&mut feed, &mut own) => match change {
                    // An entry left the line: this waiter may be first now.
                    Some(c) if c.key != self.tenure.key => continue,
                    // The key is free at this revision: one compare-and-set takes it, by
                    // the first in line.
                    Some(c) if c.op != ChangeOp::Put => {
                        if !is_first {
                            free_at = Some(c.revision);
                            continue;
                        }
                        c.revision
                    }
                    // Our own write whose answer was lost: claim it rather than wait it out.
                    Some(c) if self.tenure.is_ours(&c.value) => {
                        match self.claim(c.revision).await {
                            Cas::Won(g) => return Contended::Acquired(Grant { waited: true, ..g }),
                            Cas::Fatal(e) => return Contended::Failed(e),
                            _ => continue,
                        }
                    }
                    // Someone else's write (only a key's own change stream shows these): the
                    // holder's latest, from which its lease now counts.
                    Some(c) => {
                        free_at = None;
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
                    if !is_first {
                        continue;
                    }
                    // Fallback for an expiry nobody announced (the key may have no message),
                    // or for changes missed while the change stream reconnects.
                    0
                }
                },
            };
            match self.settle(expected).await {
                Ok(mut g) => {
                    g.waited = true;
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

/// Sleeps until `at`; never without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
