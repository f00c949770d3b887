//! `ConfigError`: a configuration value or a request's option that is wrong, found before
//! anything is written; and `KeyRule`, the rule a rejected key broke.

use std::time::Duration;

/// What a configuration value got wrong. Every variant is found before anything is written.
///
/// ```
/// use std::time::Duration;
/// let err = nlock::Config::builder().replicas(7).build().unwrap_err();
/// assert_eq!(err, nlock::ConfigError::Replicas(7));
/// // As a LockError, its kind is InvalidConfig.
/// assert_eq!(nlock::LockError::from(err).kind(), nlock::ErrorKind::InvalidConfig);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Bucket names are `[A-Za-z0-9_-]+`.
    #[error("invalid bucket name {0:?}: use letters, digits, '_' and '-'")]
    BucketName(String),
    /// TTLs are at least one second.
    #[error("invalid TTL {0:?}: a TTL must be at least 1 s")]
    TtlTooShort(Duration),
    /// TTLs are at most [`MAX_TTL`](crate::limits::MAX_TTL): the server keeps `max_age` as signed
    /// 64-bit nanoseconds.
    #[error(
        "invalid TTL {0:?}: a TTL must be at most {max:?}",
        max = crate::limits::MAX_TTL
    )]
    TtlTooLong(Duration),
    /// Per-message TTLs are sent in whole seconds; a fraction would be silently truncated.
    #[error("invalid TTL {0:?}: a TTL must be a whole number of seconds")]
    TtlNotWholeSeconds(Duration),
    /// The keep-alive factor must leave time for at least one retry before the lease ends,
    /// and is at most [`MAX_KEEP_ALIVE_FACTOR`](crate::limits::MAX_KEEP_ALIVE_FACTOR).
    #[error(
        "invalid keep-alive factor {0}: it must be between 2 and {max}",
        max = crate::limits::MAX_KEEP_ALIVE_FACTOR
    )]
    KeepAliveFactor(u32),
    /// A retry interval under [`MIN_RETRY_INTERVAL`](crate::limits::MIN_RETRY_INTERVAL) would poll
    /// the server for nothing.
    #[error(
        "invalid retry interval {0:?}: it must be at least {min:?}",
        min = crate::limits::MIN_RETRY_INTERVAL
    )]
    RetryInterval(Duration),
    /// Replicas must be 1 to 5 (the JetStream limit).
    #[error("invalid replica count {0}: it must be between 1 and 5")]
    Replicas(usize),
    /// The request timeout is at least [`MIN_REQUEST_TIMEOUT`](crate::limits::MIN_REQUEST_TIMEOUT).
    #[error(
        "invalid request timeout {0:?}: it must be at least {min:?}",
        min = crate::limits::MIN_REQUEST_TIMEOUT
    )]
    RequestTimeout(Duration),
    /// The lease margin must be shorter than half the TTL.
    #[error("invalid lease margin {0:?}: it must be shorter than half the TTL")]
    LeaseMargin(Duration),
    /// The clock skew the restart grace allows for is above [`MAX_CLOCK_SKEW`](crate::limits::MAX_CLOCK_SKEW).
    #[error("invalid max clock skew {0:?}: at most 1 hour")]
    ClockSkew(Duration),
    /// The clock drift the takeover allows for is above
    /// [`MAX_CLOCK_DRIFT_PPM`](crate::limits::MAX_CLOCK_DRIFT_PPM).
    #[error("invalid max clock drift {0} ppm: at most 100000 (10 %)")]
    ClockDrift(u32),
    /// A per-lock TTL longer than the bucket's: the bucket's `max_age` would expire the key
    /// first.
    #[error("per-lock TTL {ttl:?} is longer than the bucket TTL {bucket_ttl:?}")]
    LockTtlAboveBucketTtl {
        /// The TTL asked for.
        ttl: Duration,
        /// The bucket's TTL (`max_age`).
        bucket_ttl: Duration,
    },
    /// A per-lock TTL no longer than one request: the lease could end before the grant.
    #[error(
        "per-lock TTL {ttl:?} must be longer than the request timeout {request_timeout:?}: \
         use a TTL of at least {smallest:?}, or a shorter request timeout",
        smallest = crate::limits::smallest_ttl_above(*request_timeout)
    )]
    LockTtlNotAboveRequestTimeout {
        /// The TTL asked for.
        ttl: Duration,
        /// The manager's request timeout.
        request_timeout: Duration,
    },
    /// A semaphore has at least one permit and at most
    /// [`MAX_PERMITS`](crate::limits::MAX_PERMITS).
    #[error("invalid permit count {0}: a semaphore has 1 to {max} permits", max = crate::limits::MAX_PERMITS)]
    Permits(u32),
    /// Another process holds a permit of this semaphore with another permit count: the
    /// processes sharing a semaphore must agree on it, or the smaller count would not hold.
    #[error("semaphore {name:?} is used with {found} permits elsewhere, not {permits}")]
    PermitsMismatch {
        /// The semaphore.
        name: String,
        /// The count asked for here.
        permits: u32,
        /// The count a holder elsewhere asked for.
        found: u32,
    },
    /// The description stored in the lock value is too long.
    #[error("description is {0} bytes; at most {max} are allowed", max = crate::limits::MAX_DESCRIPTION)]
    DescriptionTooLong(usize),
    /// The bucket does not exist, and this manager may not create it
    /// ([`ConfigBuilder::create_bucket`](crate::ConfigBuilder::create_bucket) off, as for a
    /// read-only observer). Nothing was created.
    #[error("bucket {bucket:?} does not exist; nothing was created")]
    BucketNotFound {
        /// The bucket name.
        bucket: String,
    },
    /// The bucket exists with settings that differ from the ones asked for. Nothing was changed.
    #[error(
        "bucket {bucket:?} exists with {setting} = {found}, but this manager wants {wanted}; \
         nothing was changed"
    )]
    BucketMismatch {
        /// The bucket name.
        bucket: String,
        /// Which setting differs.
        setting: &'static str,
        /// What this manager asked for.
        wanted: String,
        /// What the existing bucket has.
        found: String,
    },
    /// A bucket name longer than [`MAX_BUCKET_LEN`](crate::limits::MAX_BUCKET_LEN) bytes: its stream
    /// name, `KV_<name>`, would pass the server's 255-byte limit.
    #[error(
        "bucket name is {0} bytes; at most {max} are allowed (its stream is KV_<name>)",
        max = crate::limits::MAX_BUCKET_LEN
    )]
    BucketNameTooLong(usize),
    /// A bucket description longer than the server accepts for a stream.
    #[error(
        "bucket description is {0} bytes; at most {max} are allowed",
        max = crate::limits::MAX_BUCKET_DESCRIPTION
    )]
    BucketDescriptionTooLong(usize),
    /// An explicit request timeout no shorter than the bucket TTL: a lease could end before a
    /// refresh is answered.
    #[error(
        "request timeout {request_timeout:?} must be shorter than the TTL {ttl:?}: use a TTL \
         of at least {smallest_ttl:?}, or a shorter request timeout"
    )]
    RequestTimeoutNotBelowTtl {
        /// The request timeout set.
        request_timeout: Duration,
        /// The bucket TTL set.
        ttl: Duration,
        /// The smallest whole-second TTL that this request timeout fits.
        smallest_ttl: Duration,
    },
    /// A JetStream domain or API prefix that would not make a valid subject (empty, a
    /// wildcard, whitespace, or a '.' in a domain).
    #[error("invalid JetStream {0:?}: it must be a subject without wildcards or spaces")]
    JetStreamApi(crate::connection::JetStreamApi),
}

