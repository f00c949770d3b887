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
//!     let lock = manager.acquire("billing.close-day", Some(Duration::from_secs(30))).await?;
//!     tokio::select! {
//!         _ = close_day(lock.token()) => lock.release().await?,
//!         lost = lock.lost() => eprintln!("lost the lock: {}", lost.reason),
//!     }
//!     Ok(())
//! }
//! # async fn close_day(_token: u64) {}
//! ```

#![warn(missing_docs)]

mod client;
mod config;
mod connect;
mod connection;
mod deadline;
mod error;
mod handle;
mod holder;
mod key;
mod leader;
mod lease;
mod lock;
mod observe;
mod operator;
mod pending;
mod runtime;
mod serde_util;
mod store;
mod subscribers;
#[cfg(feature = "actix-web")]
pub mod web;

/// The async-nats nlock is built with, for [`LockManager::connect_with`] and
/// [`LockManager::start`]: use it rather than your own dependency, so that the versions match.
pub use async_nats;

pub use client::{DoOutcome, LockManager, OnLoss};
pub use config::{
    BucketLayout, Config, ConfigBuilder, JetStreamApi, Storage, DEFAULT_BUCKET,
    DEFAULT_KEEP_ALIVE_FACTOR, DEFAULT_MAX_CLOCK_SKEW, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY_INTERVAL, DEFAULT_TTL, MAX_BUCKET_DESCRIPTION, MAX_BUCKET_LEN, MAX_CLOCK_SKEW,
    MAX_KEEP_ALIVE_FACTOR, MAX_TTL, MIN_REQUEST_TIMEOUT, MIN_RETRY_INTERVAL,
};
pub use connection::ConnectionState;
pub use error::{ConfigError, ConnectFailed, ErrorKind, Feature, KeyRule, LockError, LossReason};
pub use handle::LockHandle;
pub use holder::{Holder, MAX_DESCRIPTION, MAX_FOREIGN_VALUE};
pub use key::{validate_key, MAX_KEY_LEN};
pub use leader::{
    Elector, ElectorOptions, ElectorRequest, ElectorStatus, Leader, LeaderChange, LeaderChangeKind,
    LeaderChanges, LeaderSubscription, Term, DEFAULT_LOCK_DELAY,
};
pub use lease::{Lease, LeaseEnd};
pub use lock::actor::LockActor;
pub use lock::manager::LockManagerActor;
pub use lock::requests::{
    Acquire, ListLocks, LockOptions, LocksReport, ManagerCounts, Shutdown, SubscribeLosses,
    TryAcquire,
};
pub use lock::state::{GetState, LockLost, LockState, LockStatus, Refresh, Release, Subscribe};
pub use observe::{validate_filter, KeyHolder, LockEvent, LockEventKind, LockEvents};
pub use pending::PendingLock;
pub use store::{Capabilities, RestartGrace};
pub use subscribers::SubscriptionId;

/// Compiles the README's examples as doc tests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
