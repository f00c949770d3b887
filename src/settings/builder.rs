//! [`ConfigBuilder`]: the setters of a [`Config`]; `validate.rs` checks them at `build`.

use std::time::Duration;

use super::{BucketLayout, Config, JetStreamApi, Storage};

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
    pub(super) config: Config,
    /// The request timeout set explicitly; `None` means "fit it to the TTL" at `build`.
    pub(super) request_timeout: Option<Duration>,
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
    /// per million (default [`DEFAULT_MAX_CLOCK_DRIFT_PPM`](crate::config::DEFAULT_MAX_CLOCK_DRIFT_PPM), at most [`MAX_CLOCK_DRIFT_PPM`](crate::limits::MAX_CLOCK_DRIFT_PPM)):
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

    /// Whether waiters keep a place in a line across processes (default on): a key's
    /// waiters, in every process, are then served in the order they began to wait, and a
    /// release is followed by one compare-and-set, the first waiter's, instead of one per
    /// waiting process. Each waiting request writes an entry key (`_nlock.q.<key>.<id>`),
    /// rewritten as often as a lock is refreshed and deleted when the request is served or
    /// withdrawn. Needs [`follow_changes`](Self::follow_changes): without it waiters race as
    /// they do with this off.
    ///
    /// ```
    /// let config = nlock::Config::builder().queue(false).build().unwrap();
    /// assert!(!config.queue());
    /// ```
    pub fn queue(mut self, on: bool) -> Self {
        self.config.queue = on;
        self
    }
}
