//! Manager options, with the Go nlock defaults, and a builder that validates them.

/// `ConfigBuilder::build` and the value rules, with their tests.
mod validate;

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
        let ppm = u128::from(self.max_clock_drift_ppm.min(MAX_CLOCK_DRIFT_PPM));
        let nanos = ttl.as_nanos().saturating_mul(1_000_000 + ppm) / (1_000_000 - ppm);
        let millis = nanos.div_ceil(1_000_000).saturating_add(1);
        Some(Duration::from_millis(
            u64::try_from(millis).unwrap_or(u64::MAX),
        ))
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

/// Builds a [`Config`]; [`build`](ConfigBuilder::build) checks every value.
///
/// ```
/// use std::time::Duration;
/// let config = nlock::Config::builder()
///     .bucket("billing_locks")
///     .ttl(Duration::from_secs(10))
///     .replicas(3)
///     .build()
///     .unwrap();
/// assert_eq!(config.replicas(), 3);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
    /// The request timeout set explicitly; `None` means "fit it to the TTL" at `build`.
    request_timeout: Option<Duration>,
}

impl ConfigBuilder {
    /// The KV bucket name (default `distributed_locks`): `[A-Za-z0-9_-]`, at most
    /// [`MAX_BUCKET_LEN`](crate::limits::MAX_BUCKET_LEN) bytes.
    pub fn bucket(mut self, name: impl Into<String>) -> Self {
        self.config.bucket = name.into();
        self
    }
    /// The bucket description, at most [`MAX_BUCKET_DESCRIPTION`](crate::limits::MAX_BUCKET_DESCRIPTION) bytes.
    pub fn description(mut self, desc: impl Into<String>) -> Self {
        self.config.description = desc.into();
        self
    }
    /// Bucket replicas, 1 to 5 (default 1).
    ///
    /// ```
    /// let config = nlock::Config::builder().replicas(3).build().unwrap();
    /// assert_eq!(config.replicas(), 3);
    /// assert!(nlock::Config::builder().replicas(6).build().is_err());
    /// ```
    pub fn replicas(mut self, n: usize) -> Self {
        self.config.replicas = n;
        self
    }
    /// The default lock TTL: whole seconds, at least 1 s and at most [`MAX_TTL`](crate::limits::MAX_TTL) (default
    /// 30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nlock::Config::builder().ttl(Duration::from_secs(10)).build().unwrap();
    /// assert_eq!(config.ttl(), Duration::from_secs(10));
    /// assert!(nlock::Config::builder().ttl(Duration::from_millis(1500)).build().is_err());
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }
    /// The base interval of the fallback poll while waiting (default 250 ms, plus jitter); at
    /// least [`MIN_RETRY_INTERVAL`](crate::limits::MIN_RETRY_INTERVAL). A huge interval is kept as it is: the poll then waits
    /// "forever" (saturating at decades), and waiters wake from the key's watch only.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nlock::Config::builder().retry_interval(Duration::from_secs(1)).build().unwrap();
    /// assert_eq!(config.retry_interval(), Duration::from_secs(1));
    /// ```
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.config.retry_interval = interval;
        self
    }
    /// Whether held locks refresh themselves (default true). When off, call
    /// [`LockHandle::refresh`](crate::LockHandle::refresh) before the TTL runs out: only it
    /// extends the lease. (A check after someone else's write on the key is a compare-and-set
    /// too; it keeps the local deadline, though the key lives on at the server until that
    /// write's TTL, and the holder clears it at its deadline.)
    ///
    /// ```
    /// let config = nlock::Config::builder().keep_alive(false).build().unwrap();
    /// assert!(!config.keep_alive());
    /// ```
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.config.keep_alive = on;
        self
    }
    /// Refresh every TTL/factor; 2 to [`MAX_KEEP_ALIVE_FACTOR`](crate::limits::MAX_KEEP_ALIVE_FACTOR) (default 3). At least 2 leaves
    /// time for a retry before the lease ends; see [`MAX_KEEP_ALIVE_FACTOR`](crate::limits::MAX_KEEP_ALIVE_FACTOR) for the top.
    pub fn keep_alive_factor(mut self, factor: u32) -> Self {
        self.config.keep_alive_factor = factor;
        self
    }
    /// Memory (default) or file storage.
    ///
    /// ```
    /// let config = nlock::Config::builder().storage(nlock::Storage::File).build().unwrap();
    /// assert_eq!(config.storage(), nlock::Storage::File);
    /// ```
    pub fn storage(mut self, storage: Storage) -> Self {
        self.config.storage = storage;
        self
    }
    /// How long one NATS request may take before its outcome counts as unknown: at least
    /// [`MIN_REQUEST_TIMEOUT`](crate::limits::MIN_REQUEST_TIMEOUT) and shorter than the TTL. Default: 2 s, or half the bucket TTL
    /// when that is shorter (500 ms for a 1 s TTL).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nlock::Config::builder().request_timeout(Duration::from_secs(1)).build().unwrap();
    /// assert_eq!(config.request_timeout(), Duration::from_secs(1));
    /// // The default fits a short TTL:
    /// let short = nlock::Config::builder().ttl(Duration::from_secs(1)).build().unwrap();
    /// assert_eq!(short.request_timeout(), Duration::from_millis(500));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }
    /// Whether a new lock waits out the restart grace (default true): no lock is granted on a
    /// bucket whose data is younger than one TTL plus [`max_clock_skew`](Self::max_clock_skew),
    /// because a holder of the data it replaced (lost in a memory-storage restart, a wiped
    /// store, a cluster whose every node went down) may still count its lease that long.
    /// Waiting acquires keep waiting; `try_acquire` answers
    /// [`LockError::RestartGrace`](crate::LockError::RestartGrace). A brand-new bucket pays
    /// it once, since nothing can tell it from a lost one.
    ///
    /// Turn it off only where no process can hold a lease on an earlier life of the bucket:
    /// a test's or a demo's own fresh server. See GUARANTEES.md, promise 1. Off or on, a
    /// bucket whose data was reset has its sequence moved past every earlier token, so
    /// tokens never go back (promise 2).
    ///
    /// ```
    /// // A test against its own fresh server:
    /// let config = nlock::Config::builder().restart_grace(false).build().unwrap();
    /// assert!(!config.restart_grace());
    /// ```
    pub fn restart_grace(mut self, on: bool) -> Self {
        self.config.restart_grace = on;
        self
    }

    /// Whether a waiter takes a key at the end of its holder's lease (default true), instead
    /// of waiting for the server to expire the key (and, on servers before 2.11, for its next
    /// poll to notice). A waiter that saw the holder's last write at a moment `t` of its own
    /// clock knows the holder's lease ended by `t` plus the TTL (the holder counts from before
    /// it sent that write), allowing for [`max_clock_drift_ppm`](Self::max_clock_drift_ppm)
    /// on both hosts. From then it writes the key with a compare-and-set on exactly the
    /// revision it saw: if the holder refreshed meanwhile, that write fails and nothing is
    /// taken. GUARANTEES.md, "Takeover at the lease's end", says why this never grants while
    /// the old holder's `is_held()` can be true.
    ///
    /// ```
    /// let config = nlock::Config::builder().takeover(false).build().unwrap();
    /// assert!(!config.takeover());
    /// ```
    pub fn takeover(mut self, on: bool) -> Self {
        self.config.takeover = on;
        self
    }

    /// How much faster or slower than real time any host's monotonic clock may run, in parts
    /// per million (default [`DEFAULT_MAX_CLOCK_DRIFT_PPM`], at most [`MAX_CLOCK_DRIFT_PPM`]):
    /// the takeover waits `TTL * (1 + d) / (1 - d)` after the holder's last write it saw.
    ///
    /// ```
    /// let config = nlock::Config::builder().max_clock_drift_ppm(500).build().unwrap();
    /// assert_eq!(config.max_clock_drift_ppm(), 500);
    /// ```
    pub fn max_clock_drift_ppm(mut self, ppm: u32) -> Self {
        self.config.max_clock_drift_ppm = ppm;
        self
    }

    /// The largest difference between the clocks of this host, the other lock clients' hosts
    /// and the NATS servers that the restart grace allows for (default 1 s, at most
    /// [`MAX_CLOCK_SKEW`](crate::limits::MAX_CLOCK_SKEW)). The grace compares the stream's creation time (the server's
    /// clock) and its clock-set sequence (another client's clock) with this host's clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nlock::Config::builder().max_clock_skew(Duration::from_secs(5)).build().unwrap();
    /// assert_eq!(config.max_clock_skew(), Duration::from_secs(5));
    /// ```
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.config.max_clock_skew = skew;
        self
    }

    /// How much earlier than `send time + TTL` a holder declares its lock expired
    /// (default TTL/20 + 50 ms). Must be under half the TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nlock::Config::builder().lease_margin(Duration::from_millis(500)).build().unwrap();
    /// // Not under half the TTL: rejected.
    /// let bad = nlock::Config::builder().ttl(Duration::from_secs(2)).lease_margin(Duration::from_secs(1));
    /// assert!(matches!(bad.build(), Err(nlock::ConfigError::LeaseMargin(_))));
    /// ```
    pub fn lease_margin(mut self, margin: Duration) -> Self {
        self.config.lease_margin = Some(margin);
        self
    }

    /// Talks to the JetStream API of `domain` (`$JS.<domain>.API`), e.g. to reach a hub's
    /// JetStream from a leaf node. Replaces an API prefix set before.
    ///
    /// ```
    /// let config = nlock::Config::builder().jetstream_domain("hub").build().unwrap();
    /// assert_eq!(
    ///     config.jetstream_api(),
    ///     Some(&nlock::JetStreamApi::Domain("hub".into()))
    /// );
    /// ```
    pub fn jetstream_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.jetstream_api = Some(JetStreamApi::Domain(domain.into()));
        self
    }
    /// Talks to the JetStream API at `prefix` instead of `$JS.API` (e.g. an API imported from
    /// another account). Replaces a domain set before.
    ///
    /// ```
    /// let config = nlock::Config::builder().jetstream_api_prefix("$JS.hub.API").build().unwrap();
    /// assert_eq!(
    ///     config.jetstream_api(),
    ///     Some(&nlock::JetStreamApi::Prefix("$JS.hub.API".into()))
    /// );
    /// ```
    pub fn jetstream_api_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.jetstream_api = Some(JetStreamApi::Prefix(prefix.into()));
        self
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

