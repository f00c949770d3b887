//! The lock value: a record of who holds the lock, written on acquire and on every refresh.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The longest caller-supplied description, in bytes; it keeps the lock value small.
pub const MAX_DESCRIPTION: usize = 512;

/// Who holds a lock: stored as JSON in the lock's KV value, shown by busy errors and state.
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
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
        // Serialising a struct of strings and integers cannot fail; an empty value would
        // still be a valid lock, only without a readable holder.
        // Shrunk: the value lives as long as the tenure, and serde's buffer is twice its size.
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.shrink_to_fit();
        v.into()
    }

    /// Decodes a lock value; `None` for values not written by nlock.
    pub(crate) fn decode(value: &[u8]) -> Option<Holder> {
        serde_json::from_slice(value).ok()
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

    #[test]
    fn round_trips_and_rejects_foreign_values() {
        let h = Holder {
            owner: "o".into(),
            host: "h".into(),
            pid: 7,
            acquired_at_ms: 1,
            description: Some("d".into()),
            tenure: "t".into(),
            token: None,
        };
        assert_eq!(Holder::decode(&h.encode()), Some(h.clone()));
        assert!(h.encode().starts_with(&value_prefix("o")));
        assert!(!h.encode().starts_with(&value_prefix("other")));
        assert_eq!(Holder::decode(b"not json"), None);
    }
}
