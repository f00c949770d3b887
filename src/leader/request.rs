//! `manager.elector(key, options)`: an [`ElectorRequest`], started with the role in one of
//! its two forms, an async function ([`run`](ElectorRequest::run)) or an actix actor
//! ([`actor`](ElectorRequest::actor)).

use std::future::Future;

use actix::prelude::*;

use super::campaign::RoleFactory;
use super::elector::{self, Elector};
use super::options::ElectorOptions;
use super::role::RunningRole;
use super::term::Term;
use crate::client::LockManager;
use crate::error::AcquireError;
// Only doc links name these.
#[cfg(doc)]
use crate::{error::ErrorKind, limits::MAX_DESCRIPTION};

/// A candidate for leadership not started yet: [`LockManager::elector`] makes it, and one of
/// its verbs starts it with a role, [`run`](ElectorRequest::run) for an async function or
/// [`actor`](ElectorRequest::actor) for an actix actor.
///
/// Both forms follow the same rules. The candidate campaigns at once, and whenever it leads
/// (after the lock-delay, when the previous term ended uncleanly) starts its role with the
/// [`Term`]. A role that ends by itself while the term lasts (an actor that stops, a future
/// that returns) or panics is started again from the factory with the same `Term`: at once
/// the first time, then 50 ms later for each further restart in the term, up to 1 s apart.
/// Never once the term is over.
///
/// At the end of a term (a loss of the lock, a resign, a step-down, a shutdown) the
/// candidate stops reporting itself leader at once, [`Term::ending`] resolves, and the role
/// is stopped and waited for, at most [`stop_timeout`](ElectorOptions::stop_timeout), while
/// keep-alive keeps refreshing the term (unless it was lost); the lock is released only once
/// the role has stopped. Past `stop_timeout` the term is no longer refreshed, never
/// released: it expires at its lease deadline (the role's `term.is_held()` turns false
/// then), and a warning is logged. After a term it campaigns again after a backoff with
/// jitter (a resign: not before its hold-off); after a term whose role outlived
/// `stop_timeout`, only once that role has stopped, unless it is shut down meanwhile.
///
/// Roles run on the candidate's arbiter: the current one, or nlock's own under plain tokio.
/// The factory runs there too and must not panic. Identity and metadata are written in the
/// lock value for observers ([`LockManager::leader`]); together, as JSON, at most
/// [`MAX_DESCRIPTION`] bytes ([`ErrorKind::InvalidConfig`] otherwise, and
/// [`ErrorKind::InvalidKey`] for a bad key), checked before anything is written.
///
/// ```no_run
/// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let request = manager.elector("jobs.leader", nlock::ElectorOptions::new("node-a"));
/// let elector = request.run(|term| async move {
///     println!("leading, token {}", term.token());
///     term.ending().await; // idle until the term ends (returning would restart the role)
///     println!("no longer leading");
/// })?;
/// elector.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use = "an elector request does nothing until `run` or `actor` starts it"]
#[derive(Debug)]
pub struct ElectorRequest {
    manager: LockManager,
    key: String,
    options: ElectorOptions,
}

impl LockManager {
    /// A candidate for leadership of `key` with `options`, to be started with a role:
    /// [`run`](ElectorRequest::run) for an async function (the usual form),
    /// [`actor`](ElectorRequest::actor) for an actix actor. See [`ElectorRequest`] for the
    /// rules both follow.
    ///
    /// ```no_run
    /// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let options = nlock::ElectorOptions::new("node-a");
    /// let elector = manager.elector("jobs.leader", options).run(|term| async move {
    ///     let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    ///     loop {
    ///         tick.tick().await;
    ///         println!("tick as leader, token {}", term.token()); // dropped when the term ends
    ///     }
    /// })?;
    /// // ... later:
    /// elector.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn elector(&self, key: &str, options: ElectorOptions) -> ElectorRequest {
        ElectorRequest {
            manager: self.clone(),
            key: key.to_owned(),
            options,
        }
    }
}

