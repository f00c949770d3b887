//! One run of a role actor: started in a context of its own on the current arbiter, stopped
//! from outside, and watched until its context has finished (after `stopped()`) or its task
//! panicked.
//!
//! Why not `actix::Supervisor` as it is: it restarts the same actor value in place and, in
//! doing so, drops every future spawned in the context, which is where the stop signal
//! lives; and a panic in a handler ends the supervisor's task with the actor, so it restarts
//! nothing. Here each restart is a fresh actor from the caller's factory, with the same
//! `Term`, and a panic is caught at the task's edge and reported like a stop.

use std::panic::AssertUnwindSafe;

use actix::fut::{ActorFutureExt, WrapFuture};
use actix::prelude::*;
use futures::FutureExt;
use tokio::sync::{oneshot, watch};

/// How a role run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleExit {
    /// Its context finished: it stopped itself, or was stopped.
    Stopped,
    /// A handler (or `started`, `stopping`, ...) panicked; the actor was dropped unfinished.
    Panicked,
}

/// A role run in progress. Dropping it stops the role (its stop signal's sender goes away).
#[derive(Debug)]
pub(crate) struct RunningRole {
    stop: watch::Sender<bool>,
    exited: oneshot::Receiver<RoleExit>,
}

impl RunningRole {
    /// Starts `act` on the current arbiter. Must be called from inside an actix arbiter
    /// (the campaign loop runs in its elector's context).
    pub(crate) fn start<A>(act: A) -> RunningRole
    where
        A: Actor<Context = Context<A>>,
    {
        let (stop, mut stop_rx) = watch::channel(false);
        let (exit_tx, exited) = oneshot::channel();
        let mut ctx = Context::<A>::new();
        // The stop signal lives in the role's own context, so it reaches the actor between two
        // of its messages; a sender that is gone (the elector stopped) stops it too.
        let stop_signal = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        ctx.spawn(
            stop_signal
                .into_actor(&act)
                .map(|_, _, ctx: &mut Context<A>| ctx.stop()),
        );
        let fut = ctx.into_future(act);
        actix::spawn(async move {
            // Catching here, at the task's edge, is the only place a panic of the actor's code
            // can be seen; the actor value is dropped by the unwinding.
            let exit = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(()) => RoleExit::Stopped,
                Err(_) => RoleExit::Panicked,
            };
            let _ = exit_tx.send(exit);
        });
        RunningRole { stop, exited }
    }

    /// Tells the role to stop (its `stopping()` may still keep it running).
    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Resolves when the role's run has ended. Cancel-safe: poll it again after a timeout.
    pub(crate) async fn exited(&mut self) -> RoleExit {
        // A sender dropped without a word means the task was dropped: the arbiter stopped.
        (&mut self.exited).await.unwrap_or(RoleExit::Stopped)
    }
}
