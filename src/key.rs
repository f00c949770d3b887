//! Validation of lock keys and bucket names, done before anything is sent to NATS.
//!
//! The rules are NATS KV's: a key is one or more dot-separated tokens of `[-/_=A-Za-z0-9]`,
//! with no empty token (so no leading, trailing or doubled dot). The `_kv` prefix is reserved
//! by NATS KV clients, and the `_nlock` token by nlock for its own keys (the line across
//! processes), and a key longer than [`MAX_KEY_LEN`] is refused so that the subject
//! stays well under the server's limits.

use crate::error::{ConfigError, KeyRule, LockError};
use crate::limits::{MAX_BUCKET_LEN, MAX_KEY_LEN};

/// Checks a lock key against the NATS KV key rules.
///
/// ```
/// assert!(nlock::validate_key("jobs.nightly-report").is_ok());
/// assert_eq!(
///     nlock::validate_key(".jobs").unwrap_err().kind(),
///     nlock::ErrorKind::InvalidKey
/// );
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey): a
/// [`LockError::InvalidKey`] naming the key and the [`KeyRule`] it broke.
pub fn validate_key(key: &str) -> Result<(), LockError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=' | '.');
    let broken = if key.is_empty() {
        Some(KeyRule::Empty)
    } else if key.len() > MAX_KEY_LEN {
        Some(KeyRule::TooLong)
    } else if key.starts_with('.') || key.ends_with('.') {
        Some(KeyRule::DotAtEdge)
    } else if key.contains("..") {
        Some(KeyRule::EmptyToken)
    } else if key.starts_with("_kv") || is_internal(key) {
        Some(KeyRule::Reserved)
    } else if !key.chars().all(allowed) {
        Some(KeyRule::Character)
    } else {
        None
    };
    match broken {
        None => Ok(()),
        Some(rule) => Err(LockError::InvalidKey {
            key: key.to_owned(),
            rule,
        }),
    }
}

/// Whether a key is one nlock keeps for itself (the `_nlock` token: entries of the line
/// across processes, permits of semaphores): no lock key given by a caller may be one.
pub(crate) fn is_internal(key: &str) -> bool {
    key == "_nlock" || key.starts_with("_nlock.")
}

/// Checks a key that can be held: a lock key ([`validate_key`]), the key of a semaphore's
/// permit (`_nlock.s.<name>.<index>`) or of a read-write lock's reader or writer
/// (`_nlock.rw.<name>.<r|w>.<id>`), as [`LockHandle::key`](crate::LockHandle::key) names
/// them: observers and operators may name those, no lock request may.
///
/// ```
/// assert!(nlock::validate_held_key("jobs.nightly").is_ok());
/// assert!(nlock::validate_held_key("_nlock.s.pool.0").is_ok());
/// assert!(nlock::validate_held_key("_nlock.rw.schema.w.3f2a").is_ok());
/// assert!(nlock::validate_held_key("_nlock.q.jobs.1").is_err());
/// assert!(nlock::validate_key("_nlock.s.pool.0").is_err());
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey), as [`validate_key`].
pub fn validate_held_key(key: &str) -> Result<(), LockError> {
    let name = parse_permit_key(key)
        .map(|(name, _)| name)
        .or_else(|| parse_rw_key(key).map(|(name, _)| name));
    match name {
        Some(name) => validate_key(name).map_err(|_| LockError::InvalidKey {
            key: key.to_owned(),
            rule: KeyRule::Reserved,
        }),
        None => validate_key(key),
    }
}

/// Where the permits of semaphores live: `_nlock.s.<name>.<index>`, one lock key per permit.
pub(crate) const PERMIT_PREFIX: &str = "_nlock.s.";

/// The key of permit `index` of semaphore `name`.
pub(crate) fn permit_key(name: &str, index: u32) -> String {
    format!("{PERMIT_PREFIX}{name}.{index}")
}

