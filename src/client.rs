//! `LockManager`: the caller-facing handle to a [`LockManagerActor`], cheap to clone and share
//! (for example as actix-web `web::Data`).

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Recipient};
use futures::FutureExt;

use crate::config::Config;
use crate::error::LockError;
use crate::handle::LockHandle;
use crate::holder::{random_id, Holder};
use crate::lock_actor::LockLost;
use crate::manager::{
    Acquire, ListLocks, LockManagerActor, LockOptions, LocksReport, Shutdown, SubscribeLosses,
    TryAcquire,
};
use crate::store::{Capabilities, Store};
// Only the doc links below name `ErrorKind`.
#[cfg(doc)]
use crate::error::ErrorKind;

/// What [`LockManager::run_if_free`] did.
#[derive(Debug)]
pub enum DoOutcome<T> {
    /// The lock was free: the future ran and the lock was released after it.
    Executed {
        /// What the future returned.
        value: T,
        /// How the release went: an error here means the future ran at least partly after
        /// the lock was lost.
        released: Result<(), LockError>,
    },
    /// The lock was held by someone else; the future did not run.
    Skipped {
        /// The holder, when it could be read.
        holder: Option<Box<Holder>>,
    },
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
}

impl LockManager {
    /// Connects to NATS at `url` and starts a manager. Must run inside an actix system.
    pub async fn connect(url: &str, config: Config) -> Result<LockManager, LockError> {
        let client = crate::store::connect(url).await?;
        LockManager::start(client, config).await
    }

    /// Ensures the bucket (creating it, or checking that an existing one matches `config`)
    /// and starts a manager on `client`. Must run inside an actix system.
    pub async fn start(
        client: async_nats::Client,
        config: Config,
    ) -> Result<LockManager, LockError> {
        let store = Store::open(client, &config).await?;
        let caps = Arc::new(store.capabilities().clone());
        let owner: Arc<str> = random_id().into();
        if !caps.expiry_events {
            tracing::info!(
                server = %caps.server_version,
                "no limit markers: waiters notice an expired lock at the next fallback poll"
            );
        }
        let addr = LockManagerActor::new(Arc::new(store), config, owner.to_string()).start();
        Ok(LockManager { addr, caps, owner })
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
    /// let options = nlock::LockOptions {
    ///     ttl: Some(Duration::from_secs(5)),
    ///     description: Some("compacting segment 42".into()),
    /// };
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

    /// Go nlock's `Do`: runs `work` only if `key` is free right now, holding the lock while it
    /// runs, and releases it afterwards, also when `work` fails or panics (a panic is
    /// returned as [`ErrorKind::TaskPanicked`]).
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// match m.run_if_free("cron.cleanup", async { 42 }).await? {
    ///     nlock::DoOutcome::Executed { value, .. } => println!("ran: {value}"),
    ///     nlock::DoOutcome::Skipped { .. } => println!("another replica runs it"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run_if_free<F, T>(&self, key: &str, work: F) -> Result<DoOutcome<T>, LockError>
    where
        F: std::future::Future<Output = T>,
    {
        let lock = match self.try_acquire(key).await {
            Ok(lock) => lock,
            Err(LockError::Busy { holder, .. }) => return Ok(DoOutcome::Skipped { holder }),
            Err(e) => return Err(e),
        };
        let outcome = std::panic::AssertUnwindSafe(work).catch_unwind().await;
        let released = lock.release().await;
        match outcome {
            Ok(value) => Ok(DoOutcome::Executed { value, released }),
            Err(_) => Err(LockError::TaskPanicked {
                key: key.to_owned(),
            }),
        }
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

    /// Subscribes `recipient` to every lock loss in this manager.
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
    /// m.subscribe_losses(Alarm.start().recipient());
    /// # }
    /// ```
    pub fn subscribe_losses(&self, recipient: Recipient<LockLost>) {
        self.addr.do_send(SubscribeLosses(recipient));
    }

    /// Releases every held lock, ends every waiting acquire with `ManagerGone`, and stops the
    /// manager. Returns when the releases are answered.
    pub async fn shutdown(&self) {
        // A manager already gone has nothing left to release.
        let _ = self.addr.send(Shutdown).await;
    }

    /// What the server supports (per-lock TTL, expiry events).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
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
