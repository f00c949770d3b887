//! Errors: [`LockError`], one enum for every failure with a `Copy` kind that tests and callers
//! match on, and the errors per family of operations (`family.rs`) that methods return, whose
//! kinds list only what occurs there and which convert into `LockError` with `?`.
//!
//! A timeout is never folded into another kind: it means "the outcome is unknown" and is
//! reported as [`ErrorKind::OutcomeUnknown`], never as success and never as a lost lock.

/// `ConfigError` and `KeyRule`.
mod config;
/// `ConnectFailed`.
mod connect;
/// `Error<K>` and the kinds of each family of operations.
mod family;

pub use config::{ConfigError, KeyRule};
pub use connect::ConnectFailed;
pub use family::{
    AcquireError, AcquireErrorKind, ConnectError, ConnectErrorKind, Error, ObserveError,
    ObserveErrorKind, ReleaseError, ReleaseErrorKind,
};

use std::time::Duration;

use crate::holder::Holder;

/// Why a held lock stopped being held without the holder releasing it.
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) {
/// match lock.lost().await.reason {
///     nlock::LossReason::Taken { holder } => eprintln!("taken by {holder:?}"),
///     nlock::LossReason::Expired => eprintln!("no refresh confirmed in time"),
///     reason => eprintln!("lost: {reason}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LossReason {
    /// The key was deleted or purged behind the holder's back.
    Deleted,
    /// Another writer replaced the key; `holder` is who holds it now, when it could be read.
    Taken {
        /// The new holder, if its record could be read.
        holder: Option<Box<Holder>>,
    },
    /// No compare-and-set was acknowledged before the local lease deadline. The server may
    /// already have expired the key, so the lock is given up before anyone else can get it.
    Expired,
    /// The manager or the actor system stopped while the lock was held.
    Shutdown,
    /// The holder released the lock, but no answer to its delete came before the lease
    /// deadline: the key may be free now, or stay taken until the server expires it (within
    /// one TTL of the last confirmed write). Not a release: nothing confirmed it. `release()`
    /// returns [`ErrorKind::OutcomeUnknown`].
    ReleaseUnconfirmed,
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LossReason::Deleted => write!(f, "the key was deleted"),
            LossReason::Taken { holder: Some(h) } => write!(f, "the key was taken by {h}"),
            LossReason::Taken { holder: None } => write!(f, "the key was taken by another writer"),
            LossReason::Expired => write!(f, "the lease expired before a refresh was confirmed"),
            LossReason::Shutdown => write!(f, "the lock manager shut down"),
            LossReason::ReleaseUnconfirmed => write!(
                f,
                "the release was not confirmed before the lease deadline; the key expires \
                 with its TTL"
            ),
        }
    }
}

/// A feature that needs a newer nats-server than the one connected.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) {
/// use std::time::Duration;
/// let result = m.lock("jobs.nightly").ttl(Duration::from_secs(5)).try_acquire().await;
/// if let Err(e) = result {
///     if let nlock::LockError::Unsupported { feature: nlock::Feature::PerLockTtl, server_version } = e.lock_error() {
///         eprintln!("nats-server {server_version} has no per-lock TTL");
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Feature {
    /// A TTL for one lock (`Nats-TTL`), server 2.11+.
    PerLockTtl,
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Feature::PerLockTtl => write!(f, "per-lock TTL (needs nats-server 2.11+)"),
        }
    }
}

