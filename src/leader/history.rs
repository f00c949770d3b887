//! The recent changes of one election key, followed from the moment an elector starts, so
//! that a new term can tell how the previous one ended: released by its holder (clean), or
//! deleted by someone else (unclean: both leaders learn of it at once, hence the lock-delay).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::error::LockError;
use crate::observe::{LockEventKind, LockEvents};

/// How many changes are kept: a term looks only at the change just before its own first
/// write, which is always among the latest few.
const KEEP: usize = 32;

/// How a key's previous tenure ended, as seen just before a new term's first write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreviousEnd {
    /// Nothing before it, a release by the holder, or an expiry: no wait needed.
    Clean,
    /// Deleted or purged by someone else (also through the stream API, which leaves no
    /// marker: on a bucket with limit markers, a key emptied without one did not expire), or
    /// not known (not seen in time, or the message the new term replaced never seen): wait
    /// the lock-delay.
    Unclean,
}

/// Follows a key's changes on a task of its own (on the current arbiter); the task ends when
/// this is dropped.
#[derive(Debug)]
pub(crate) struct KeyHistory {
    /// A std mutex: nothing awaits while holding it, the follower task and the campaign only
    /// push or scan a short list.
    seen: Arc<Mutex<VecDeque<(u64, LockEventKind)>>>,
    /// The highest revision seen, so a term can wait until its own write was seen.
    latest: watch::Receiver<u64>,
    /// The bucket has limit markers (2.11+): the server marks every expiry, so a key emptied
    /// without a marker was purged, not expired.
    expiries_marked: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeyHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeyHistory {
    /// Starts following the stream `open` gives (for the one election key), opening and
    /// polling it at once on its own task.
    pub(crate) fn follow<O>(open: O, expiries_marked: bool) -> KeyHistory
    where
        O: std::future::Future<Output = Result<LockEvents, LockError>> + 'static,
    {
        let seen = Arc::new(Mutex::new(VecDeque::with_capacity(KEEP)));
        let (tx, latest) = watch::channel(0);
        let task = {
            let seen = seen.clone();
            actix::spawn(async move {
                let Ok(mut events) = open.await else {
                    return; // a bad key: the campaign's own acquire reports it
                };
                while let Some(event) = events.next().await {
                    if let Ok(mut seen) = seen.lock() {
                        if seen.len() == KEEP {
                            seen.pop_front();
                        }
                        seen.push_back((event.revision, event.kind));
                    }
                    tx.send_if_modified(|latest| {
                        let newer = event.revision > *latest;
                        if newer {
                            *latest = event.revision;
                        }
                        newer
                    });
                }
            })
        };
        KeyHistory {
            seen,
            latest,
            expiries_marked,
            task,
        }
    }

    /// How the tenure before the one created at revision `token` ended. Waits until the
    /// stream has shown that revision (milliseconds: it arrives with the write's own ack),
    /// at most `wait`; not seen by then counts as unclean. `previous` is the key's last
    /// revision before the new term's write, when known (0: the key had no message).
    pub(crate) async fn previous_end(
        &self,
        token: u64,
        previous: Option<u64>,
        wait: Duration,
    ) -> PreviousEnd {
        let mut latest = self.latest.clone();
        let seen_it = tokio::time::timeout(wait, latest.wait_for(|rev| *rev >= token)).await;
        if !matches!(seen_it, Ok(Ok(_))) {
            return PreviousEnd::Unclean;
        }
        let Ok(seen) = self.seen.lock() else {
            return PreviousEnd::Unclean;
        };
        let before = seen
            .iter()
            .filter(|(rev, _)| *rev < token)
            .max_by_key(|(rev, _)| *rev);
        // The new term replaced a message this stream never showed: the stream opened after
        // the new term's write (the elector had just started), or the message was replaced
        // before it was delivered. How that tenure ended is not known: unclean.
        if let Some(previous) = previous.filter(|p| *p > 0) {
            if before.is_none_or(|(rev, _)| *rev != previous) {
                return PreviousEnd::Unclean;
            }
        }
        match before {
            Some((_, LockEventKind::Deleted)) => PreviousEnd::Unclean,
            // A write of the previous tenure, and the new term took a key with no message at
            // all: its messages were removed without a marker, by a purge through the stream
            // API. Where the server marks expiries, that is not an expiry.
            Some((_, LockEventKind::Acquired | LockEventKind::Refreshed))
                if self.expiries_marked && previous == Some(0) =>
            {
                PreviousEnd::Unclean
            }
            // Released; Expired; or a write of the previous tenure and nothing after it, which
            // is an expiry the server did not mark (before 2.11, or a bucket without limit
            // markers): its holder's deadline came first. Nothing at all: the key is new, or
            // its past was removed long ago.
            _ => PreviousEnd::Clean,
        }
    }
}