impl ElectorRequest {
    /// Starts the candidate with a role that is an async function: `role(term)` makes the
    /// future of one run, spawned on the candidate's arbiter (it need not be `Send`).
    ///
    /// At the end of the term the future is dropped (cancelled) at once: nothing of it runs
    /// after that, and the lock is released right after. A role that winds down by itself
    /// calls [`Term::ending`] (before the end) and returns once it resolves: it is then
    /// polled on, up to [`stop_timeout`](ElectorOptions::stop_timeout), and the lock released
    /// only after it returned; past `stop_timeout` it is dropped and the term left to expire.
    /// Returning or panicking while the term lasts restarts it (see [`ElectorRequest`]).
    /// What the role spawns (tasks, threads, processes) is not part of it: abort or await it
    /// in the wind-down.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let options = nlock::ElectorOptions::new("node-a").stop_timeout(Duration::from_secs(10));
    /// let elector = manager.elector("jobs.leader", options).run(|term| async move {
    ///     let ending = term.ending();
    ///     tokio::pin!(ending);
    ///     loop {
    ///         tokio::select! {
    ///             () = &mut ending => break, // the term ends: wind down, then return
    ///             () = tokio::time::sleep(Duration::from_secs(1)) => {
    ///                 if term.is_held() {
    ///                     println!("tick as leader, token {}", term.token());
    ///                 }
    ///             }
    ///         }
    ///     }
    ///     println!("flushed; the term is released now");
    /// })?;
    /// # let _ = elector;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `InvalidKey` for a bad key and
    /// `InvalidConfig` for identity and metadata over [`MAX_DESCRIPTION`] bytes, before
    /// anything is written; `Unavailable` when nlock's actor thread cannot start. What happens
    /// later (a busy key, NATS errors) is not an error here: the candidate keeps campaigning.
    pub fn run<F, Fut>(self, mut role: F) -> Result<Elector, AcquireError>
    where
        F: FnMut(Term) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let factory = move || -> RoleFactory {
            Box::new(move |term: Term| RunningRole::future(role(term.clone()), term))
        };
        Ok(elector::start(
            &self.manager,
            &self.key,
            self.options,
            factory,
        )?)
    }

    /// Starts the candidate with a role that is an actix actor: `role(term)` makes the actor
    /// of one run, started in a context of its own on the candidate's arbiter. For a role
    /// that is an actor already, or that other actors send messages to.
    ///
    /// At the end of the term the actor is told to stop; its `stopping()` may keep it running
    /// to wind down (returning `Running::Continue`), up to
    /// [`stop_timeout`](ElectorOptions::stop_timeout), and the lock is released only after
    /// it has stopped. Past `stop_timeout` it is left running (an actor cannot be cut short)
    /// and the term left to expire. Stopping or panicking while the term lasts restarts it
    /// from `role` (see [`ElectorRequest`]), a fresh actor rather than `Supervisor`'s
    /// restart in place.
    ///
    /// ```no_run
    /// use actix::prelude::*;
    /// use std::time::Duration;
    ///
    /// struct Ticker(nlock::Term);
    /// impl Actor for Ticker {
    ///     type Context = Context<Self>;
    ///     fn started(&mut self, ctx: &mut Context<Self>) {
    ///         ctx.run_interval(Duration::from_secs(1), |this, _| {
    ///             if this.0.is_held() {
    ///                 println!("tick as leader, token {}", this.0.token());
    ///             }
    ///         });
    ///     }
    /// }
    ///
    /// # async fn f(manager: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let options = nlock::ElectorOptions::new("node-a");
    /// let elector = manager.elector("jobs.leader", options).actor(Ticker)?;
    /// // ... later:
    /// elector.shutdown().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`AcquireErrorKind`](crate::AcquireErrorKind): `InvalidKey` for a bad key and
    /// `InvalidConfig` for identity and metadata over [`MAX_DESCRIPTION`] bytes, before
    /// anything is written; `Unavailable` when nlock's actor thread cannot start. What happens
    /// later (a busy key, NATS errors) is not an error here: the candidate keeps campaigning.
    pub fn actor<A, F>(self, mut role: F) -> Result<Elector, AcquireError>
    where
        A: Actor<Context = Context<A>>,
        F: FnMut(Term) -> A + Send + 'static,
    {
        let factory =
            move || -> RoleFactory { Box::new(move |term: Term| RunningRole::actor(role(term))) };
        Ok(elector::start(
            &self.manager,
            &self.key,
            self.options,
            factory,
        )?)
    }
}
