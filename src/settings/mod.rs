//! Manager options, with the Go nlock defaults, and a builder that validates them.

/// `ConfigBuilder` and its setters.
mod builder;
/// `ConfigBuilder::build` and the value rules, with their tests.
mod validate;

pub use builder::ConfigBuilder;

pub(crate) use validate::validate_ttl;

pub use crate::connection::JetStreamApi;
use crate::limits::MAX_CLOCK_DRIFT_PPM;

use std::time::Duration;

/// Go nlock's default bucket name.
///
/// ```
/// assert_eq!(nlock::Config::default().bucket(), nlock::config::DEFAULT_BUCKET);
/// ```
pub const DEFAULT_BUCKET: &str = "distributed_locks";
/// Go nlock's default lock TTL.
///
/// ```
/// assert_eq!(nlock::Config::default().ttl(), nlock::config::DEFAULT_TTL);
/// ```
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Go nlock's default retry interval (jitter is added on top).
///
/// ```
/// assert_eq!(nlock::Config::default().retry_interval(), nlock::config::DEFAULT_RETRY_INTERVAL);
/// ```
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// Go nlock's default keep-alive factor: refresh every TTL/3.
///
/// ```
/// assert_eq!(nlock::Config::default().keep_alive_factor(), nlock::config::DEFAULT_KEEP_ALIVE_FACTOR);
/// ```
pub const DEFAULT_KEEP_ALIVE_FACTOR: u32 = 3;
/// The request timeout when none is set, unless the bucket TTL is shorter than twice it:
/// then the default is TTL/2, so that every valid TTL (1 s and up) works with the default.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(nlock::Config::default().request_timeout(), nlock::config::DEFAULT_REQUEST_TIMEOUT);
/// let short = nlock::Config::builder().ttl(Duration::from_secs(1)).build().unwrap();
/// assert_eq!(short.request_timeout(), Duration::from_millis(500));
/// ```
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Default clock skew between hosts that the restart grace allows for.
///
/// ```
/// assert_eq!(nlock::Config::default().max_clock_skew(), nlock::config::DEFAULT_MAX_CLOCK_SKEW);
/// ```
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(1);
/// The default bound on how much faster or slower than real time a host's monotonic clock
/// runs, in parts per million: NTP slews a clock by at most 500 ppm, and a free-running
/// quartz is within about 100 ppm. A waiter's takeover at the end of a holder's lease allows
/// for this on both hosts ([`ConfigBuilder::max_clock_drift_ppm`]).
///
/// ```
/// assert_eq!(nlock::Config::default().max_clock_drift_ppm(), nlock::config::DEFAULT_MAX_CLOCK_DRIFT_PPM);
/// ```
pub const DEFAULT_MAX_CLOCK_DRIFT_PPM: u32 = 1_000;

/// Where the bucket keeps its messages.
///
/// ```
/// let config = nlock::Config::builder().storage(nlock::Storage::File).build().unwrap();
/// assert_eq!(config.storage(), nlock::Storage::File);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// In memory: fastest; every lock is gone when the server restarts (holders are told).
    Memory,
    /// On disk: locks survive a server restart (subject to the server's `sync_interval`).
    File,
}

