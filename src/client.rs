//! `LockManager`: the caller-facing handle to a [`LockManagerActor`], cheap to clone and share
//! (for example as actix-web `web::Data`).

/// `LockRequest`, the request builder.
mod request;
/// `run_if_free` (Go nlock's `Do`), `DoOutcome` and `OnLoss`.
mod run;
/// `RwLockRequest`: many readers or one writer.
mod rw;
/// `SemaphoreRequest`: at most N holders of a name.
mod semaphore;
/// `ConnectSettings::connect`.
mod settings;

pub use request::LockRequest;
pub use run::{DoOutcome, OnLoss};
pub use rw::RwLockRequest;
pub use semaphore::SemaphoreRequest;

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};

use crate::connection::ConnectionState;
use crate::error::LockError;
use crate::error::{AcquireError, ConnectError, ObserveError};
use crate::handle::LockHandle;
use crate::holder::random_id;
use crate::lock::loss::{LockLost, LossSubscription, Subscribers};
use crate::lock::manager::LockManagerActor;
use crate::lock::requests::{ListLocks, LocksReport, Shutdown};
use crate::observe::{key_holder, validate_filter, KeyHolder, LockEvents};
use crate::settings::Config;
use crate::store::{Capabilities, ChangesFrom, Denials, RestartGrace, Store};
// Only doc links name `ErrorKind`.
#[cfg(doc)]
use crate::error::ErrorKind;

/// What is built on the manager and must wind down before [`LockManager::shutdown`] releases
/// its locks (an elector: a role stops before its term's delete is sent). The manager does
/// not know what it is.
pub(crate) trait BeforeShutdown: Send + Sync + std::fmt::Debug {
    /// Winds it down; resolves when that is done.
    fn wind_down(&self) -> futures::future::BoxFuture<'static, ()>;
    /// Whether it has ended by itself: nothing left to wind down, and dropped from the list.
    fn is_gone(&self) -> bool;
}

/// A handle to a running lock manager. Clones share one manager actor.
///
/// Shutdown: call [`shutdown`](LockManager::shutdown) to release every held lock and stop.
/// Dropping every clone does not release held locks; their [`LockHandle`]s do that.
///
/// ```no_run
/// # #[actix::main]
/// # async fn main() -> Result<(), nlock::LockError> {
/// let manager = nlock::LockManager::connect("nats://127.0.0.1:4222", nlock::Config::default()).await?;
/// let lock = manager.acquire("orders.reindex", Some(std::time::Duration::from_secs(5))).await?;
/// println!("holding {} with fencing token {}", lock.key(), lock.token());
/// lock.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LockManager {
    addr: Addr<LockManagerActor>,
    caps: Arc<Capabilities>,
    owner: Arc<str>,
    /// The manager's loss subscribers, shared with its lock actors: subscribing needs no
    /// message, so it works even after the manager stopped.
    losses: Arc<Subscribers>,
    /// What is built on this manager and must wind down before it releases its locks
    /// (electors: a role stops before its term's delete is sent). Each entry is weak, like
    /// subscribers: the manager does not know what they are, and keeps nothing alive.
    dependents: Arc<std::sync::Mutex<Vec<Box<dyn BeforeShutdown>>>>,
    /// For the read-only views of the whole bucket (`holders`, `events`), and the operator's
    /// break (`operator.rs`).
    pub(crate) store: Arc<Store>,
    /// Whether the connection is up; `None` on a client nlock did not connect.
    pub(crate) connection: Option<tokio::sync::watch::Receiver<ConnectionState>>,
    /// How long after seeing a holder's last write its lease is surely over
    /// (`Config::takeover_after`), for read-write locks' waits; `None` with the takeover off.
    pub(crate) takeover_after: Option<Duration>,
}

