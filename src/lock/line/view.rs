//! [`LineView`]: what this manager knows of every key's line, from its change stream (and a
//! snapshot of the entries when it starts). Plain data: no actix, no NATS, no clock of its
//! own (every call is given `now`), so it is unit-tested below.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{decode_ticket, parse_entry};
use crate::holder::Holder;
use crate::store::{Change, ChangeOp};

/// One entry as last seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    ticket: u64,
    /// The entry's last write seen.
    revision: u64,
    /// When that write was first seen here: the entry counts as gone `lifetime` after it.
    at: Instant,
}

/// One key's entries, and the tenure that holds the key now (its own entry never counts).
#[derive(Debug, Default)]
struct KeyLine {
    entries: HashMap<String, Seen>,
    holder: Option<String>,
}

/// Whether anyone is ahead of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ahead {
    /// No live entry of another request is ahead: this request may write to the key.
    Nobody,
    /// Someone is; the first of them counts as gone at this moment unless written again.
    Until(Instant),
}

/// Every line this manager knows of.
#[derive(Debug)]
pub(crate) struct LineView {
    keys: HashMap<String, KeyLine>,
    /// How long an entry counts after its last write seen here: at least the server's expiry
    /// of it, stretched for clock drift (the takeover's reasoning, applied to entries).
    lifetime: Duration,
}

impl LineView {
    /// An empty view whose entries count for `lifetime` after their last write seen.
    pub(crate) fn new(lifetime: Duration) -> Self {
        LineView {
            keys: HashMap::new(),
            lifetime,
        }
    }

