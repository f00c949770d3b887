//! Distributed locks on NATS JetStream Key-Value, as actix actors.
//!
//! A lock is a KV key created with a compare-and-set, kept alive by compare-and-set
//! refreshes every TTL/factor, and released by a delete that expects the holder's revision.
//! The revision that created a tenure is its fencing token.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! #[actix::main]
//! async fn main() -> Result<(), nlock::LockError> {
//!     let config = nlock::Config::builder().ttl(Duration::from_secs(10)).build()?;
//!     let manager = nlock::LockManager::connect("nats://127.0.0.1:4222", config).await?;
//!     let lock = manager.lock("billing.close-day").timeout(Duration::from_secs(30)).acquire().await?;
//!     tokio::select! {
//!         _ = close_day(lock.token()) => lock.release().await?,
//!         lost = lock.lost() => eprintln!("lost the lock: {}", lost.reason),
//!     }
//!     Ok(())
//! }
//! # async fn close_day(_token: u64) {}
//! ```

#![deny(missing_docs)]
// docs.rs (nightly rustdoc, `--cfg docsrs`) marks what needs a cargo feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod connect;
mod connection;
mod deadline;
mod error;
mod handle;
mod holder;
mod key;
mod leader;
pub mod limits;
mod lock;
mod observe;
mod operator;
mod pending;
mod runtime;
mod serde_util;
mod settings;
mod store;
pub mod telemetry;
#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
pub mod web;

/// The async-nats nlock is built with, for [`LockManager::connect_with`] and
/// [`LockManager::start`]: use it rather than your own dependency, so that the versions match.
pub use async_nats;

pub use client::{DoOutcome, LockManager, LockRequest, OnLoss, RwLockRequest, SemaphoreRequest};
pub use connect::ConnectSettings;
pub use connection::ConnectionState;
pub use error::{
    AcquireError, AcquireErrorKind, ConfigError, ConnectError, ConnectErrorKind, ConnectFailed,
    Error, ErrorKind, Feature, KeyRule, LockError, LossReason, ObserveError, ObserveErrorKind,
    ReleaseError, ReleaseErrorKind,
};
pub use handle::LockHandle;
pub use holder::Holder;
pub use key::{validate_held_key, validate_key};
pub use leader::{
    Elector, ElectorOptions, ElectorRequest, ElectorStatus, Leader, LeaderChange, LeaderChangeKind,
    LeaderChanges, LeaderSubscription, Term,
};
pub use lock::lease::{Lease, LeaseEnd};
pub use lock::loss::{LockLost, LossSubscription};
pub use lock::requests::{LockOptions, LocksReport, ManagerCounts};
pub use lock::state::{LockState, LockStatus};
pub use observe::{validate_filter, KeyHolder, LockEvent, LockEventKind, LockEvents};
pub use settings::{BucketLayout, Config, ConfigBuilder, JetStreamApi, Storage};
pub use store::{Capabilities, RestartGrace};

/// The defaults nlock uses where a setting is not given.
///
/// ```
/// let config = nlock::Config::default();
/// assert_eq!(config.ttl(), nlock::config::DEFAULT_TTL);
/// assert_eq!(config.bucket(), nlock::config::DEFAULT_BUCKET);
/// ```
pub mod config {
    pub use crate::leader::DEFAULT_LOCK_DELAY;
    pub use crate::settings::{
        DEFAULT_BUCKET, DEFAULT_KEEP_ALIVE_FACTOR, DEFAULT_MAX_CLOCK_DRIFT_PPM,
        DEFAULT_MAX_CLOCK_SKEW, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_INTERVAL, DEFAULT_TTL,
    };
}

/// The actors behind the handles, and the messages they answer, for code that holds an
/// actor's address rather than a handle: each message does exactly what the handle's method
/// of the same name does ([`Release`](actor::Release) is [`LockHandle::release`],
/// [`GetState`](actor::GetState) is [`LockHandle::state`], [`ListLocks`](actor::ListLocks) is
/// [`LockManager::locks`], ...).
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let addr = lock.actor().clone();
/// let state = addr.send(nlock::actor::GetState).await?;
/// println!("{} has {:?} left", state.key, state.time_left);
/// # Ok(()) }
/// ```
pub mod actor {
    pub use crate::lock::actor::LockActor;
    pub use crate::lock::manager::LockManagerActor;
    pub use crate::lock::requests::{ListLocks, SubscribeLosses};
    pub use crate::lock::state::{GetState, Refresh, Release, Subscribe};
}

/// Compiles the README's examples as doc tests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