/// Where the members of read-write locks live: `_nlock.rw.<name>.<r|w>.<id>`, one lock key
/// per request, kept from the request until its release.
pub(crate) const RW_PREFIX: &str = "_nlock.rw.";

/// The key of request `id` (a reader's or a writer's) of read-write lock `name`.
pub(crate) fn rw_key(name: &str, writer: bool, id: &str) -> String {
    let mode = if writer { "w" } else { "r" };
    format!("{RW_PREFIX}{name}.{mode}.{id}")
}

/// The name of a read-write lock and whether the member is a writer, from a member's key.
pub(crate) fn parse_rw_key(key: &str) -> Option<(&str, bool)> {
    let rest = key.strip_prefix(RW_PREFIX)?;
    let (head, _id) = rest.rsplit_once('.')?;
    let (name, mode) = head.rsplit_once('.')?;
    match mode {
        "w" => Some((name, true)),
        "r" => Some((name, false)),
        _ => None,
    }
}

/// The semaphore name and permit index of a permit key; `None` for any other key.
pub(crate) fn parse_permit_key(key: &str) -> Option<(&str, u32)> {
    let rest = key.strip_prefix(PERMIT_PREFIX)?;
    let (name, index) = rest.rsplit_once('.')?;
    Some((name, index.parse().ok()?))
}

/// Where the entries of the lines across processes live: `_nlock.q.<key>.<id>`.
pub(crate) const LINE_PREFIX: &str = "_nlock.q.";

/// Whether a key is an entry of a line across processes: nlock's bookkeeping, which
/// observers do not list.
pub(crate) fn is_line_entry(key: &str) -> bool {
    key.starts_with(LINE_PREFIX)
}

/// Checks a bucket name: `[A-Za-z0-9_-]+`, at most [`MAX_BUCKET_LEN`] bytes.
pub(crate) fn validate_bucket(name: &str) -> Result<(), ConfigError> {
    if name.len() > MAX_BUCKET_LEN {
        return Err(ConfigError::BucketNameTooLong(name.len()));
    }
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BucketName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nats_kv_keys() {
        for key in ["a", "jobs.nightly", "a/b=c-d_e", "A1.b2.C3"] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn rejects_each_rule() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let cases = [
            ("", KeyRule::Empty),
            (".a", KeyRule::DotAtEdge),
            ("a.", KeyRule::DotAtEdge),
            ("a..b", KeyRule::EmptyToken),
            ("a b", KeyRule::Character),
            ("a*", KeyRule::Character),
            ("a>", KeyRule::Character),
            ("é", KeyRule::Character),
            ("_kv.x", KeyRule::Reserved),
            ("_nlock", KeyRule::Reserved),
            ("_nlock.q.k.1", KeyRule::Reserved),
            (long.as_str(), KeyRule::TooLong),
        ];
        for (key, want) in cases {
            match validate_key(key) {
                Err(LockError::InvalidKey { rule, .. }) => assert_eq!(rule, want, "{key}"),
                other => panic!("{key}: expected InvalidKey, got {other:?}"),
            }
        }
    }

    #[test]
    fn bucket_names() {
        assert!(validate_bucket("distributed_locks").is_ok());
        assert!(validate_bucket("a-b_C9").is_ok());
        for name in ["", "a.b", "a b", "a/b"] {
            assert_eq!(
                validate_bucket(name),
                Err(ConfigError::BucketName(name.into()))
            );
        }
    }

    #[test]
    fn bucket_names_fit_a_stream_name() {
        // The stream is KV_<name>, and the server takes stream names up to 255 bytes.
        assert!(validate_bucket(&"b".repeat(MAX_BUCKET_LEN)).is_ok());
        for len in [MAX_BUCKET_LEN + 1, 255, 256] {
            assert_eq!(
                validate_bucket(&"b".repeat(len)),
                Err(ConfigError::BucketNameTooLong(len))
            );
        }
    }
}
