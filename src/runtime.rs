//! Where the actors run: on the caller's actix arbiter when there is one (an actix system,
//! an actix-web worker), else on an actix system this library starts once, on a thread of
//! its own, for callers on plain tokio (`#[tokio::main]`, multi-threaded or not).
//!
//! Every public method works from either world: callers talk to the actors through their
//! addresses, which are thread-safe, and await answers that need no particular runtime.
//!
//! Shutdown: the library's own system lives until the process exits; it holds nothing but the
//! actors of managers started on it, which `LockManager::shutdown` stops.

use std::sync::OnceLock;

use actix::prelude::*;

use crate::error::LockError;

/// The library's own arbiter, started on first use. `None` if its thread could not start.
static LIBRARY_ARBITER: OnceLock<Option<ArbiterHandle>> = OnceLock::new();

fn library_arbiter() -> Option<ArbiterHandle> {
    LIBRARY_ARBITER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("nlock-actors".into())
                .spawn(move || {
                    let system = actix::System::new();
                    let _ = tx.send(system.block_on(async { Arbiter::current() }));
                    // Runs until the process exits: nothing stops this system.
                    let _ = system.run();
                });
            match spawned {
                Ok(_) => rx.recv().ok(),
                Err(e) => {
                    tracing::error!(error = %e, "could not start nlock's actor thread");
                    None
                }
            }
        })
        .clone()
}

/// Starts an actor on the current arbiter, or on the library's own when there is none.
pub(crate) fn start<A, F>(make: F) -> Result<Addr<A>, LockError>
where
    A: Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A + Send + 'static,
{
    match Arbiter::try_current() {
        Some(here) => Ok(A::start_in_arbiter(&here, make)),
        None => match library_arbiter() {
            Some(arbiter) => Ok(A::start_in_arbiter(&arbiter, make)),
            None => Err(LockError::Unavailable {
                source: Box::new(std::io::Error::other("nlock's actor thread did not start")),
            }),
        },
    }
}

/// Runs the future `make` gives as a task on the current arbiter, or on the library's own
/// when there is none. `make` is called on that arbiter's thread, so the future need not be
/// `Send`, and what it spawns with `actix::spawn` (actors, tasks) runs there too.
pub(crate) fn spawn<F, Fut>(make: F) -> Result<(), LockError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let gone = || LockError::Unavailable {
        source: Box::new(std::io::Error::other("nlock's actor thread did not start")),
    };
    if Arbiter::try_current().is_some() {
        actix::spawn(make());
        return Ok(());
    }
    let arbiter = library_arbiter().ok_or_else(gone)?;
    // False when the arbiter has stopped: nothing would run the task.
    if arbiter.spawn_fn(move || {
        actix::spawn(make());
    }) {
        Ok(())
    } else {
        Err(gone())
    }
}
