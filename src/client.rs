//! `LockManager`: the caller-facing handle to a [`LockManagerActor`], cheap to clone and share
//! (for example as actix-web `web::Data`).

/// `run_if_free` (Go nlock's `Do`), `DoOutcome` and `OnLoss`.
mod run;

pub use run::{DoOutcome, OnLoss};

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};

use crate::config::Config;
use crate::connection::ConnectionState;
use crate::error::LockError;
use crate::handle::LockHandle;
use crate::holder::random_id;
use crate::lock::manager::LockManagerActor;
use crate::lock::requests::{Acquire, ListLocks, LockOptions, LocksReport, Shutdown, TryAcquire};
use crate::lock::state::LockLost;
use crate::observe::{key_holder, validate_filter, KeyHolder, LockEvents};
use crate::store::{Capabilities, ChangesFrom, Denials, RestartGrace, Store};
use crate::subscribers::{Subscribers, SubscriptionId};
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
    pub async fn connect(servers: &str, config: Config) -> Result<LockManager, LockError> {
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
    pub async fn connect_with(
        options: async_nats::ConnectOptions,
        servers: &str,
        config: Config,
    ) -> Result<LockManager, LockError> {
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
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), nlock::LockError> {
    /// let manager = nlock::LockManager::from_env(nlock::Config::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_env(config: Config) -> Result<LockManager, LockError> {
        let env = crate::connect::from_env(|name| std::env::var(name).ok()).await?;
        let watched =
            crate::connect::connect_watching(env.options, &env.servers, "NATS_URL").await?;
        LockManager::start_connected(watched, config).await
    }

    /// Ensures the bucket (creating it, or checking that an existing one matches `config`)
    /// and starts a manager on `client`. Inside an actix system the actors run on the
    /// current arbiter; elsewhere on an actix system of nlock's own, on its own thread.
    ///
    /// A request refused for want of permission is reported only as the server's silence
    /// here (a timeout, "unavailable"): nlock cannot see the events of a client it did not
    /// connect. [`connect`](LockManager::connect), [`connect_with`](LockManager::connect_with)
    /// and [`from_env`](LockManager::from_env) report it as [`LockError::PermissionDenied`].
    pub async fn start(
        client: async_nats::Client,
        config: Config,
    ) -> Result<LockManager, LockError> {
        LockManager::start_watched(client, config, Denials::default(), None).await
    }

    /// [`start_watched`](LockManager::start_watched) on a connection nlock made itself, whose
    /// events it watches.
    async fn start_connected(
        watched: crate::connect::Watched,
        config: Config,
    ) -> Result<LockManager, LockError> {
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
    ) -> Result<LockManager, LockError> {
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
        let losses = Arc::new(Subscribers::default());
        let actor = {
            let (owner, losses, store) = (owner.to_string(), losses.clone(), store.clone());
            move |_: &mut actix::Context<LockManagerActor>| {
                LockManagerActor::new(store, config, owner, feed, losses)
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
        })
    }

    /// Waits for `key` until acquired, or until `timeout` passes (`None`: no limit). Dropping
    /// the returned future withdraws the request and leaves no lock behind.
    pub async fn acquire(
        &self,
        key: &str,
        timeout: Option<Duration>,
    ) -> Result<LockHandle, LockError> {
        self.acquire_with(key, timeout, LockOptions::default())
            .await
    }

    /// [`acquire`](LockManager::acquire) with a per-lock TTL or description.
    ///
    /// The TTL must be whole seconds, no longer than the bucket's and longer than the request
    /// timeout; it needs nats-server 2.11+ ([`ErrorKind::Unsupported`](crate::ErrorKind)
    /// before).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use std::time::Duration;
    /// let options = nlock::LockOptions::default()
    ///     .ttl(Duration::from_secs(5))
    ///     .description("compacting segment 42");
    /// let lock = m.acquire_with("segments.42", Some(Duration::from_secs(1)), options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_with(
        &self,
        key: &str,
        timeout: Option<Duration>,
        options: LockOptions,
    ) -> Result<LockHandle, LockError> {
        let msg = Acquire {
            key: key.to_owned(),
            timeout,
            options,
        };
        self.addr.send(msg).await??.await
    }

    /// One attempt: the lock if it is free now, else [`ErrorKind::Busy`] naming the holder.
    pub async fn try_acquire(&self, key: &str) -> Result<LockHandle, LockError> {
        self.try_acquire_with(key, LockOptions::default()).await
    }

    /// [`try_acquire`](LockManager::try_acquire) with a per-lock TTL or description.
    pub async fn try_acquire_with(
        &self,
        key: &str,
        options: LockOptions,
    ) -> Result<LockHandle, LockError> {
        let msg = TryAcquire {
            key: key.to_owned(),
            options,
        };
        self.addr.send(msg).await??.await
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
    pub async fn locks(&self) -> Result<LocksReport, LockError> {
        Ok(self.addr.send(ListLocks).await?)
    }

    /// How much per-key state the manager keeps: for tests that check that nothing grows
    /// without bound (withdrawn requests leave their key's queue at once). Not stable API.
    #[doc(hidden)]
    pub async fn state_counts(&self) -> Result<crate::lock::requests::ManagerCounts, LockError> {
        Ok(self.addr.send(crate::lock::requests::CountState).await?)
    }

    /// Subscribes `recipient` to every lock loss in this manager. Weak: the subscription does
    /// not keep the subscriber alive.
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
    /// m.subscribe_losses(alarm.clone().recipient());
    /// # }
    /// ```
    pub fn subscribe_losses(&self, recipient: Recipient<LockLost>) -> SubscriptionId {
        self.losses.subscribe(recipient)
    }

    /// Ends a subscription made by [`subscribe_losses`](LockManager::subscribe_losses).
    pub fn unsubscribe_losses(&self, id: SubscriptionId) {
        self.losses.unsubscribe(id)
    }

    /// Winds down what is built on this manager first (each elector stops its role, waits
    /// for it and releases its term), then ends every waiting acquire with `ManagerGone`
    /// (queued or already contending), tells every holder `LockLost { reason: Shutdown }`
    /// before its delete is sent, releases every held lock, and stops the manager. Returns
    /// when the releases are answered: about one round-trip for a contender in the middle of
    /// a write, plus the deletes (and whatever the roles take to stop).
    ///
    /// The `Shutdown` message, sent to the manager actor directly, does only the second part.
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
    pub async fn holders(&self) -> Result<Vec<KeyHolder>, LockError> {
        let mut held: Vec<KeyHolder> = self
            .store
            .snapshot(">")
            .await?
            .into_iter()
            .filter_map(key_holder)
            .collect();
        held.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(held)
    }

    /// Who holds `key` right now, by any process; `None` when it is free. A read, for
    /// display: only a compare-and-set decides ownership.
    pub async fn holder(&self, key: &str) -> Result<Option<KeyHolder>, LockError> {
        crate::key::validate_key(key)?;
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
    pub async fn events(&self, filter: &str) -> Result<LockEvents, LockError> {
        validate_filter(filter)?;
        let changes = self.store.changes(filter, ChangesFrom::Current).await?;
        Ok(LockEvents::new(changes, self.store.silent_expiry()))
    }

    /// What the server supports (per-lock TTL, expiry events), and how long the restart
    /// grace is.
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
    pub async fn restart_grace(&self) -> Result<Option<RestartGrace>, LockError> {
        self.store
            .restart_grace()
            .await
            .map_err(|e| e.into_lock_error(""))
    }

    /// This manager's owner id, as written in its lock values.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The manager actor's address.
    pub fn actor(&self) -> &Addr<LockManagerActor> {
        &self.addr
    }
}
