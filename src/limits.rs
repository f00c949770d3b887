//! The bounds nlock checks input against: a value past one is rejected with a typed error
//! before anything is written. A leaf: it imports nothing of nlock, so the settings, the keys,
//! the lock values and the errors that name these bounds all build on it.
//!
//! ```
//! use std::time::Duration;
//! let too_long = nlock::limits::MAX_TTL + Duration::from_secs(1);
//! assert!(nlock::Config::builder().ttl(too_long).build().is_err());
//! assert!(nlock::validate_key(&"k".repeat(nlock::limits::MAX_KEY_LEN + 1)).is_err());
//! ```

use std::time::Duration;

/// The longest TTL accepted: 9,223,372,036 s (about 292 years). The server keeps a bucket's
/// `max_age` as signed 64-bit nanoseconds, so a longer TTL could not be stored; nlock refuses
/// it at build time rather than let the server refuse the bucket.
///
/// ```
/// use std::time::Duration;
/// let too_long = nlock::limits::MAX_TTL + Duration::from_secs(1);
/// assert!(matches!(
///     nlock::Config::builder().ttl(too_long).build(),
///     Err(nlock::ConfigError::TtlTooLong(_))
/// ));
/// ```
pub const MAX_TTL: Duration = Duration::from_secs(i64::MAX as u64 / 1_000_000_000);

/// The largest keep-alive factor accepted. A failed refresh is retried until the lease
/// deadline anyway, so more refreshes per TTL buy no safety: at 20 a refresh already leaves
/// 95 % of the TTL for retries, and each extra refresh is one more replicated write per lock.
/// At the shortest TTL (1 s) a factor of 20 refreshes every 50 ms.
///
/// ```
/// let factor = nlock::limits::MAX_KEEP_ALIVE_FACTOR;
/// assert!(nlock::Config::builder().keep_alive_factor(factor).build().is_ok());
/// assert!(nlock::Config::builder().keep_alive_factor(factor + 1).build().is_err());
/// ```
pub const MAX_KEEP_ALIVE_FACTOR: u32 = 20;

/// The shortest retry interval accepted. The fallback poll only backs up the watch; below
/// 10 ms every waiting key would read the bucket a hundred times a second or more, for
/// nothing the watch does not already deliver.
///
/// ```
/// let interval = nlock::limits::MIN_RETRY_INTERVAL;
/// assert!(nlock::Config::builder().retry_interval(interval).build().is_ok());
/// assert!(nlock::Config::builder().retry_interval(interval / 2).build().is_err());
/// ```
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// The shortest request timeout accepted. Below 10 ms even a loopback JetStream write
/// (a replicated one, or one that syncs to disk) often cannot be answered in time, so
/// almost every request would end "outcome unknown" and be retried.
///
/// ```
/// let timeout = nlock::limits::MIN_REQUEST_TIMEOUT;
/// assert!(nlock::Config::builder().request_timeout(timeout).build().is_ok());
/// assert!(nlock::Config::builder().request_timeout(timeout / 2).build().is_err());
/// ```
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(10);

/// The largest clock skew a config may allow for.
///
/// ```
/// use std::time::Duration;
/// let skew = nlock::limits::MAX_CLOCK_SKEW + Duration::from_secs(1);
/// assert!(matches!(
///     nlock::Config::builder().max_clock_skew(skew).build(),
///     Err(nlock::ConfigError::ClockSkew(_))
/// ));
/// ```
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The largest clock drift a config may allow for: 10 %.
///
/// ```
/// let ppm = nlock::limits::MAX_CLOCK_DRIFT_PPM;
/// assert!(nlock::Config::builder().max_clock_drift_ppm(ppm).build().is_ok());
/// assert!(nlock::Config::builder().max_clock_drift_ppm(ppm + 1).build().is_err());
/// ```
pub const MAX_CLOCK_DRIFT_PPM: u32 = 100_000;

/// The longest bucket name: the bucket's stream is `KV_<name>`, and a stream name is at most
/// 255 bytes.
///
/// ```
/// let name = "b".repeat(nlock::limits::MAX_BUCKET_LEN);
/// assert!(nlock::Config::builder().bucket(name.clone()).build().is_ok());
/// assert!(nlock::Config::builder().bucket(name + "b").build().is_err());
/// ```
pub const MAX_BUCKET_LEN: usize = 252;

/// The longest bucket description, in bytes: the server's limit for a stream description
/// (`JSMaxDescriptionLen` in nats-server).
///
/// ```
/// let description = "d".repeat(nlock::limits::MAX_BUCKET_DESCRIPTION + 1);
/// assert!(matches!(
///     nlock::Config::builder().description(description).build(),
///     Err(nlock::ConfigError::BucketDescriptionTooLong(_))
/// ));
/// ```
pub const MAX_BUCKET_DESCRIPTION: usize = 4096;

/// The longest key accepted, in bytes.
///
/// ```
/// let key = "k".repeat(nlock::limits::MAX_KEY_LEN);
/// assert!(nlock::validate_key(&key).is_ok());
/// assert!(nlock::validate_key(&(key + "k")).is_err());
/// ```
pub const MAX_KEY_LEN: usize = 1024;

/// The longest caller-supplied description, in bytes; it keeps the lock value small.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) {
/// let long = "x".repeat(nlock::limits::MAX_DESCRIPTION + 1);
/// let err = m.lock("jobs.nightly").description(long).try_acquire().await.unwrap_err();
/// assert_eq!(err.kind(), nlock::AcquireErrorKind::InvalidConfig);
/// # }
/// ```
pub const MAX_DESCRIPTION: usize = 512;

/// How much of a foreign lock value (one not written by nlock) a [`Holder`](crate::Holder) shows, in bytes:
/// enough for an id or a host name, not enough to carry a large value into every error.
///
/// ```
/// let h = nlock::Holder::foreign(&[b'a'; 1000]);
/// assert_eq!(h.owner.len(), nlock::limits::MAX_FOREIGN_VALUE);
/// ```
pub const MAX_FOREIGN_VALUE: usize = 256;

/// The smallest whole-second TTL longer than `request_timeout`: what an error suggests.
pub(crate) fn smallest_ttl_above(request_timeout: Duration) -> Duration {
    Duration::from_secs(request_timeout.as_secs().saturating_add(1))
}

/// The most permits a semaphore may have: each is a key, and a waiting request keeps a place
/// in the line of each.
///
/// ```
/// assert_eq!(nlock::limits::MAX_PERMITS, 256);
/// ```
pub const MAX_PERMITS: u32 = 256;
