//! One run of a role, of either form: an actor started in a context of its own on the
//! current arbiter, or a future spawned as a task of its own there. Stopped from outside,
//! and watched until it has ended: the actor's context finished (after `stopped()`), the
//! future returned or was dropped, or either panicked.
//!
//! Why not `actix::Supervisor` as it is: it restarts the same actor value in place and, in
//! doing so, drops every future spawned in the context, which is where the stop signal
//! lives; and a panic in a handler ends the supervisor's task with the actor, so it restarts
//! nothing. Here each restart is a fresh role from the caller's factory, with the same
//! `Term`, and a panic is caught at the task's edge and reported like a stop.
//!
//! The end of a run is told only once the role's code can no longer run: after the actor's
//! context finished, or after the future returned or was dropped (a panic in its `Drop`
//! included). What the role spawned of its own is not part of it.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use actix::fut::{ActorFutureExt, WrapFuture};
use actix::prelude::*;
use futures::FutureExt;
use tokio::sync::{oneshot, watch};

use super::term::Term;

/// How a role run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleExit {
    /// An actor's context finished (it stopped itself, or was stopped); a future returned or
    /// was dropped.
    Stopped,
    /// The role's code panicked (a handler, `started`, `stopping`, a poll of the future, or
    /// its drop); it was dropped unfinished.
    Panicked,
}

/// A role run in progress. Dropping it stops the role: an actor's stop signal's sender goes
/// away, a future is dropped.
#[derive(Debug)]
pub(crate) struct RunningRole {
    form: Form,
    exited: oneshot::Receiver<RoleExit>,
}

#[derive(Debug)]
enum Form {
    /// An actor, told to stop through this signal (spawned into its own context).
    Actor(watch::Sender<bool>),
    /// A future, dropped when `cancel` is sent or dropped. `term` says whether it winds down
    /// by itself (it asked for `Term::ending`), and so is not dropped at once by `stop`.
    Future {
        cancel: Option<oneshot::Sender<()>>,
        term: Term,
    },
}

impl RunningRole {
    /// Starts `act` on the current arbiter. Must be called from inside an actix arbiter
    /// (the campaign runs on one).
    pub(crate) fn actor<A>(act: A) -> RunningRole
    where
        A: Actor<Context = Context<A>>,
    {
        let (stop, mut stop_rx) = watch::channel(false);
        let (exit_tx, exited) = oneshot::channel();
        let mut ctx = Context::<A>::new();
        // The stop signal lives in the role's own context, so it reaches the actor between two
        // of its messages; a sender that is gone (the campaign ended) stops it too.
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
        RunningRole {
            form: Form::Actor(stop),
            exited,
        }
    }

    /// Spawns `role`, the future an async role made for `term`, on the current arbiter (the
    /// campaign runs on one), so it need not be `Send`.
    pub(crate) fn future<F>(role: F, term: Term) -> RunningRole
    where
        F: Future<Output = ()> + 'static,
    {
        let (cancel, cancelled) = oneshot::channel::<()>();
        let (exit_tx, exited) = oneshot::channel();
        actix::spawn(async move {
            let mut run = Box::pin(AssertUnwindSafe(role).catch_unwind());
            let finished = tokio::select! {
                // A cancel, or its sender dropped with the `RunningRole`: drop it below.
                biased;
                _ = cancelled => None,
                done = &mut run => Some(done),
            };
            // Dropped here, before the end is told, so that nothing of the role's future runs
            // after it; a panic in its drop is caught like one in a poll.
            let exit = match finished {
                Some(Ok(())) => RoleExit::Stopped,
                Some(Err(_)) => RoleExit::Panicked,
                None => match std::panic::catch_unwind(AssertUnwindSafe(move || drop(run))) {
                    Ok(()) => RoleExit::Stopped,
                    Err(_) => RoleExit::Panicked,
                },
            };
            let _ = exit_tx.send(exit);
        });
        RunningRole {
            form: Form::Future {
                cancel: Some(cancel),
                term,
            },
            exited,
        }
    }

    /// Tells the role to stop, its term having ended (`Term::end` already called): an actor
    /// is told to stop (its `stopping()` may keep it running); a future that winds down by
    /// itself has been told by its term and is left to return; any other future is dropped.
    pub(crate) fn stop(&mut self) {
        match &mut self.form {
            Form::Actor(stop) => {
                let _ = stop.send(true);
            }
            Form::Future { term, .. } if term.winds_down() => {}
            Form::Future { cancel, .. } => cancel_now(cancel),
        }
    }

    /// Ends the role now if it can be: a future is dropped (true); an actor cannot be cut
    /// short and is left running (false).
    pub(crate) fn cut(&mut self) -> bool {
        match &mut self.form {
            Form::Actor(_) => false,
            Form::Future { cancel, .. } => {
                cancel_now(cancel);
                true
            }
        }
    }

    /// Resolves when the role's run has ended. Cancel-safe: poll it again after a timeout.
    pub(crate) async fn exited(&mut self) -> RoleExit {
        // A sender dropped without a word means the task was dropped: the arbiter stopped.
        (&mut self.exited).await.unwrap_or(RoleExit::Stopped)
    }
}

fn cancel_now(cancel: &mut Option<oneshot::Sender<()>>) {
    if let Some(cancel) = cancel.take() {
        let _ = cancel.send(());
    }
}
