//! Manager options, with the Go nlock defaults, and a builder that validates them.

use std::time::Duration;

use crate::error::ConfigError;
use crate::key::validate_bucket;

/// Go nlock's default bucket name.
pub const DEFAULT_BUCKET: &str = "distributed_locks";
/// Go nlock's default lock TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Go nlock's default retry interval (jitter is added on top).
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// Go nlock's default keep-alive factor: refresh every TTL/3.
pub const DEFAULT_KEEP_ALIVE_FACTOR: u32 = 3;

/// Where the bucket keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In memory: fastest; every lock is gone when the server restarts (holders are told).
    Memory,
    /// On disk: locks survive a server restart (subject to the server's `sync_interval`).
    File,
}

/// Validated options of a [`LockManager`](crate::LockManager). Build with [`Config::builder`].
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
    pub(crate) bucket_layout: BucketLayout,
    pub(crate) upgrade_bucket: bool,
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
            request_timeout: Duration::from_secs(2),
            lease_margin: None,
            bucket_layout: BucketLayout::Full,
            upgrade_bucket: false,
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
    /// The bucket description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// How long one NATS request may take before its outcome counts as unknown.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
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
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// The KV bucket name (default `distributed_locks`).
    pub fn bucket(mut self, name: impl Into<String>) -> Self {
        self.config.bucket = name.into();
        self
    }
    /// The bucket description.
    pub fn description(mut self, desc: impl Into<String>) -> Self {
        self.config.description = desc.into();
        self
    }
    /// Bucket replicas, 1 to 5 (default 1).
    pub fn replicas(mut self, n: usize) -> Self {
        self.config.replicas = n;
        self
    }
    /// The default lock TTL: whole seconds, at least 1 s (default 30 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }
    /// The base interval of the fallback poll while waiting (default 250 ms, plus jitter).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.config.retry_interval = interval;
        self
    }
    /// Whether held locks refresh themselves (default true). When off, call
    /// [`LockHandle::refresh`](crate::LockHandle::refresh) before the TTL runs out.
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.config.keep_alive = on;
        self
    }
    /// Refresh every TTL/factor; at least 2 (default 3).
    pub fn keep_alive_factor(mut self, factor: u32) -> Self {
        self.config.keep_alive_factor = factor;
        self
    }
    /// Memory (default) or file storage.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.config.storage = storage;
        self
    }
    /// How long one NATS request may take before its outcome counts as unknown (default 2 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }
    /// How much earlier than `send time + TTL` a holder declares its lock expired
    /// (default TTL/20 + 50 ms). Must be under half the TTL.
    pub fn lease_margin(mut self, margin: Duration) -> Self {
        self.config.lease_margin = Some(margin);
        self
    }

    /// Checks every value and returns the config, or the first problem found.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = self.config;
        validate_bucket(&c.bucket)?;
        validate_ttl(c.ttl)?;
        if c.keep_alive_factor < 2 {
            return Err(ConfigError::KeepAliveFactor(c.keep_alive_factor));
        }
        if c.retry_interval.is_zero() {
            return Err(ConfigError::RetryInterval(c.retry_interval));
        }
        if !(1..=5).contains(&c.replicas) {
            return Err(ConfigError::Replicas(c.replicas));
        }
        if c.request_timeout.is_zero() || c.request_timeout >= c.ttl {
            return Err(ConfigError::RequestTimeout(c.request_timeout));
        }
        if let Some(m) = c.lease_margin {
            if m >= c.ttl / 2 {
                return Err(ConfigError::LeaseMargin(m));
            }
        }
        Ok(c)
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
}

impl ConfigBuilder {
    /// How a bucket this manager creates is laid out, and which existing buckets it accepts
    /// (default [`BucketLayout::Full`]). Use [`BucketLayout::GoCompatible`] in fleets that
    /// share the bucket with Go nlock.
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
    pub fn upgrade_bucket(mut self, on: bool) -> Self {
        self.config.upgrade_bucket = on;
        self
    }
}

/// A TTL is whole seconds and at least 1 s: the server takes `Nats-TTL` and limit-marker TTLs
/// in whole seconds, and `max_age` below a second would expire a lock between refreshes.
pub(crate) fn validate_ttl(ttl: Duration) -> Result<(), ConfigError> {
    if ttl < Duration::from_secs(1) {
        return Err(ConfigError::TtlTooShort(ttl));
    }
    if ttl.subsec_nanos() != 0 {
        return Err(ConfigError::TtlNotWholeSeconds(ttl));
    }
    Ok(())
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

    #[test]
    fn each_bad_value_is_its_own_error() {
        let b = Config::builder;
        let ms = Duration::from_millis;
        assert_eq!(b().ttl(ms(0)).build(), Err(ConfigError::TtlTooShort(ms(0))));
        assert_eq!(
            b().ttl(ms(500)).build(),
            Err(ConfigError::TtlTooShort(ms(500)))
        );
        assert_eq!(
            b().ttl(ms(1500)).build(),
            Err(ConfigError::TtlNotWholeSeconds(ms(1500)))
        );
        assert_eq!(
            b().keep_alive_factor(1).build(),
            Err(ConfigError::KeepAliveFactor(1))
        );
        assert_eq!(b().replicas(0).build(), Err(ConfigError::Replicas(0)));
        assert_eq!(b().replicas(6).build(), Err(ConfigError::Replicas(6)));
        assert_eq!(
            b().retry_interval(ms(0)).build(),
            Err(ConfigError::RetryInterval(ms(0)))
        );
        assert_eq!(
            b().bucket("a.b").build(),
            Err(ConfigError::BucketName("a.b".into()))
        );
        assert_eq!(
            b().request_timeout(Duration::from_secs(30)).build(),
            Err(ConfigError::RequestTimeout(Duration::from_secs(30)))
        );
        assert_eq!(
            b().lease_margin(Duration::from_secs(15)).build(),
            Err(ConfigError::LeaseMargin(Duration::from_secs(15)))
        );
    }
}
