//! The lock value: a record of who holds the lock, written on acquire and on every refresh.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::limits::MAX_FOREIGN_VALUE;

/// Who holds a lock: stored as JSON in the lock's KV value, shown by busy errors and state.
///
/// A value nlock did not write (Go nlock's random id, or anything else a client put there)
/// is shown as a *foreign* holder: `foreign` is true, `owner` is the raw value (lossily
/// decoded as UTF-8, at most [`MAX_FOREIGN_VALUE`] bytes), `host` and `tenure` are empty and
/// `pid` and `acquired_at_ms` are 0.
///
/// ```
/// let h = nlock::Holder::foreign(b"3f2a9c");
/// assert!(h.foreign);
/// assert_eq!(h.to_string(), "foreign holder \"3f2a9c\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Holder {
    /// The holding manager's owner id (unique per `LockManager`).
    pub owner: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// When the lock was acquired, in milliseconds since the Unix epoch (holder's clock).
    pub acquired_at_ms: u64,
    /// The caller-supplied description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Unique per tenure: lets a holder recognise its own write after an unknown outcome.
    pub tenure: String,
    /// The tenure's fencing token, written from the first refresh on (the acquiring write
    /// cannot know its own revision; there, the token is that write's revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// For a permit of a semaphore: the semaphore's permit count, as the holder asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permits: Option<u32>,
    /// The value was not written by nlock; `owner` holds the raw value. Never written by
    /// nlock itself (skipped when false, so the stored JSON is what it was before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.foreign {
            // Debug formatting quotes the raw value and escapes control characters in it.
            return write!(f, "foreign holder {:?}", self.owner);
        }
        write!(f, "{} (pid {} on {})", self.owner, self.pid, self.host)?;
        if let Some(d) = &self.description {
            write!(f, " \"{d}\"")?;
        }
        Ok(())
    }
}

impl Holder {
    /// Encodes the record as the lock value.
    pub(crate) fn encode(&self) -> bytes::Bytes {
        self.encode_boxed().into()
    }

    /// Encodes the record, in a buffer of exactly its length.
    pub(crate) fn encode_boxed(&self) -> Box<[u8]> {
        // Serialising a struct of strings and integers cannot fail; an empty value would
        // still be a valid lock, only without a readable holder.
        // Shrunk: the value lives as long as the tenure, and serde's buffer is twice its size.
        serde_json::to_vec(self)
            .unwrap_or_default()
            .into_boxed_slice()
    }

    /// Decodes a lock value: nlock's own record, or a [foreign](Holder::foreign) holder for
    /// any other value. `None` only for an empty value, which names nobody.
    pub(crate) fn decode(value: &[u8]) -> Option<Holder> {
        if value.is_empty() {
            return None;
        }
        Some(serde_json::from_slice(value).unwrap_or_else(|_| Holder::foreign(value)))
    }

    /// A holder for a lock value nlock did not write: the raw value, lossily decoded as UTF-8
    /// and cut to at most [`MAX_FOREIGN_VALUE`] bytes (at a character boundary).
    ///
    /// ```
    /// let h = nlock::Holder::foreign("ü".repeat(200).as_bytes());
    /// assert!(h.foreign && h.owner.len() <= nlock::limits::MAX_FOREIGN_VALUE);
    /// assert_eq!((h.pid, h.acquired_at_ms, h.host.as_str()), (0, 0, ""));
    /// ```
    pub fn foreign(value: &[u8]) -> Holder {
        let mut owner = String::from_utf8_lossy(value).into_owned();
        if owner.len() > MAX_FOREIGN_VALUE {
            let mut end = MAX_FOREIGN_VALUE;
            while !owner.is_char_boundary(end) {
                end -= 1;
            }
            owner.truncate(end);
        }
        Holder {
            owner,
            host: String::new(),
            pid: 0,
            acquired_at_ms: 0,
            description: None,
            tenure: String::new(),
            token: None,
            permits: None,
            foreign: true,
        }
    }
}

/// How every lock value written by manager `owner` begins. `Holder` serialises its fields
/// in declaration order with `owner` first, so this is a prefix of each of its values; a unit
/// test keeps that true.
pub(crate) fn value_prefix(owner: &str) -> Vec<u8> {
    let mut prefix = b"{\"owner\":".to_vec();
    prefix.extend(serde_json::to_vec(owner).unwrap_or_default());
    prefix
}

/// Milliseconds since the Unix epoch on this machine's wall clock (0 if before it).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This machine's host name, best effort.
pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A random 128-bit id in hex: owner ids and tenure ids.
pub(crate) fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Holder {
        Holder {
            owner: "o".into(),
            host: "h".into(),
            pid: 7,
            acquired_at_ms: 1,
            description: Some("d".into()),
            tenure: "t".into(),
            token: None,
            permits: None,
            foreign: false,
        }
    }

    #[test]
    fn own_values_begin_with_the_owner_prefix() {
        let h = own();
        assert!(h.encode().starts_with(&value_prefix("o")));
        assert!(!h.encode().starts_with(&value_prefix("other")));
    }

    #[test]
    fn round_trips_without_a_foreign_field() {
        let h = own();
        let value = h.encode();
        assert!(!String::from_utf8_lossy(&value).contains("foreign"));
        assert_eq!(Holder::decode(&value), Some(h));
    }

    #[test]
    fn decodes_other_values_as_foreign_holders() {
        let h = Holder::decode(b"go-3f2a9c").unwrap();
        assert!(h.foreign);
        assert_eq!(h.owner, "go-3f2a9c");
        assert_eq!((h.host.as_str(), h.pid, h.tenure.as_str()), ("", 0, ""));
        assert_eq!(h.to_string(), r#"foreign holder "go-3f2a9c""#);
        // Not UTF-8, and JSON of another shape: still shown, never an nlock record.
        assert_eq!(Holder::decode(b"a\xffb").unwrap().owner, "a\u{fffd}b");
        assert!(Holder::decode(br#"{"owner":"x"}"#).unwrap().foreign);
        assert_eq!(Holder::decode(b""), None);
    }

    #[test]
    fn caps_a_foreign_value_at_a_character_boundary() {
        let long = "é".repeat(MAX_FOREIGN_VALUE); // two bytes each
        let h = Holder::foreign(long.as_bytes());
        assert_eq!(h.owner.len(), MAX_FOREIGN_VALUE);
        let odd = format!("x{long}");
        let h = Holder::foreign(odd.as_bytes());
        assert_eq!(h.owner.len(), MAX_FOREIGN_VALUE - 1);
        assert!(h.owner.starts_with("xé"));
    }
}