/// The key rule a rejected key broke (see [`validate_key`](crate::validate_key)).
///
/// ```
/// match nlock::validate_key("jobs..nightly") {
///     Err(nlock::LockError::InvalidKey { rule, .. }) => assert_eq!(rule, nlock::KeyRule::EmptyToken),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRule {
    /// A key must not be empty.
    Empty,
    /// A key is at most [`MAX_KEY_LEN`](crate::limits::MAX_KEY_LEN) bytes.
    TooLong,
    /// A key must not start or end with '.'.
    DotAtEdge,
    /// A key must not contain an empty token ("..").
    EmptyToken,
    /// Keys starting with `_kv` are reserved by NATS KV, and the `_nlock` token by nlock.
    Reserved,
    /// Only letters, digits, '-', '/', '_', '=' and '.' are allowed.
    Character,
}

impl std::fmt::Display for KeyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyRule::Empty => "a key must not be empty",
            KeyRule::TooLong => "a key must be at most 1024 bytes",
            KeyRule::DotAtEdge => "a key must not start or end with '.'",
            KeyRule::EmptyToken => "a key must not contain an empty token ('..')",
            KeyRule::Reserved => {
                "keys starting with '_kv' are reserved by NATS KV, and the '_nlock' token by nlock"
            }
            KeyRule::Character => {
                "a key may only contain letters, digits, '-', '/', '_', '=' and '.'"
            }
        })
    }
}