/// Validated options of a [`LockManager`](crate::LockManager). Build with [`Config::builder`].
///
/// Its accessors read back what was built:
///
/// ```
/// use std::time::Duration;
/// let config = nlock::Config::default();
/// assert_eq!(config.bucket(), nlock::config::DEFAULT_BUCKET);
/// assert_eq!(config.ttl(), nlock::config::DEFAULT_TTL);
/// assert_eq!(config.keep_alive_factor(), nlock::config::DEFAULT_KEEP_ALIVE_FACTOR);
/// assert_eq!(config.request_timeout(), Duration::from_secs(2));
/// assert!(config.keep_alive() && config.restart_grace() && config.takeover());
/// assert_eq!(config.bucket_layout(), nlock::BucketLayout::Full);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) bucket: String,
    pub(crate) description: String,
    pub(crate) replicas: usize,
    pub(crate) ttl: Duration,
    pub(crate) retry_interval: Duration,
    pub(crate) keep_alive: bool,
    pub(crate) keep_alive_factor: u32,
    pub(crate) storage: Storage,
    pub(crate) request_timeout: Duration,
    pub(crate) lease_margin: Option<Duration>,
    /// Where the JetStream API is reached: `None` for the account's own `$JS.API`.
    pub(crate) jetstream_api: Option<JetStreamApi>,
    pub(crate) bucket_layout: BucketLayout,
    pub(crate) upgrade_bucket: bool,
    /// Whether a missing bucket is created (and re-created after a memory-storage restart).
    pub(crate) create_bucket: bool,
    /// Whether the manager follows the bucket's changes to notice foreign writes at once.
    pub(crate) follow_changes: bool,
    /// Whether new tenures wait out the restart grace of a bucket whose data is younger
    /// than one TTL.
    pub(crate) restart_grace: bool,
    /// The clock skew between hosts that the restart grace allows for.
    pub(crate) max_clock_skew: Duration,
    /// Whether a waiter takes a key at the end of its holder's lease, on its own clock,
    /// without waiting for the server to expire it.
    pub(crate) takeover: bool,
    /// How far a host's clock rate may drift from real time, in parts per million.
    pub(crate) max_clock_drift_ppm: u32,
    /// Whether waiters keep a place in a line across processes (needs `follow_changes`).
    pub(crate) queue: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bucket: DEFAULT_BUCKET.to_owned(),
            description: "nlock distributed locks".to_owned(),
            replicas: 1,
            ttl: DEFAULT_TTL,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            keep_alive: true,
            keep_alive_factor: DEFAULT_KEEP_ALIVE_FACTOR,
            storage: Storage::Memory,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            lease_margin: None,
            jetstream_api: None,
            bucket_layout: BucketLayout::Full,
            upgrade_bucket: false,
            create_bucket: true,
            follow_changes: true,
            restart_grace: true,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            takeover: true,
            max_clock_drift_ppm: DEFAULT_MAX_CLOCK_DRIFT_PPM,
            queue: true,
        }
    }
}

impl Config {
    /// Starts a builder with the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nlock::Config::builder()
    ///     .bucket("my_locks")
    ///     .ttl(Duration::from_secs(10))
    ///     .storage(nlock::Storage::File)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.ttl(), Duration::from_secs(10));
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
            request_timeout: None,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
    /// The default lock TTL (also the bucket's `max_age`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
    /// The base retry interval of the fallback poll.
    pub fn retry_interval(&self) -> Duration {
        self.retry_interval
    }
    /// Whether held locks refresh themselves.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
    /// Refresh every `ttl / keep_alive_factor`.
    pub fn keep_alive_factor(&self) -> u32 {
        self.keep_alive_factor
    }
    /// Bucket replicas.
    pub fn replicas(&self) -> usize {
        self.replicas
    }
    /// Bucket storage.
    pub fn storage(&self) -> Storage {
        self.storage
    }
    /// The bucket description, at most [`MAX_BUCKET_DESCRIPTION`](crate::limits::MAX_BUCKET_DESCRIPTION) bytes.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// How long one NATS request may take before its outcome counts as unknown: the value
    /// set on the builder, else 2 s or half the bucket TTL, whichever is shorter.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    /// The JetStream domain or API prefix, when one is set.
    pub fn jetstream_api(&self) -> Option<&JetStreamApi> {
        self.jetstream_api.as_ref()
    }

    /// Whether new locks wait out the restart grace.
    pub fn restart_grace(&self) -> bool {
        self.restart_grace
    }
    /// The clock skew the restart grace allows for.
    pub fn max_clock_skew(&self) -> Duration {
        self.max_clock_skew
    }

    /// Whether waiters take a key at the end of its holder's lease (see
    /// [`ConfigBuilder::takeover`]).
    pub fn takeover(&self) -> bool {
        self.takeover
    }

    /// The clock drift, in parts per million, that the takeover allows for on each host.
    pub fn max_clock_drift_ppm(&self) -> u32 {
        self.max_clock_drift_ppm
    }

