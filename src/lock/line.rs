//! The line across processes: a key's waiters, in every process, are served in the order
//! they began to wait (GUARANTEES.md, "Waiters in arrival order across processes").
//!
//! A request that waits writes an entry key of its own, `_nlock.q.<key>.<id>`, with a create
//! (`entry.rs`). The revision of that create is its ticket: the stream orders every write, so
//! tickets order arrivals across processes. The entry is rewritten every third of the
//! bucket's TTL and expires with the bucket's `max_age` when its writer stops (a crashed or
//! paused waiter), and is deleted when its request is served or withdrawn.
//!
//! Every manager keeps what its change stream tells it of all entries (`view.rs`): no read
//! and no consumer per waiter. A waiter writes to the lock key only while no live entry of
//! another request with a lower ticket is in its manager's view, apart from the current
//! holder's own entry: so a release is followed by one compare-and-set, the first waiter's.
//! An entry whose writes this manager has not seen for the entry's lifetime counts as gone,
//! whatever the server announces (a 2.9 server announces no expiry).
//!
//! The line orders nlock waiters only; it never decides who holds a key, which is still the
//! compare-and-set's alone. Clients that do not queue (Go nlock, earlier nlock versions, a
//! `try_acquire`) may take a free key ahead of the line, never at the same time as anyone.

/// `Entry`: one waiting request's entry key, kept alive while it waits.
mod entry;
/// `Seat`: a waiting contender's place in its key's line.
mod seat;
/// `LineView`: every entry this manager knows of, per key.
mod view;

pub(crate) use entry::Entry;
pub(crate) use seat::Seat;
pub(crate) use view::{Ahead, LineView};

use bytes::Bytes;

/// Where entry keys live: reserved, so no lock key can be one (`validate_key`).
pub(crate) const ENTRY_PREFIX: &str = crate::key::LINE_PREFIX;

/// The filter of every entry key, for a snapshot of all lines.
pub(crate) const ENTRY_PREFIX_FILTER: &str = "_nlock.q.>";

/// The entry key of request `id` in the line of `key`.
pub(crate) fn entry_key(key: &str, id: &str) -> String {
    format!("{ENTRY_PREFIX}{key}.{id}")
}

/// The lock key and the request id of an entry key; `None` for any other key.
pub(crate) fn parse_entry(entry: &str) -> Option<(&str, &str)> {
    let rest = entry.strip_prefix(ENTRY_PREFIX)?;
    let (key, id) = rest.rsplit_once('.')?;
    (!key.is_empty() && !id.is_empty()).then_some((key, id))
}

/// An entry's value after its create: its ticket, so that a manager that first sees a later
/// rewrite still knows where the entry stands.
pub(crate) fn encode_ticket(ticket: u64) -> Bytes {
    Bytes::from(ticket.to_string())
}

/// The ticket an entry's value names; `None` for the create's empty value (its ticket is its
/// own revision) or a value nlock did not write.
pub(crate) fn decode_ticket(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_name_their_lock_key_and_request() {
        let e = entry_key("jobs.nightly", "ab12");
        assert_eq!(e, "_nlock.q.jobs.nightly.ab12");
        assert_eq!(parse_entry(&e), Some(("jobs.nightly", "ab12")));
        assert_eq!(parse_entry("jobs.nightly"), None);
        assert_eq!(parse_entry("_nlock.q.onlyid"), None);
        assert!(crate::key::is_internal(&e) && crate::key::is_line_entry(&e));
        assert!(!crate::key::is_internal("_nlockish"));
        assert!(!crate::key::is_internal("jobs"));
        let permit = crate::key::permit_key("pool", 3);
        assert!(crate::key::is_internal(&permit) && !crate::key::is_line_entry(&permit));
        assert_eq!(crate::key::parse_permit_key(&permit), Some(("pool", 3)));
    }

    #[test]
    fn tickets_round_trip_and_an_empty_value_has_none() {
        assert_eq!(decode_ticket(&encode_ticket(42)), Some(42));
        assert_eq!(decode_ticket(b""), None);
        assert_eq!(decode_ticket(b"{\"owner\":1}"), None);
    }
}
