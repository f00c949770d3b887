//! The takeover at the end of a holder's lease: the write of the holder a waiter saw, and
//! when the holder's lease is certainly over by it (GUARANTEES.md, "Takeover at the lease's
//! end").

use std::time::Duration;

use tokio::time::Instant;

/// A holder's write this waiter saw: its revision, and when the answer that carried it
/// arrived here (after the write landed, so after the holder sent it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    pub revision: u64,
    pub at: Instant,
}

impl Seen {
    /// The holder's write at `revision`, seen now.
    pub(crate) fn now(revision: u64) -> Seen {
        Seen {
            revision,
            at: Instant::now(),
        }
    }

    /// This sighting, or `before` if that one saw the same write earlier: the first sighting
    /// of a write bounds its holder's lease most tightly (a change stream may deliver a write
    /// well after a read showed it).
    pub(crate) fn or_earlier(self, before: Option<Seen>) -> Option<Seen> {
        match before {
            Some(b) if b.revision == self.revision && b.at < self.at => Some(b),
            _ => Some(self),
        }
    }

    /// When the holder that wrote this has certainly stopped counting its lease (`after`
    /// past the moment it was seen), with the revision to take over; `None` with the
    /// takeover off.
    pub(crate) fn takeover_at(self, after: Option<Duration>) -> Option<(Instant, u64)> {
        Some((crate::deadline::after(self.at, after?), self.revision))
    }
}

/// Sleeps until the takeover moment and answers its revision; never without one.
pub(super) async fn until(at: Option<(Instant, u64)>) -> Option<u64> {
    match at {
        Some((at, revision)) => {
            tokio::time::sleep_until(at).await;
            Some(revision)
        }
        None => std::future::pending().await,
    }
}