impl ConfigBuilder {
    /// How a bucket this manager creates is laid out, and which existing buckets it accepts
    /// (default [`BucketLayout::Full`]). Use [`BucketLayout::GoCompatible`] in fleets that
    /// share the bucket with Go nlock.
    ///
    /// ```
    /// let config = nlock::Config::builder().bucket_layout(nlock::BucketLayout::GoCompatible).build().unwrap();
    /// assert_eq!(config.bucket_layout(), nlock::BucketLayout::GoCompatible);
    /// ```
    pub fn bucket_layout(mut self, layout: BucketLayout) -> Self {
        self.config.bucket_layout = layout;
        self
    }
    /// Upgrades an existing bucket that lacks per-message TTL or limit markers (one made by
    /// a server before 2.11, or by Go nlock) to [`BucketLayout::Full`], when the server
    /// supports them (default off: an existing bucket is never changed without this).
    ///
    /// The upgrade cannot be undone, and Go nlock processes then fail at start-up on the
    /// bucket: upgrade only once none share it. With [`BucketLayout::GoCompatible`] there is
    /// nothing to upgrade to, and this has no effect.
    ///
    /// ```
    /// let config = nlock::Config::builder().upgrade_bucket(true).build().unwrap();
    /// assert!(config.upgrade_bucket());
    /// ```
    pub fn upgrade_bucket(mut self, on: bool) -> Self {
        self.config.upgrade_bucket = on;
        self
    }
    /// Whether a missing bucket is created, at start-up and again after a memory-storage
    /// server lost it (default on). Off, for an observer that must not write (listing,
    /// watching): starting on a missing bucket fails with
    /// [`ConfigError::BucketNotFound`](crate::ConfigError::BucketNotFound), and a bucket lost
    /// later is not re-created by this manager.
    ///
    /// ```
    /// // An observer that must not write:
    /// let config = nlock::Config::builder().create_bucket(false).build().unwrap();
    /// assert!(!config.create_bucket());
    /// ```
    pub fn create_bucket(mut self, on: bool) -> Self {
        self.config.create_bucket = on;
        self
    }
    /// Whether the manager follows the bucket's changes (default on): one JetStream consumer
    /// per manager, through which every write that lands on the bucket reaches it, so a
    /// holder is told within milliseconds when someone else deletes, purges or overwrites
    /// its key, and waiters wake from it when a key frees. Off, such a write is noticed at
    /// the holder's next refresh (TTL/factor), and the manager receives no traffic for other
    /// processes' writes: for a process that holds many locks on a bucket that many other
    /// processes write to. A waiter then follows the key it waits for with a consumer of its
    /// own (one per key at most, since one request per key contends at a time), deleted when
    /// the wait ends.
    ///
    /// ```
    /// let config = nlock::Config::builder().follow_changes(false).build().unwrap();
    /// assert!(!config.follow_changes());
    /// ```
    pub fn follow_changes(mut self, on: bool) -> Self {
        self.config.follow_changes = on;
        self
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
