//! The messages a [`LockActor`](crate::LockActor) answers, and what it reports about a lock.

use std::time::{Duration, SystemTime};

use actix::prelude::*;
use serde::Serialize;

use crate::error::{LockError, LossReason};
use crate::holder::Holder;
use crate::lock::loss::{LockLost, LossSubscription};

/// Releases the lock: a delete that expects the current revision. Answers `NotHeld` when the
/// lock is already released or being released, and `Lost` with the reason after a loss
/// (also when the lease deadline passed before the release was handled).
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let addr = lock.actor().clone();
/// addr.send(nlock::actor::Release).await??;
/// # Ok(()) }
/// ```
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LockError>")]
pub struct Release;

/// Refreshes the lock now (for keep-alive off, or to extend the lease early), as
/// [`LockHandle::refresh`](crate::LockHandle::refresh) does.
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
/// lock.actor().send(nlock::actor::Refresh).await??;
/// # Ok(()) }
/// ```
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LockError>")]
pub struct Refresh;

/// Asks for a [`LockState`], as [`LockHandle::state`](crate::LockHandle::state) does.
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let state: nlock::LockState = lock.actor().send(nlock::actor::GetState).await?;
/// match state.status {
///     nlock::LockStatus::Held => println!("{} held, {:?} left", state.key, state.time_left),
///     other => println!("{}: {other:?}", state.key),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Message)]
#[rtype(result = "LockState")]
pub struct GetState;

/// Adds a subscriber that gets [`LockLost`] if the lock is lost (at once if it already was).
/// The subscription is weak, and ends when its guard is dropped; see
/// [`Lease::subscribe`](crate::Lease::subscribe).
///
/// ```no_run
/// # use actix::prelude::*;
/// # struct Alarm;
/// # impl Actor for Alarm { type Context = Context<Self>; }
/// # impl Handler<nlock::LockLost> for Alarm {
/// #     type Result = ();
/// #     fn handle(&mut self, _: nlock::LockLost, _: &mut Context<Self>) {}
/// # }
/// # async fn f(lock: nlock::LockHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let alarm = Alarm.start();
/// let message = nlock::actor::Subscribe(alarm.clone().recipient());
/// let subscription = lock.actor().send(message).await?; // ends when dropped
/// # Ok(()) }
/// ```
#[derive(Debug, Message)]
#[rtype(result = "LossSubscription")]
pub struct Subscribe(pub Recipient<LockLost>);

/// Where a lock is in its life.
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
/// let state = lock.state().await?;
/// assert_eq!(state.status, nlock::LockStatus::Held);
/// println!("{} token {}, revision {}, {:?} left", state.key, state.token, state.revision, state.time_left);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LockStatus {
    /// Held and (with keep-alive) refreshed.
    Held,
    /// A release is under way.
    Releasing,
    /// Released by its holder.
    Released,
    /// Lost; see the reason.
    Lost {
        /// Why.
        reason: LossReason,
    },
}

/// A snapshot of one held lock, from [`LockHandle::state`](crate::LockHandle::state).
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) -> Result<(), nlock::LockError> {
/// let state = lock.state().await?;
/// assert_eq!(state.status, nlock::LockStatus::Held);
/// println!("{} token {}, revision {}, {:?} left", state.key, state.token, state.revision, state.time_left);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LockState {
    /// The key.
    pub key: String,
    /// The fencing token: the revision that created this tenure.
    pub token: u64,
    /// The current revision (changes on every refresh).
    pub revision: u64,
    /// The lock's TTL (in JSON: `ttl_ms`).
    #[serde(rename = "ttl_ms", serialize_with = "crate::serde_util::millis")]
    pub ttl: Duration,
    /// When it was acquired, this host's wall clock (in JSON: `acquired_at_ms`, since the
    /// Unix epoch).
    #[serde(
        rename = "acquired_at_ms",
        serialize_with = "crate::serde_util::unix_millis"
    )]
    pub acquired_at: SystemTime,
    /// When it was last refreshed, if ever (in JSON: `last_refresh_ms`).
    #[serde(
        rename = "last_refresh_ms",
        serialize_with = "crate::serde_util::opt_unix_millis"
    )]
    pub last_refresh: Option<SystemTime>,
    /// Time until the local lease deadline; zero once it has passed (in JSON:
    /// `time_left_ms`).
    #[serde(rename = "time_left_ms", serialize_with = "crate::serde_util::millis")]
    pub time_left: Duration,
    /// Held, releasing, released or lost.
    pub status: LockStatus,
    /// The record stored in the key.
    pub holder: Holder,
}

/// The error a caller gets for a tenure that already ended: `Lost` with its reason, or
/// `NotHeld` after a release.
pub(crate) fn ended_error(key: &str, lost: Option<&LossReason>) -> LockError {
    match lost {
        Some(reason) => LockError::Lost {
            key: key.to_owned(),
            reason: reason.clone(),
        },
        None => LockError::NotHeld {
            key: key.to_owned(),
        },
    }
}