/// The error type of every nlock operation.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// // Each family's error converts with `?`; the details stay.
/// let lock = m.try_acquire("jobs.nightly").await?;
/// lock.release().await?;
/// # Ok(()) }
/// # fn g(e: nlock::LockError) {
/// if let nlock::LockError::Busy { key, holder: Some(h) } = &e {
///     println!("{key} is held by {} on {}", h.owner, h.host);
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// `Acquire` waited for its whole timeout without getting the lock.
    #[error("timed out after {waited:?} waiting for lock {key:?}")]
    AcquireTimedOut {
        /// The key.
        key: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The key is held by someone else right now (`TryAcquire`, `Do`).
    #[error("lock {key:?} is held{}", holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
    Busy {
        /// The key.
        key: String,
        /// The holder's record, when it could be read.
        holder: Option<Box<Holder>>,
    },
    /// The bucket is in its restart grace (`TryAcquire`, `Do`): its data is younger than one
    /// TTL (a memory-storage restart, a wiped store, a reset cluster), so a holder of the data
    /// it replaced may still count its lease, and no lock is granted until the grace ends.
    /// Its kind is [`ErrorKind::Busy`]. See [`ConfigBuilder::restart_grace`](crate::ConfigBuilder::restart_grace).
    #[error("lock {key:?} is not granted yet: the bucket is in its restart grace for {remaining:?} more (its data is younger than one TTL)")]
    RestartGrace {
        /// The key.
        key: String,
        /// How long the grace still runs.
        remaining: std::time::Duration,
    },
    /// The lock is not held (already released, lost, or never held).
    #[error("lock {key:?} is not held")]
    NotHeld {
        /// The key.
        key: String,
    },
    /// The lock was lost while held.
    #[error("lock {key:?} was lost: {reason}")]
    Lost {
        /// The key.
        key: String,
        /// Why.
        reason: LossReason,
    },
    /// The key is not a valid NATS KV key.
    #[error("invalid lock key {key:?}: {rule}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Which rule it broke.
        rule: KeyRule,
    },
    /// A configuration value or an existing bucket was rejected.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// The connected server is too old for a requested feature.
    #[error("{feature} is not supported by nats-server {server_version}")]
    Unsupported {
        /// What was asked for.
        feature: Feature,
        /// The server's version string.
        server_version: String,
    },
    /// NATS could not be reached or refused the request; nothing is known to have changed.
    /// When the first connection failed, the source is a [`ConnectFailed`] naming the servers
    /// tried.
    #[error("NATS unavailable: {source}")]
    Unavailable {
        /// The client error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A request timed out or was interrupted: it may or may not have taken effect.
    #[error("outcome unknown for lock {key:?}: {source}")]
    OutcomeUnknown {
        /// The key.
        key: String,
        /// The client error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server rejected the write for a reason that retrying will not fix.
    #[error("the server rejected the write to {key:?} (JetStream error {code}): {description}")]
    Rejected {
        /// The key.
        key: String,
        /// The JetStream error code, 0 if none.
        code: u64,
        /// The server's own words.
        description: String,
    },
    /// The future given to `Do` panicked; the lock was released.
    #[error("the task run under lock {key:?} panicked; the lock was released")]
    TaskPanicked {
        /// The key.
        key: String,
    },
    /// The manager or lock actor is no longer running.
    #[error("the lock manager is gone")]
    ManagerGone,
    /// The server refused to create the lock bucket (more replicas than the cluster has
    /// nodes, for one). Nothing was created.
    #[error(
        "the server refused to create the lock bucket {bucket:?} (JetStream error {code}): \
         {description}"
    )]
    BucketRejected {
        /// The bucket name.
        bucket: String,
        /// The JetStream error code, 0 if none.
        code: u64,
        /// The server's own words.
        description: String,
    },
    /// The server has no JetStream: its INFO says so, no JetStream API answered (a domain
    /// or prefix that leads nowhere), or the server says it is not enabled for the account.
    #[error(
        "JetStream is not enabled on this server (start it with -js), or not for this \
         account, or not at {api_prefix}"
    )]
    JetStreamNotEnabled {
        /// The JetStream API prefix that was asked (`$JS.API` unless a domain or prefix is
        /// set).
        api_prefix: String,
    },
    /// A connection setting (an environment variable, or the URL) that cannot be used. Found
    /// before any connection is tried.
    #[error("cannot use {setting}: {problem}")]
    InvalidConnectSetting {
        /// The setting: the environment variable's name (`NATS_CREDS`, ...) or `url`.
        setting: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The server refused a publish this user has no permission for (a "Permissions
    /// Violation" on the connection). Nothing was written by it; retrying will not help until
    /// the user's permissions change. README "Permissions" lists what each role needs.
    #[error("permission denied: this NATS user may not publish to {subject:?}")]
    PermissionDenied {
        /// The subject the server refused.
        subject: String,
    },
    /// An operator's break named a tenure (by its fencing token) that does not hold the key:
    /// the lock changed hands, or the token is wrong. Nothing was deleted.
    #[error("lock {key:?} is held with token {found}, not {expected}; nothing was deleted")]
    TokenMismatch {
        /// The key.
        key: String,
        /// The token asked for.
        expected: u64,
        /// The token of the tenure that holds the key.
        found: u64,
    },
}

/// The kind of a [`LockError`], for matching in callers and tests. Serialises as its
/// [`as_str`](ErrorKind::as_str) name, which stays the same across releases.
///
/// ```
/// let err = nlock::validate_key("").unwrap_err();
/// assert_eq!(err.kind(), nlock::ErrorKind::InvalidKey);
/// assert_eq!(serde_json::to_string(&err.kind()).unwrap(), "\"invalid_key\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`LockError::AcquireTimedOut`].
    AcquireTimedOut,
    /// See [`LockError::Busy`].
    Busy,
    /// See [`LockError::NotHeld`].
    NotHeld,
    /// See [`LockError::Lost`].
    Lost,
    /// See [`LockError::InvalidKey`].
    InvalidKey,
    /// See [`LockError::InvalidConfig`].
    InvalidConfig,
    /// See [`LockError::Unsupported`].
    Unsupported,
    /// See [`LockError::Unavailable`].
    Unavailable,
    /// See [`LockError::OutcomeUnknown`].
    OutcomeUnknown,
    /// See [`LockError::Rejected`].
    Rejected,
    /// See [`LockError::TaskPanicked`].
    TaskPanicked,
    /// See [`LockError::ManagerGone`].
    ManagerGone,
    /// See [`LockError::BucketRejected`].
    BucketRejected,
    /// See [`LockError::JetStreamNotEnabled`].
    JetStreamNotEnabled,
    /// See [`LockError::InvalidConnectSetting`].
    InvalidConnectSetting,
    /// See [`LockError::TokenMismatch`].
    TokenMismatch,
    /// See [`LockError::PermissionDenied`].
    PermissionDenied,
}

