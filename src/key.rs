//! Validation of lock keys and bucket names, done before anything is sent to NATS.
//!
//! The rules are NATS KV's: a key is one or more dot-separated tokens of `[-/_=A-Za-z0-9]`,
//! with no empty token (so no leading, trailing or doubled dot). The `_kv` prefix is reserved
//! by NATS KV clients, and a key longer than [`MAX_KEY_LEN`] is refused so that the subject
//! stays well under the server's limits.

use crate::error::{ConfigError, LockError};

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Checks a lock key against the NATS KV key rules.
///
/// ```
/// assert!(nlock::validate_key("jobs.nightly-report").is_ok());
/// assert_eq!(
///     nlock::validate_key(".jobs").unwrap_err().kind(),
///     nlock::ErrorKind::InvalidKey
/// );
/// ```
pub fn validate_key(key: &str) -> Result<(), LockError> {
    let fail = |why| {
        Err(LockError::InvalidKey {
            key: key.to_owned(),
            why,
        })
    };
    if key.is_empty() {
        return fail("a key must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return fail("a key must be at most 1024 bytes");
    }
    if key.starts_with('.') || key.ends_with('.') {
        return fail("a key must not start or end with '.'");
    }
    if key.contains("..") {
        return fail("a key must not contain an empty token ('..')");
    }
    if key.starts_with("_kv") {
        return fail("keys starting with '_kv' are reserved by NATS KV");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=' | '.');
    if !key.chars().all(allowed) {
        return fail("a key may only contain letters, digits, '-', '/', '_', '=' and '.'");
    }
    Ok(())
}

/// Checks a bucket name: `[A-Za-z0-9_-]+`.
pub(crate) fn validate_bucket(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 255
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
    use crate::error::ErrorKind;

    #[test]
    fn accepts_nats_kv_keys() {
        for key in ["a", "jobs.nightly", "a/b=c-d_e", "A1.b2.C3"] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn rejects_each_rule() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for key in [
            "",
            ".a",
            "a.",
            "a..b",
            "a b",
            "a*",
            "a>",
            "_kv.x",
            "é",
            long.as_str(),
        ] {
            let err = validate_key(key).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidKey, "{key}");
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
}