    /// Takes in one change of the bucket, seen at `now`. Returns the lock key whose line lost
    /// an entry (deleted, expired or purged): a waiter of that key may be first now.
    pub(crate) fn apply<'c>(&mut self, change: &'c Change, now: Instant) -> Option<&'c str> {
        if let Some((key, id)) = parse_entry(&change.key) {
            if change.op == ChangeOp::Put {
                let line = self.keys.entry(key.to_owned()).or_default();
                let ticket = decode_ticket(&change.value).unwrap_or(change.revision);
                match line.entries.get_mut(id) {
                    Some(seen) if seen.revision >= change.revision => {}
                    Some(seen) => {
                        *seen = Seen {
                            ticket,
                            revision: change.revision,
                            at: now,
                        }
                    }
                    None => {
                        line.entries.insert(
                            id.to_owned(),
                            Seen {
                                ticket,
                                revision: change.revision,
                                at: now,
                            },
                        );
                    }
                }
                return None;
            }
            let line = self.keys.get_mut(key)?;
            line.entries.remove(id)?;
            if line.entries.is_empty() {
                self.keys.remove(key);
            }
            return Some(key);
        }
        // A lock key: only its holder matters, and only while someone waits for it.
        if let Some(line) = self.keys.get_mut(&change.key) {
            line.holder = match change.op {
                ChangeOp::Put => Holder::decode(&change.value)
                    .filter(|h| !h.foreign)
                    .map(|h| h.tenure),
                _ => None,
            };
        }
        None
    }

    /// Whether a live entry of another request with a lower ticket than `ticket` is in the
    /// line of `key` at `now`. The entries of `me` and of the key's current holder do not
    /// count; entries past their lifetime are dropped on the way.
    pub(crate) fn ahead(&mut self, key: &str, me: &str, ticket: u64, now: Instant) -> Ahead {
        let lifetime = self.lifetime;
        let Some(line) = self.keys.get_mut(key) else {
            return Ahead::Nobody;
        };
        line.entries
            .retain(|_, seen| crate::deadline::after(seen.at, lifetime) > now);
        let holder = line.holder.as_deref();
        let first_gone = line
            .entries
            .iter()
            .filter(|(id, seen)| {
                seen.ticket < ticket && id.as_str() != me && Some(id.as_str()) != holder
            })
            .map(|(_, seen)| crate::deadline::after(seen.at, lifetime))
            .min();
        if line.entries.is_empty() {
            self.keys.remove(key);
        }
        match first_gone {
            Some(at) => Ahead::Until(at),
            None => Ahead::Nobody,
        }
    }

    /// Whether anyone but `me` waits in the line of `key` (a newcomer then joins it rather
    /// than write to the key first).
    pub(crate) fn anyone_waiting(&mut self, key: &str, me: &str, now: Instant) -> bool {
        matches!(self.ahead(key, me, u64::MAX, now), Ahead::Until(_))
    }

    /// How many keys have a line here (for tests of what is kept).
    #[cfg(test)]
    fn lines(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::lock::line::{encode_ticket, entry_key};

    const LIFE: Duration = Duration::from_secs(10);

    fn change(key: &str, revision: u64, op: ChangeOp, value: Bytes) -> Change {
        Change {
            key: key.to_owned(),
            revision,
            op,
            value,
            stored_at_ms: None,
        }
    }

    fn created(id: &str, revision: u64) -> Change {
        change(&entry_key("k", id), revision, ChangeOp::Put, Bytes::new())
    }

    fn holder_value(tenure: &str) -> Bytes {
        Holder {
            owner: "o".into(),
            host: "h".into(),
            pid: 1,
            acquired_at_ms: 0,
            description: None,
            tenure: tenure.into(),
            token: None,
            permits: None,
            foreign: false,
        }
        .encode()
    }

    #[test]
    fn the_lowest_ticket_is_first_and_the_next_waits_for_it() {
        let now = Instant::now();
        let mut v = LineView::new(LIFE);
        v.apply(&created("a", 5), now);
        v.apply(&created("b", 7), now);
        assert_eq!(v.ahead("k", "a", 5, now), Ahead::Nobody);
        assert_eq!(v.ahead("k", "b", 7, now), Ahead::Until(now + LIFE));
        assert!(v.anyone_waiting("k", "c", now));
        assert!(!v.anyone_waiting("other", "c", now));
    }

    #[test]
    fn a_deleted_entry_lets_the_next_go_and_names_its_key() {
        let now = Instant::now();
        let mut v = LineView::new(LIFE);
        v.apply(&created("a", 5), now);
        v.apply(&created("b", 7), now);
        let gone = change(
            &entry_key("k", "a"),
            9,
            ChangeOp::Ended(crate::store::End::Released),
            Bytes::new(),
        );
        assert_eq!(v.apply(&gone, now), Some("k"));
        assert_eq!(v.ahead("k", "b", 7, now), Ahead::Nobody);
    }

    #[test]
    fn an_entry_not_written_for_its_lifetime_counts_as_gone_and_a_rewrite_keeps_it() {
        let t0 = Instant::now();
        let mut v = LineView::new(LIFE);
        v.apply(&created("a", 5), t0);
        v.apply(&created("b", 7), t0);
        v.apply(&created("c", 8), t0);
        // b's rewrite (its ticket in the value) keeps b; a is never written again.
        let t1 = t0 + LIFE / 2;
        v.apply(
            &change(&entry_key("k", "b"), 11, ChangeOp::Put, encode_ticket(7)),
            t1,
        );
        let t2 = t0 + LIFE + Duration::from_millis(1);
        assert_eq!(v.ahead("k", "b", 7, t2), Ahead::Nobody);
        assert_eq!(v.ahead("k", "c", 8, t2), Ahead::Until(t1 + LIFE));
        let t3 = t1 + LIFE;
        assert_eq!(v.ahead("k", "c", 8, t3), Ahead::Nobody);
        // Nobody wrote since: the line is gone with its entries.
        assert_eq!(v.lines(), 0);
    }

    #[test]
    fn a_rewrite_seen_first_keeps_its_ticket_not_its_revision() {
        let now = Instant::now();
        let mut v = LineView::new(LIFE);
        v.apply(
            &change(&entry_key("k", "a"), 20, ChangeOp::Put, encode_ticket(5)),
            now,
        );
        v.apply(&created("b", 7), now);
        assert_eq!(v.ahead("k", "b", 7, now), Ahead::Until(now + LIFE));
        // An older write delivered late changes nothing.
        v.apply(
            &change(&entry_key("k", "a"), 6, ChangeOp::Put, Bytes::new()),
            now,
        );
        assert_eq!(v.ahead("k", "a", 5, now), Ahead::Nobody);
    }

    #[test]
    fn the_holders_own_entry_does_not_hold_the_line() {
        let now = Instant::now();
        let mut v = LineView::new(LIFE);
        v.apply(&created("a", 5), now);
        v.apply(&created("b", 7), now);
        v.apply(&change("k", 8, ChangeOp::Put, holder_value("a")), now);
        assert_eq!(v.ahead("k", "b", 7, now), Ahead::Nobody);
        // Released: a's entry, were it still there, counts again (a waits anew).
        v.apply(&change("k", 9, ChangeOp::Delete, Bytes::new()), now);
        assert_eq!(v.ahead("k", "b", 7, now), Ahead::Until(now + LIFE));
    }

    #[test]
    fn a_key_without_entries_keeps_nothing() {
        let now = Instant::now();
        let mut v = LineView::new(LIFE);
        v.apply(&change("k", 8, ChangeOp::Put, holder_value("a")), now);
        assert_eq!(v.lines(), 0);
        v.apply(&created("a", 9), now);
        let gone = change(&entry_key("k", "a"), 10, ChangeOp::Delete, Bytes::new());
        v.apply(&gone, now);
        assert_eq!(v.lines(), 0);
    }
}