    /// How long after this process saw a holder's last write a waiter may take the key: the
    /// longest lease a holder can count from that write (the bucket TTL `ttl`, counted from
    /// before the write was sent) on a clock that may run slow by the drift, measured on this
    /// host's clock that may run fast by it: `ttl * (1 + d) / (1 - d)`, rounded up to the next
    /// millisecond. `None` with the takeover off, or when `ttl` is zero (keys never expire).
    pub(crate) fn takeover_after(&self, ttl: Duration) -> Option<Duration> {
        if !self.takeover || ttl.is_zero() {
            return None;
        }
        Some(self.entry_lifetime(ttl))
    }
    /// How long a line entry counts, in every manager's view, after its last write seen
    /// there: past the server's expiry of it (the bucket's `max_age`, or the TTL when keys
    /// never age out), stretched for clock drift as the takeover is.
    pub(crate) fn entry_lifetime(&self, max_age: Duration) -> Duration {
        let ttl = if max_age.is_zero() { self.ttl } else { max_age };
        let ppm = u128::from(self.max_clock_drift_ppm.min(MAX_CLOCK_DRIFT_PPM));
        let nanos = ttl.as_nanos().saturating_mul(1_000_000 + ppm) / (1_000_000 - ppm);
        let millis = nanos.div_ceil(1_000_000).saturating_add(1);
        Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// How often a waiter rewrites its line entry: as often as a lock is refreshed.
    pub(crate) fn entry_keep_alive(&self, max_age: Duration) -> Duration {
        let ttl = if max_age.is_zero() { self.ttl } else { max_age };
        self.refresh_interval(ttl)
    }

    /// How long after its send a write keeps a line entry alive at the server, by this
    /// host's clock: the entry's expiry, less the drift on a TTL and a lease's margin.
    pub(crate) fn entry_valid_for(&self, max_age: Duration) -> Duration {
        if max_age.is_zero() {
            return crate::deadline::FAR_FUTURE;
        }
        let ppm = u128::from(self.max_clock_drift_ppm.min(MAX_CLOCK_DRIFT_PPM));
        let nanos = max_age.as_nanos().saturating_mul(1_000_000 - ppm) / 1_000_000;
        let drifted = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        drifted.saturating_sub(self.lease_margin(max_age))
    }

    /// Whether waiters keep a place in a line across processes (see [`ConfigBuilder::queue`]).
    pub fn queue(&self) -> bool {
        self.queue
    }

    /// The refresh interval for a lock of this TTL.
    pub(crate) fn refresh_interval(&self, ttl: Duration) -> Duration {
        ttl / self.keep_alive_factor
    }

    /// How much earlier than `send time + TTL` a holder gives a lock up: room for clock-rate
    /// differences between this host and the server, and for timer lateness. Defaults to
    /// TTL/20 plus 50 ms (1.55 s for the 30 s default).
    pub(crate) fn lease_margin(&self, ttl: Duration) -> Duration {
        self.lease_margin
            .unwrap_or(ttl / 20 + Duration::from_millis(50))
            .min(ttl / 2)
    }
}

/// How nlock lays out a bucket it creates, and which existing buckets it accepts.
///
/// ```no_run
/// # #[actix::main]
/// # async fn main() -> Result<(), nlock::LockError> {
/// // Share Go nlock's default bucket with Go services.
/// let config = nlock::Config::builder()
///     .bucket_layout(nlock::BucketLayout::GoCompatible)
///     .build()?;
/// let manager = nlock::LockManager::connect("nats://127.0.0.1:4222", config).await?;
/// assert!(!manager.capabilities().per_lock_ttl);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BucketLayout {
    /// Per-message TTL and limit markers where the server has them (2.11+): per-lock TTLs,
    /// and waiters wake when a lock expires. An existing bucket without them (made by an
    /// older server or by Go nlock) is used without those two features, with one warning;
    /// [`ConfigBuilder::upgrade_bucket`] adds them. Go nlock cannot start on a bucket with
    /// per-message TTL: its start-up update of the bucket is refused.
    #[default]
    Full,
    /// Exactly the bucket Go nlock creates (history 1, TTL as `max_age`, no per-message TTL,
    /// no limit markers), so that Go nlock's start-up update of the bucket succeeds. No
    /// per-lock TTL, and waiters notice an expired lock at their next fallback poll. An
    /// existing bucket with per-message TTL is refused (`BucketMismatch`): Go nlock could not
    /// start on it.
    GoCompatible,
}

impl Config {
    /// How a bucket this manager creates is laid out (default [`BucketLayout::Full`]).
    pub fn bucket_layout(&self) -> BucketLayout {
        self.bucket_layout
    }
    /// Whether an existing bucket without per-message TTL or limit markers is upgraded.
    pub fn upgrade_bucket(&self) -> bool {
        self.upgrade_bucket
    }

    /// Whether a missing bucket is created; see [`ConfigBuilder::create_bucket`].
    pub fn create_bucket(&self) -> bool {
        self.create_bucket
    }
    /// Whether held locks notice someone else's write on their key at once (see
    /// [`ConfigBuilder::follow_changes`]).
    pub fn follow_changes(&self) -> bool {
        self.follow_changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_go_nlocks() {
        let c = Config::builder().build().unwrap();
        assert_eq!(c.bucket(), "distributed_locks");
        assert_eq!(c.ttl(), Duration::from_secs(30));
        assert_eq!(c.retry_interval(), Duration::from_millis(250));
        assert!(c.keep_alive());
        assert_eq!(c.keep_alive_factor(), 3);
        assert_eq!(c.replicas(), 1);
        assert_eq!(c.storage(), Storage::Memory);
        assert_eq!(c.refresh_interval(c.ttl()), Duration::from_secs(10));
    }
}
