//! `Term`: what a role actor gets when its candidate leads.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::lease::Lease;

/// What the campaign loop is asked to do. Sent by the [`Elector`](crate::Elector)'s actor
/// and by a role through its [`Term`].
#[derive(Debug)]
pub(crate) enum Command {
    /// Hand the lead over now and do not campaign for `hold_off`; `done` is told when the
    /// role has stopped and the lock is released (at once when not leading).
    Resign {
        hold_off: Duration,
        done: Option<tokio::sync::oneshot::Sender<()>>,
    },
    /// Resign for good and end the campaign.
    Stop {
        done: Option<tokio::sync::oneshot::Sender<()>>,
    },
    /// A role of term `token` asks to step down (unhealthy): like a resign with the default
    /// backoff, ignored when that term is already over.
    StepDown { token: u64 },
}

/// One term of leadership, as its role sees it: the election key, the fencing token of this
/// term, the lease, and a way to step down. Cheap to clone; a role restarted within the term
/// gets the same `Term`.
///
/// Check [`is_held`](Term::is_held) before acting, and pass [`token`](Term::token) to every
/// resource the role writes to: a role of a process that was paused may act after the next
/// term began, and only a resource that refuses lower tokens stops that.
#[derive(Clone, Debug)]
pub struct Term {
    lease: Lease,
    identity: Arc<str>,
    /// The campaign loop's command queue: unbounded so that `step_down` never waits or fails
    /// for a full queue; the loop drains it all the time.
    commands: mpsc::UnboundedSender<Command>,
}

impl Term {
    pub(crate) fn new(
        lease: Lease,
        identity: Arc<str>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Term {
        Term {
            lease,
            identity,
            commands,
        }
    }

    /// The election key.
    pub fn key(&self) -> &str {
        self.lease.key()
    }

    /// The fencing token of this term: strictly greater than every earlier term's.
    pub fn token(&self) -> u64 {
        self.lease.token()
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The term's lease: `is_held()`, `time_left()`, `lost()`, `ended()`.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether this term still holds, as far as this process knows (read locally: false at
    /// the lease deadline even if nothing else ran meanwhile, as after a pause).
    pub fn is_held(&self) -> bool {
        self.lease.is_held()
    }

    /// Asks to step down (for a role that finds itself unhealthy): the role is stopped, the
    /// lock released, and the candidate campaigns again after its backoff. Does nothing once
    /// this term is over.
    pub fn step_down(&self) {
        // A closed queue means the campaign already ended, and with it this term.
        let _ = self.commands.send(Command::StepDown {
            token: self.token(),
        });
    }
}
