//! `--lock-ttl` of `run` and `elect`: a TTL for one lock instead of the bucket's, checked
//! before anything is written.

use std::time::Duration;

use nlock::{ConfigError, Feature, LockError, LockManager};

/// What `--help` says of `--lock-ttl` against `--ttl`.
pub const HELP: &str = "This lock's TTL, instead of the bucket's --ttl: how long after its \
    holder stops refreshing (a crash, a kill -9, a cut connection) the key is free again. At \
    most the bucket's --ttl, which is a setting of the bucket itself and must match it; \
    --lock-ttl is per lock, so a short failover needs no new bucket. Needs nats-server 2.11+ \
    and a bucket with per-message TTL (`nlock info` says).";

/// Checks `--lock-ttl` against the bucket and the server before anything is written: at most
/// the bucket's TTL (usage), longer than one request (usage), and a server and bucket that
/// give per-lock TTL (`ErrorKind::Unsupported`, exit 1).
pub fn check(
    manager: &LockManager,
    bucket_ttl: Duration,
    request_timeout: Duration,
    ttl: Duration,
) -> Result<(), LockError> {
    if ttl > bucket_ttl {
        return Err(ConfigError::LockTtlAboveBucketTtl { ttl, bucket_ttl }.into());
    }
    if ttl <= request_timeout {
        return Err(ConfigError::LockTtlNotAboveRequestTimeout {
            ttl,
            request_timeout,
        }
        .into());
    }
    let caps = manager.capabilities();
    if !caps.per_lock_ttl {
        return Err(LockError::Unsupported {
            feature: Feature::PerLockTtl,
            server_version: caps.server_version.clone(),
        });
    }
    Ok(())
}

/// The advice added to an `Unsupported` per-lock TTL error.
pub const UNSUPPORTED_HINT: &str = " (--lock-ttl needs nats-server 2.11+ and a bucket with \
    per-message TTL: a bucket made by an older server or with --go-compatible has none; \
    `nlock info` says, `nlock info --upgrade-bucket` adds it. Or leave --lock-ttl out: the \
    lock then has the bucket's --ttl)";
