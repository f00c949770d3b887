//! [`Seat`]: a contender's place in the line of its key: the manager's view of the line and
//! the request's own entry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Ahead, Entry, LineView};
use crate::store::Store;

/// What a waiting contender needs of the line.
pub(crate) struct Seat {
    pub view: Arc<Mutex<LineView>>,
    /// The request's entry: opened when the request was queued behind others in this
    /// process, else when the contender first has to wait.
    pub entry: Option<Entry>,
    pub store: Arc<Store>,
    /// How often the entry is rewritten.
    pub every: Duration,
    /// How long a write keeps the entry alive at the server, by this host's clock.
    pub valid_for: Duration,
}

/// How soon a waiter whose own entry may have lapsed looks again (a local check only): its
/// keep-alive writes it anew, at the back of the line, within a rewrite interval.
const LAPSED_RECHECK: Duration = Duration::from_millis(50);

impl Seat {
    /// Whether others than request `me` wait in the line of `key`: a newcomer then joins the
    /// line rather than write to the key ahead of them.
    pub(crate) fn others_waiting(&self, key: &str, me: &str) -> bool {
        self.view
            .lock()
            .is_ok_and(|mut v| v.anyone_waiting(key, me, Instant::now()))
    }

    /// Makes sure the request has an entry with a ticket by `until`; false if it has none by
    /// then (the entry is then dropped, and the request waits outside the line).
    pub(crate) async fn take_place(&mut self, key: &str, me: &str, until: Instant) -> bool {
        let entry = self.entry.get_or_insert_with(|| {
            Entry::open(self.store.clone(), key, me, self.every, self.valid_for)
        });
        if entry.ticket_by(until).await != 0 {
            return true;
        }
        self.entry = None;
        false
    }

    /// Whether anyone is ahead of this request in the line of `key` now.
    pub(crate) fn ahead(&self, key: &str) -> Ahead {
        let Some(entry) = &self.entry else {
            return Ahead::Nobody;
        };
        let now = Instant::now();
        let ticket = entry.ticket();
        if ticket == 0 {
            // Not surely in the line: others may have gone ahead of a lapsed entry.
            return Ahead::Until(crate::deadline::after(now, LAPSED_RECHECK));
        }
        match self.view.lock() {
            Ok(mut v) => v.ahead(key, entry.id(), ticket, now),
            Err(_) => Ahead::Nobody,
        }
    }
}
