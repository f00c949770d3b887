//! The bounds nlock checks input against: a value past one is rejected with a typed error
//! before anything is written. A leaf: it imports nothing of nlock, so the settings, the keys,
//! the lock values and the errors that name these bounds all build on it.

use std::time::Duration;

/// The longest TTL accepted: 9,223,372,036 s (about 292 years). The server keeps a bucket's
/// `max_age` as signed 64-bit nanoseconds, so a longer TTL could not be stored; nlock refuses
/// it at build time rather than let the server refuse the bucket.
pub const MAX_TTL: Duration = Duration::from_secs(i64::MAX as u64 / 1_000_000_000);

/// The largest keep-alive factor accepted. A failed refresh is retried until the lease
/// deadline anyway, so more refreshes per TTL buy no safety: at 20 a refresh already leaves
/// 95 % of the TTL for retries, and each extra refresh is one more replicated write per lock.
/// At the shortest TTL (1 s) a factor of 20 refreshes every 50 ms.
pub const MAX_KEEP_ALIVE_FACTOR: u32 = 20;

/// The shortest retry interval accepted. The fallback poll only backs up the watch; below
/// 10 ms every waiting key would read the bucket a hundred times a second or more, for
/// nothing the watch does not already deliver.
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// The shortest request timeout accepted. Below 10 ms even a loopback JetStream write
/// (a replicated one, or one that syncs to disk) often cannot be answered in time, so
/// almost every request would end "outcome unknown" and be retried.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(10);

/// The largest clock skew a config may allow for.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The largest clock drift a config may allow for: 10 %.
pub const MAX_CLOCK_DRIFT_PPM: u32 = 100_000;

/// The longest bucket name: the bucket's stream is `KV_<name>`, and a stream name is at most
/// 255 bytes.
pub const MAX_BUCKET_LEN: usize = 252;

/// The longest bucket description, in bytes: the server's limit for a stream description
/// (`JSMaxDescriptionLen` in nats-server).
pub const MAX_BUCKET_DESCRIPTION: usize = 4096;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The longest caller-supplied description, in bytes; it keeps the lock value small.
pub const MAX_DESCRIPTION: usize = 512;

/// How much of a foreign lock value (one not written by nlock) a [`Holder`](crate::Holder) shows, in bytes:
/// enough for an id or a host name, not enough to carry a large value into every error.
pub const MAX_FOREIGN_VALUE: usize = 256;

/// The smallest whole-second TTL longer than `request_timeout`: what an error suggests.
pub(crate) fn smallest_ttl_above(request_timeout: Duration) -> Duration {
    Duration::from_secs(request_timeout.as_secs().saturating_add(1))
}