impl ErrorKind {
    /// A stable, snake_case name for this kind (`"busy"`, `"acquire_timed_out"`, ...): for
    /// JSON bodies, metrics labels and logs.
    ///
    /// ```
    /// assert_eq!(nlock::ErrorKind::AcquireTimedOut.as_str(), "acquire_timed_out");
    /// assert_eq!(nlock::ErrorKind::Busy.to_string(), "busy");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::AcquireTimedOut => "acquire_timed_out",
            ErrorKind::Busy => "busy",
            ErrorKind::NotHeld => "not_held",
            ErrorKind::Lost => "lost",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Rejected => "rejected",
            ErrorKind::TaskPanicked => "task_panicked",
            ErrorKind::ManagerGone => "manager_gone",
            ErrorKind::BucketRejected => "bucket_rejected",
            ErrorKind::JetStreamNotEnabled => "jetstream_not_enabled",
            ErrorKind::InvalidConnectSetting => "invalid_connect_setting",
            ErrorKind::TokenMismatch => "token_mismatch",
            ErrorKind::PermissionDenied => "permission_denied",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl LockError {
    /// The kind of this error.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// // Any family's error turns into a LockError, whose kind covers every operation.
    /// let result = m.try_acquire("jobs.nightly").await.map_err(nlock::LockError::from);
    /// match result {
    ///     Err(e) if e.kind() == nlock::ErrorKind::Busy => println!("someone else runs it"),
    ///     Err(e) => eprintln!("{e}"),
    ///     Ok(lock) => { /* ... */ }
    /// }
    /// # }
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            LockError::AcquireTimedOut { .. } => ErrorKind::AcquireTimedOut,
            LockError::Busy { .. } | LockError::RestartGrace { .. } => ErrorKind::Busy,
            LockError::NotHeld { .. } => ErrorKind::NotHeld,
            LockError::Lost { .. } => ErrorKind::Lost,
            LockError::InvalidKey { .. } => ErrorKind::InvalidKey,
            LockError::InvalidConfig(_) => ErrorKind::InvalidConfig,
            LockError::Unsupported { .. } => ErrorKind::Unsupported,
            LockError::Unavailable { .. } => ErrorKind::Unavailable,
            LockError::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            LockError::Rejected { .. } => ErrorKind::Rejected,
            LockError::TaskPanicked { .. } => ErrorKind::TaskPanicked,
            LockError::ManagerGone => ErrorKind::ManagerGone,
            LockError::BucketRejected { .. } => ErrorKind::BucketRejected,
            LockError::JetStreamNotEnabled { .. } => ErrorKind::JetStreamNotEnabled,
            LockError::InvalidConnectSetting { .. } => ErrorKind::InvalidConnectSetting,
            LockError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            LockError::TokenMismatch { .. } => ErrorKind::TokenMismatch,
        }
    }
}

impl From<actix::MailboxError> for LockError {
    fn from(_: actix::MailboxError) -> Self {
        LockError::ManagerGone
    }
}