impl LockManager {
    /// Connects to NATS and starts a manager. Works inside an actix system and from plain
    /// tokio alike (see [`LockManager::start`]).
    ///
    /// `servers` takes what NATS tools take: one URL or a comma-separated list
    /// (`nats://a:4222,nats://b:4222`; the first that answers is used, the others are for
    /// reconnects), and credentials inside a URL: `nats://user:password@host:4222` or
    /// `nats://token@host:4222` (percent-encode `@`, `:` and `/` in them). A list that cannot
    /// be parsed is [`ErrorKind::InvalidConnectSetting`](crate::ErrorKind), a server without
    /// JetStream [`ErrorKind::JetStreamNotEnabled`](crate::ErrorKind).
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), nlock::LockError> {
    /// let servers = "nats://locks:s3cret@10.0.0.1:4222,nats://locks:s3cret@10.0.0.2:4222";
    /// let manager = nlock::LockManager::connect(servers, nlock::Config::default()).await?;
    /// # Ok(()) }
    /// ```
    /// # Errors
    /// [`ConnectErrorKind`](crate::ConnectErrorKind): `InvalidConnectSetting` for a server
    /// list or URL that cannot be used, `InvalidConfig` for a bucket that exists and does not
    /// match `config` (or is missing with `create_bucket(false)`), `Unavailable` when no
    /// server answers, `JetStreamNotEnabled`, `BucketRejected`, `Unsupported`,
    /// `PermissionDenied`, `OutcomeUnknown` for a request that timed out while opening.
    pub async fn connect(servers: &str, config: Config) -> Result<LockManager, ConnectError> {
        LockManager::connect_with(async_nats::ConnectOptions::new(), servers, config).await
    }

    /// Like [`connect`](LockManager::connect), with connect options the caller built (a
    /// credentials file, TLS, a connection name, ...). Credentials in the URLs replace a user,
    /// password or token set in `options`. nlock sets the connection's event callback (to
    /// report a refused permission as [`LockError::PermissionDenied`]), replacing one set in
    /// `options`; it logs the other events with `tracing` at debug level.
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use nlock::async_nats::ConnectOptions;
    /// let options = ConnectOptions::with_credentials_file("/etc/nats/locks.creds")
    ///     .await?
    ///     .name("billing-locks");
    /// let manager =
    ///     nlock::LockManager::connect_with(options, "tls://nats.internal:4222", nlock::Config::default())
    ///         .await?;
    /// # Ok(()) }
    /// ```
    /// # Errors
    /// [`ConnectErrorKind`](crate::ConnectErrorKind), as for [`connect`](LockManager::connect).
    pub async fn connect_with(
        options: async_nats::ConnectOptions,
        servers: &str,
        config: Config,
    ) -> Result<LockManager, ConnectError> {
        let watched = crate::connect::connect_watching(options, servers, "url").await?;
        LockManager::start_connected(watched, config).await
    }

    /// Connects as the `nats` CLI does, from its environment variables, and starts a manager:
    /// `NATS_URL` (default `nats://127.0.0.1:4222`; a list and URL credentials as in
    /// [`connect`](LockManager::connect)), `NATS_USER` and `NATS_PASSWORD` (a user alone is a
    /// token), `NATS_TOKEN`, `NATS_CREDS` (a credentials file), `NATS_NKEY` (a user nkey seed
    /// file), `NATS_CA`, `NATS_CERT` and `NATS_KEY` (TLS files). Empty counts as unset.
    ///
    /// A variable that cannot be used (a missing file, a password without a user) is
    /// [`LockError::InvalidConnectSetting`] naming it, before any connection is tried.
    /// [`ConnectSettings::from_env`](crate::ConnectSettings::from_env) is the same, with
    /// overrides and the `nats` CLI's contexts.
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), nlock::LockError> {
    /// let manager = nlock::LockManager::from_env(nlock::Config::default()).await?;
    /// # Ok(()) }
    /// ```
    /// # Errors
    /// [`ConnectErrorKind`](crate::ConnectErrorKind): `InvalidConnectSetting` for a variable
    /// that cannot be used, then what [`connect`](LockManager::connect) returns.
    pub async fn from_env(config: Config) -> Result<LockManager, ConnectError> {
        crate::connect::ConnectSettings::from_env()
            .connect(config)
            .await
    }

    /// Ensures the bucket (creating it, or checking that an existing one matches `config`)
    /// and starts a manager on `client`. Inside an actix system the actors run on the
    /// current arbiter; elsewhere on an actix system of nlock's own, on its own thread.
    ///
    /// A request refused for want of permission is reported only as the server's silence
    /// here (a timeout, "unavailable"): nlock cannot see the events of a client it did not
    /// connect. [`connect`](LockManager::connect), [`connect_with`](LockManager::connect_with)
    /// and [`from_env`](LockManager::from_env) report it as [`LockError::PermissionDenied`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = nlock::async_nats::connect("nats://127.0.0.1:4222").await?;
    /// let manager = nlock::LockManager::start(client, nlock::Config::default()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConnectErrorKind`](crate::ConnectErrorKind): `InvalidConfig` for a bucket that exists
    /// and does not match `config` (or is missing with `create_bucket(false)`),
    /// `JetStreamNotEnabled`, `BucketRejected`, `Unavailable` (also when nlock's actor thread
    /// cannot start), `OutcomeUnknown` for a request that timed out while opening. As said
    /// above, a refused permission shows here as `Unavailable` or `OutcomeUnknown`.
    pub async fn start(
        client: async_nats::Client,
        config: Config,
    ) -> Result<LockManager, ConnectError> {
        LockManager::start_watched(client, config, Denials::default(), None).await
    }

    /// [`start_watched`](LockManager::start_watched) on a connection nlock made itself, whose
    /// events it watches.
    async fn start_connected(
        watched: crate::connect::Watched,
        config: Config,
    ) -> Result<LockManager, ConnectError> {
        LockManager::start_watched(
            watched.client,
            config,
            watched.denials,
            Some(watched.connection),
        )
        .await
    }

    /// [`start`](LockManager::start) on a connection whose refused publishes `denials`
    /// records.
    async fn start_watched(
        client: async_nats::Client,
        config: Config,
        denials: Denials,
        connection: Option<tokio::sync::watch::Receiver<ConnectionState>>,
    ) -> Result<LockManager, ConnectError> {
        let store = Store::open(client, &config, denials).await?;
        let caps = Arc::new(store.capabilities().clone());
        let owner: Arc<str> = random_id().into();
        if !caps.expiry_events {
            tracing::info!(
                server = %caps.server_version,
                "no limit markers: waiters notice an expired lock at the next fallback poll"
            );
        }
        let store = Arc::new(store);
        let feed = match config.follow_changes {
            true => Some(store.changes_closable(">", ChangesFrom::Now).await?),
            false => None,
        };
        // The lines across processes as they stand, after the feed opened: an entry written
        // in between is in both, and the later sighting wins.
        let entries = match (&feed, config.queue) {
            (Some(_), true) => store
                .snapshot(crate::lock::line::ENTRY_PREFIX_FILTER)
                .await
                .unwrap_or_else(|e| {
                    // The line still forms from the changes seen from now on.
                    tracing::warn!(error = %e, "could not read the lines across processes");
                    Vec::new()
                }),
            _ => Vec::new(),
        };
        let losses = Arc::new(Subscribers::default());
        let takeover_after = config.takeover_after(store.max_age());
        let actor = {
            let (owner, losses, store) = (owner.to_string(), losses.clone(), store.clone());
            move |_: &mut actix::Context<LockManagerActor>| {
                LockManagerActor::new(store, config, owner, feed, entries, losses)
            }
        };
        let addr = crate::runtime::start(actor)?;
        Ok(LockManager {
            addr,
            caps,
            owner,
            losses,
            dependents: Arc::default(),
            store,
            connection,
            takeover_after,
        })
    }

    /// A request for the lock on `key`: set a timeout, a TTL, a description, a lock-delay,
    /// then `acquire()`, `try_acquire()`, `run(work)` or `run_if_free(work)`. See
    /// [`LockRequest`].
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let lock = m.lock("orders.reindex").timeout(Duration::from_secs(5)).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn lock(&self, key: &str) -> LockRequest<'_> {
        LockRequest::new(self, key)
    }

    /// Waits for `key` until acquired, or until `timeout` passes (`None`: no limit). Dropping
    /// the returned future withdraws the request and leaves no lock behind. Short for
    /// `self.lock(key).timeout_opt(timeout).acquire()`.
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `AcquireTimedOut` after the timeout,
    /// `InvalidKey` before anything is written, `Unavailable`, `OutcomeUnknown`, `Rejected`,
    /// `PermissionDenied` and `ManagerGone` from NATS or the manager.
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let lock = m.acquire("orders.reindex", Some(Duration::from_secs(5))).await?;
    /// lock.release().await?;
    /// # Ok(()) }
    /// ```
    ///
    pub async fn acquire(
        &self,
        key: &str,
        timeout: Option<Duration>,
    ) -> Result<LockHandle, AcquireError> {
        self.lock(key).timeout_opt(timeout).acquire().await
    }

    /// One attempt: the lock if it is free now, else
    /// [`AcquireErrorKind::Busy`](crate::AcquireErrorKind::Busy) naming the holder. Short for
    /// `self.lock(key).try_acquire()`.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// match m.try_acquire("jobs.nightly").await {
    ///     Ok(lock) => { /* run the job */ }
    ///     Err(e) if e.kind() == nlock::AcquireErrorKind::Busy => println!("{e}"),
    ///     Err(e) => eprintln!("cannot tell: {e}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`LockRequest::try_acquire`]: `Busy` when held or during the restart grace, else
    /// the other [`AcquireErrorKind`](crate::AcquireErrorKind)s of
    /// [`acquire`](LockManager::acquire) but `AcquireTimedOut`.
    pub async fn try_acquire(&self, key: &str) -> Result<LockHandle, AcquireError> {
        self.lock(key).try_acquire().await
    }

    /// Every key this process holds or waits for.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let report = m.locks().await?;
    /// for lock in &report.held {
    ///     println!("{} token {} ({:?} left)", lock.key, lock.token, lock.time_left);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ObserveErrorKind::ManagerGone`](crate::ObserveErrorKind::ManagerGone) only.
    pub async fn locks(&self) -> Result<LocksReport, ObserveError> {
        self.addr
            .send(ListLocks)
            .await
            .map_err(|e| LockError::from(e).into())
    }

    /// How much per-key state the manager keeps: for tests that check that nothing grows
    /// without bound (withdrawn requests leave their key's queue at once). Not stable API.
    #[doc(hidden)]
    pub async fn state_counts(&self) -> Result<crate::lock::requests::ManagerCounts, LockError> {
        Ok(self.addr.send(crate::lock::requests::CountState).await?)
    }

    /// Subscribes `recipient` to every lock loss in this manager, for as long as the returned
    /// guard lives (or for the manager's life, after
    /// [`LossSubscription::detach`](crate::LossSubscription::detach)). Weak: the subscription
    /// does not keep the subscriber alive.
    ///
    /// Weak, like every nlock subscription: keep an address of the subscriber yourself. A
    /// `Recipient` made from an actor's only address (`Actor.start().recipient()` passed
    /// straight in) is dropped with this call's argument, the actor stops, and nothing is
    /// delivered. A subscriber whose actor has already stopped is logged as a warning.
    ///
    /// ```no_run
    /// use actix::prelude::*;
    ///
    /// struct Alarm;
    /// impl Actor for Alarm {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<nlock::LockLost> for Alarm {
    ///     type Result = ();
    ///     fn handle(&mut self, lost: nlock::LockLost, _: &mut Context<Self>) {
    ///         eprintln!("lost {}: {}", lost.key, lost.reason);
    ///     }
    /// }
    /// # fn f(m: nlock::LockManager) {
    /// let alarm = Alarm.start(); // keep it: the subscription alone does not
    /// let subscription = m.subscribe_losses(alarm.clone().recipient());
    /// # }
    /// ```
    pub fn subscribe_losses(&self, recipient: Recipient<LockLost>) -> LossSubscription {
        self.losses.subscribe(recipient)
    }

    /// Winds down what is built on this manager first (each elector stops its role, waits
    /// for it and releases its term), then ends every waiting acquire with `ManagerGone`
    /// (queued or already contending), tells every holder `LockLost { reason: Shutdown }`
    /// before its delete is sent, releases every held lock, and stops the manager. Returns
    /// when the releases are answered: about one round-trip for a contender in the middle of
    /// a write, plus the deletes (and whatever the roles take to stop).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// m.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        // Started under the lock, awaited after it: a dependent gone winds down at once.
        let winding: Vec<_> = match self.dependents.lock() {
            Ok(mut list) => list.drain(..).map(|d| d.wind_down()).collect(),
            Err(_) => Vec::new(),
        };
        futures::future::join_all(winding).await;
        // A manager already gone has nothing left to release.
        let _ = self.addr.send(Shutdown).await;
    }

    /// Registers what [`shutdown`](LockManager::shutdown) winds down first.
    pub(crate) fn add_dependent(&self, who: Box<dyn BeforeShutdown>) {
        if let Ok(mut list) = self.dependents.lock() {
            list.retain(|d| !d.is_gone());
            list.push(who);
        }
    }

    /// Every key held in the bucket right now, by any process, sorted by key. A read, for
    /// display: by the time it returns, locks may have changed hands.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// for h in m.holders().await? {
    ///     println!("{} token {} held by {}", h.key, h.token, h.holder);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ObserveErrorKind`](crate::ObserveErrorKind): `Unavailable`, `OutcomeUnknown`,
    /// `PermissionDenied` from NATS.
    pub async fn holders(&self) -> Result<Vec<KeyHolder>, ObserveError> {
        let snapshot = self.store.snapshot(">").await?;
        let mut held: Vec<KeyHolder> = snapshot.into_iter().filter_map(key_holder).collect();
        held.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(held)
    }

    /// Who holds `key` right now, by any process; `None` when it is free. A read, for
    /// display: only a compare-and-set decides ownership.
    ///
    /// # Errors
    /// [`ObserveErrorKind`](crate::ObserveErrorKind): `InvalidKey` before anything is sent,
    /// `Unavailable`, `OutcomeUnknown`, `PermissionDenied` from NATS.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// match m.holder("jobs.nightly").await? {
    ///     Some(h) => println!("held by {} with token {}", h.holder.owner, h.token),
    ///     None => println!("free"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn holder(&self, key: &str) -> Result<Option<KeyHolder>, ObserveError> {
        crate::key::validate_held_key(key)?;
        let changes = self.store.snapshot(key).await?;
        Ok(changes.into_iter().find_map(key_holder))
    }

    /// What happens to the keys matching `filter` (a key, or a NATS wildcard such as `>`,
    /// `jobs.>` or `*.nightly`), in order: first each key's last change, then every change
    /// as it lands: acquired, refreshed, released, deleted, expired (expiries only with limit
    /// markers, see [`Capabilities::expiry_events`]). One JetStream consumer per stream, not
    /// one per key, deleted when the stream is dropped.
    ///
    /// The stream's consumer exists when this returns: nothing that lands afterwards is
    /// missed, however late the stream is first polled.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use futures::StreamExt;
    /// let mut events = m.events("jobs.>").await?;
    /// while let Some(e) = events.next().await {
    ///     println!("{} {:?} token {:?}", e.key, e.kind, e.token);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ObserveErrorKind`](crate::ObserveErrorKind): `InvalidKey` for a bad filter before
    /// anything is sent, `Unavailable`, `OutcomeUnknown`, `PermissionDenied` from NATS.
    pub async fn events(&self, filter: &str) -> Result<LockEvents, ObserveError> {
        validate_filter(filter)?;
        let changes = self.store.changes(filter, ChangesFrom::Current).await?;
        Ok(LockEvents::new(changes, self.store.silent_expiry()))
    }

    /// What the server supports (per-lock TTL, expiry events), and how long the restart
    /// grace is.
    ///
    /// ```no_run
    /// # fn f(m: nlock::LockManager) {
    /// if m.capabilities().per_lock_ttl {
    ///     println!("nats-server {} takes per-lock TTLs", m.capabilities().server_version);
    /// }
    /// # }
    /// ```
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The restart grace in force now, read from the server: `Some` while the bucket's data
    /// is younger than its TTL plus the allowed clock skew (a new or re-created bucket, a
    /// reset cluster), with when it ends; `None` once it is past (or with
    /// [`ConfigBuilder::restart_grace`](crate::ConfigBuilder::restart_grace) off). No lock is
    /// granted during it: waiting acquires wait, `try_acquire` answers
    /// [`LockError::RestartGrace`].
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// if let Some(grace) = m.restart_grace().await? {
    ///     println!("no locks for {:?} more", grace.remaining);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ObserveErrorKind`](crate::ObserveErrorKind): `Unavailable`, `OutcomeUnknown`,
    /// `PermissionDenied` from NATS.
    pub async fn restart_grace(&self) -> Result<Option<RestartGrace>, ObserveError> {
        self.store
            .restart_grace()
            .await
            .map_err(|e| e.into_lock_error("").into())
    }

    /// This manager's owner id, as written in its lock values.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let mine = m.holders().await?.into_iter().filter(|h| h.holder.owner == m.owner()).count();
    /// # Ok(()) }
    /// ```
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The bucket's metrics.
    pub(crate) fn meter(&self) -> &crate::telemetry::Meter {
        self.store.meter()
    }

    /// The manager actor's address.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), actix::MailboxError> {
    /// let report = m.actor().send(nlock::actor::ListLocks).await?;
    /// # Ok(()) }
    /// ```
    pub fn actor(&self) -> &Addr<LockManagerActor> {
        &self.addr
    }

    /// Whether this manager's NATS connection is up, and each change from now on: `None` for a
    /// manager started on a client connected elsewhere ([`start`](Self::start)), whose events
    /// nlock cannot see. For telling a person that what they watch may be stale; a lock's
    /// lease, not this, says whether it is held.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// if let Some(mut state) = m.connection_state() {
    ///     while state.changed().await.is_ok() {
    ///         println!("NATS: {:?}", *state.borrow_and_update());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn connection_state(&self) -> Option<tokio::sync::watch::Receiver<ConnectionState>> {
        self.connection.clone()
    }
}
