//! The role actor of `nlock elect`: the command's process during one term, and the
//! deadlines by which it is stopped and killed (see the parent module's docs).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{ActorFutureExt, WrapFuture};
use actix::prelude::*;
use nlock::{LeaseEnd, LossReason, Term};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::exit;
use crate::run::send_signal;

/// What a role tells the main task (which prints, and decides when nlock exits).
#[derive(Debug)]
pub(super) enum Event {
    /// The term `token` began and the command runs as `pid`.
    Started { token: u64, pid: Option<u32> },
    /// The command exited; `by_itself` when it did so while the term lasted and nobody
    /// asked it to stop.
    Exited {
        token: u64,
        code: u8,
        by_itself: bool,
        /// How long the command ran.
        ran_for: Duration,
    },
    /// SIGKILL, and why now.
    Killing { why: &'static str },
    /// The term is running out (refreshes are failing): the command is stopped before the
    /// lease deadline.
    RunningOut { time_left: Duration },
    /// The command could not be started; `code` is 126, 127 or 1.
    CannotStart { code: u8, message: String },
}

/// What every role of this candidate runs, and how.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) program: OsString,
    pub(super) args: Vec<OsString>,
    pub(super) bucket: String,
    pub(super) grace: Duration,
    /// After an unclean loss, how long the command has until SIGKILL: the lock-delay minus
    /// `KILL_MARGIN`, at most `grace`.
    pub(super) kill_window: Duration,
    /// When the lease's time left falls below this while the command runs, it is stopped
    /// ahead of the deadline: the kill window, at most a third of the TTL (below any time left
    /// that refreshes leave in ordinary operation).
    pub(super) running_out: Duration,
}

/// How much sooner than the next candidate's lock-delay the old command is killed: room for
/// the two candidates to learn of the delete at slightly different moments, and for the
/// kill and reap to be seen.
pub(super) const KILL_MARGIN: Duration = Duration::from_millis(250);

/// How often a role checks its lease's deadlines while the command runs.
const TICK: Duration = Duration::from_millis(20);

/// The role actor of one term: the command's process while leading.
pub(super) struct Role {
    term: Term,
    spec: Arc<Spec>,
    events: mpsc::UnboundedSender<Event>,
    /// The command's pid while it runs (not yet waited for, so it cannot have been reused).
    pid: Option<u32>,
    /// Whether the command has exited (or never started): the actor may stop.
    exited: bool,
    /// When the stop began (SIGTERM sent): SIGKILL at most `grace` later.
    stopping: Option<Instant>,
    /// When this role first saw its lease ended or past its deadline.
    ended_at: Option<Instant>,
    /// SIGKILL was sent.
    killed: bool,
}

impl Role {
    /// The role of the term `term`, not started yet.
    pub(super) fn new(term: Term, spec: Arc<Spec>, events: mpsc::UnboundedSender<Event>) -> Role {
        Role {
            term,
            spec,
            events,
            pid: None,
            exited: false,
            stopping: None,
            ended_at: None,
            killed: false,
        }
    }

    fn spawn(&mut self, ctx: &mut Context<Self>) {
        let mut command = tokio::process::Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .env("NLOCK_KEY", self.term.key())
            .env("NLOCK_TOKEN", self.term.token().to_string())
            .env("NLOCK_BUCKET", &self.spec.bucket)
            .env("NLOCK_LEADER_ID", self.term.identity())
            // A role dropped unfinished (a panic) must not leave the command behind.
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let code = exit::cannot_start(&e);
                let message = format!("cannot run {}: {e}", self.spec.program.to_string_lossy());
                let _ = self.events.send(Event::CannotStart { code, message });
                // Nothing to wait for; the main task shuts the elector down.
                self.exited = true;
                return;
            }
        };
        self.pid = child.id();
        let _ = self.events.send(Event::Started {
            token: self.term.token(),
            pid: self.pid,
        });
        // Waited for in the role's own context, so that the exit is seen between two of its
        // messages and `stopping()` can read `exited`.
        let started = Instant::now();
        let wait = async move { child.wait().await };
        ctx.spawn(wait.into_actor(self).map(move |status, role, ctx| {
            role.pid = None;
            role.exited = true;
            let code = match status {
                Ok(status) => exit_code(status),
                Err(_) => exit::ERROR,
            };
            let by_itself = role.stopping.is_none();
            let _ = role.events.send(Event::Exited {
                token: role.term.token(),
                code,
                by_itself,
                ran_for: started.elapsed(),
            });
            if !by_itself {
                // The stop asked for in `stopping()` can now go through.
                ctx.stop();
            }
            // Exited by itself: the main task resigns the term (standing aside for the
            // crash-loop back-off), or with --resign-on-exit shuts the elector down. Not a
            // stop of the actor, which the elector would take as a crash and restart (running
            // the command again in the same term).
        }));
    }
}

impl Role {
    /// SIGTERM to the command, once.
    fn begin_stop(&mut self) {
        if self.stopping.is_none() {
            self.stopping = Some(Instant::now());
            if let Some(pid) = self.pid {
                send_signal(pid, libc::SIGTERM);
            }
        }
    }

    /// Stops the command when the term runs out, and kills it by the earliest moment another
    /// candidate could start its own.
    fn enforce(&mut self) {
        if self.exited || self.killed {
            return;
        }
        let lease = self.term.lease().clone();
        let now = Instant::now();
        if self.ended_at.is_none() && !lease.is_held() {
            self.ended_at = Some(now);
        }
        if self.stopping.is_none() && lease.time_left() < self.spec.running_out {
            let _ = self.events.send(Event::RunningOut {
                time_left: lease.time_left(),
            });
            self.begin_stop();
        }
        let mut kill_by = self
            .stopping
            .map(|t| (t + self.spec.grace, "--grace passed"));
        if let Some(ended) = self.ended_at {
            let by = match lease.end() {
                // Someone else's delete or write: the next term waits its lock-delay.
                Some(LeaseEnd::Lost {
                    reason: LossReason::Deleted | LossReason::Taken { .. },
                }) => (
                    ended + self.spec.kill_window,
                    "the term was lost: kill window",
                ),
                // An expiry (or a deadline just passed): the next term may start as soon as
                // the server expires the key, a lease margin after the local deadline.
                _ => (ended, "the term's lease ran out"),
            };
            kill_by = Some(kill_by.map_or(by, |k| if by.0 < k.0 { by } else { k }));
        }
        if let Some((at, why)) = kill_by {
            if now >= at {
                if let Some(pid) = self.pid {
                    self.killed = true;
                    let _ = self.events.send(Event::Killing { why });
                    send_signal(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Actor for Role {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.spawn(ctx);
        ctx.run_interval(TICK, |role, _| role.enforce());
    }

    /// The term is over (or nlock is shutting down): stop the command, and keep the actor
    /// running until it has exited, so that the elector releases the term only then.
    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if self.exited {
            return Running::Stop;
        }
        self.begin_stop();
        self.enforce();
        Running::Continue
    }
}

/// Makes the command die with nlock (Linux: `PR_SET_PDEATHSIG`, SIGKILL). A SIGKILLed nlock
/// cannot stop its command; without this the command would run on while another candidate
/// leads. The signal comes when the thread that spawned the command ends; that is the
/// library's arbiter thread, which lives as long as the process.
fn die_with_parent(command: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: between fork and exec the hook calls only prctl(2) and getppid(2), which are
        // async-signal-safe, and builds an io::Error from a raw code without allocating.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // nlock died before the prctl: the death signal will never come.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// A finished command's exit code, as a shell gives it (128 + N when killed by signal N).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        (None, None) => exit::ERROR,
    }
}
