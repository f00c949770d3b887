//! `nlock elect KEY -- CMD`: campaign for the key with an `Elector`, run the command only
//! while leading, stop it when the term ends, and campaign again.
//!
//! The command is a role actor's: `Role::started` spawns it, `Role::stopping` (the term is
//! over, or nlock is shutting down) sends it SIGTERM, SIGKILL after `--grace`, and keeps the
//! actor running until the command has exited. The elector waits for the role to stop before
//! it releases the term, so the next leader's command starts only after this one is gone
//! (within the lease: a command that outlives it is killed at `--grace`, which the lease
//! does not wait for).
//!
//! Shutdown: SIGTERM, SIGINT or SIGHUP to nlock call `Elector::shutdown`, which stops the
//! role (and with it the command) and then releases the term; nlock exits 0.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{ActorFutureExt, WrapFuture};
use actix::prelude::*;
use clap::Args;
use nlock::{ElectorOptions, ElectorStatus, LockManager, Term};
use tokio::sync::mpsc;

use crate::run::{send_signal, Signals};
use crate::{exit, Ctx, Failure};

#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election key (letters, digits, `-/_=.`; `.` separates tokens).
    pub key: String,
    /// This candidate's identity, shown by `who` and `ls` (default: HOST:PID).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// When the term ends, how long the command has between SIGTERM and SIGKILL.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration, value_name = "DURATION")]
    grace: Duration,
    /// When the command exits by itself: resign and exit with its exit code, instead of
    /// resigning and campaigning again.
    #[arg(long)]
    resign_on_exit: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// What a role tells the main task (which prints, and decides when nlock exits).
#[derive(Debug)]
enum Event {
    /// The term `token` began and the command runs as `pid`.
    Started { token: u64, pid: Option<u32> },
    /// The command exited; `by_itself` when it did so while the term lasted and nobody
    /// asked it to stop.
    Exited {
        token: u64,
        code: u8,
        by_itself: bool,
    },
    /// The command did not stop within `grace` of its SIGTERM: SIGKILL.
    Killing { grace: Duration },
    /// The command could not be started; `code` is 126, 127 or 1.
    CannotStart { code: u8, message: String },
}

/// What every role of this candidate runs, and how.
#[derive(Debug)]
struct Spec {
    program: OsString,
    args: Vec<OsString>,
    bucket: String,
    grace: Duration,
    resign_on_exit: bool,
}

/// The role actor of one term: the command's process while leading.
struct Role {
    term: Term,
    spec: Arc<Spec>,
    events: mpsc::UnboundedSender<Event>,
    /// The command's pid while it runs (not yet waited for, so it cannot have been reused).
    pid: Option<u32>,
    /// Whether the command has exited (or never started): the actor may stop.
    exited: bool,
    /// Whether the stop has begun: SIGTERM sent, SIGKILL timer set.
    stopping: bool,
}

impl Role {
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
                let code = match e.kind() {
                    std::io::ErrorKind::NotFound => exit::NOT_FOUND,
                    std::io::ErrorKind::PermissionDenied => exit::CANNOT_EXECUTE,
                    _ => exit::ERROR,
                };
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
        let wait = async move { child.wait().await };
        ctx.spawn(wait.into_actor(self).map(|status, role, ctx| {
            role.pid = None;
            role.exited = true;
            let code = match status {
                Ok(status) => exit_code(status),
                Err(_) => exit::ERROR,
            };
            let by_itself = !role.stopping;
            let _ = role.events.send(Event::Exited {
                token: role.term.token(),
                code,
                by_itself,
            });
            if !by_itself {
                // The stop asked for in `stopping()` can now go through.
                ctx.stop();
            } else if !role.spec.resign_on_exit {
                // The command is done with this term: hand it over and campaign again. Not a
                // stop of the actor, which the elector would take as a crash and restart
                // (running the command again in the same term).
                role.term.step_down();
            }
            // With --resign-on-exit the main task shuts the elector down.
        }));
    }
}

impl Actor for Role {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.spawn(ctx);
    }

    /// The term is over (or nlock is shutting down): stop the command, and keep the actor
    /// running until it has exited, so that the elector releases the term only then.
    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if self.exited {
            return Running::Stop;
        }
        if !self.stopping {
            self.stopping = true;
            if let Some(pid) = self.pid {
                send_signal(pid, libc::SIGTERM);
            }
            ctx.run_later(self.spec.grace, |role, _| {
                if let Some(pid) = role.pid {
                    let _ = role.events.send(Event::Killing {
                        grace: role.spec.grace,
                    });
                    send_signal(pid, libc::SIGKILL);
                }
            });
        }
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

/// HOST:PID, the default identity.
fn default_identity() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let host = if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    };
    format!("{host}:{}", std::process::id())
}

pub async fn elect(
    ctx: &Ctx,
    manager: &LockManager,
    bucket: &str,
    args: ElectArgs,
) -> Result<u8, Failure> {
    // Installed first: an interrupt from here on shuts the elector down cleanly.
    let mut signals = Signals::new()?;
    let (program, rest) = match args.command.split_first() {
        Some((program, rest)) => (program.clone(), rest.to_vec()),
        None => return Err(Failure::Usage("no command given after --".into())),
    };
    let spec = Arc::new(Spec {
        program,
        args: rest,
        bucket: bucket.to_owned(),
        grace: args.grace,
        resign_on_exit: args.resign_on_exit,
    });
    let identity = args.id.clone().unwrap_or_else(default_identity);
    let options = ElectorOptions::new(&identity)
        .metadata(serde_json::json!({ "pid": std::process::id() }))
        // Once the lock is lost the lease gives no bound: wait the command's grace, and a
        // little more for its exit to be seen.
        .stop_timeout(args.grace + Duration::from_secs(1));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let elector = manager.elector(&args.key, options, move |term| Role {
        term,
        spec: spec.clone(),
        events: events_tx.clone(),
        pid: None,
        exited: false,
        stopping: false,
    })?;
    ctx.say(format!("campaigning for {} as {identity}", args.key));
    let key = &args.key;
    loop {
        tokio::select! {
            sig = signals.recv() => {
                ctx.say(format!("signal {sig}: stopping the command and resigning {key}"));
                shut_down(ctx, &elector, &mut events, key).await;
                return Ok(0);
            }
            status = elector.wait_for(|s| *s == ElectorStatus::Stopped) => {
                // Only our own shutdown stops it; anything else is the manager going away.
                let _ = status;
                return Err(Failure::Other(format!("the campaign for {key} ended")));
            }
            event = events.recv() => match event {
                Some(Event::Exited { token, code, by_itself: true }) => {
                    if args.resign_on_exit {
                        ctx.say(format!(
                            "the command exited with {code}: resigning {key} (token {token})"
                        ));
                        shut_down(ctx, &elector, &mut events, key).await;
                        return Ok(code);
                    }
                    ctx.say(format!(
                        "the command exited with {code}: resigning {key} (token {token}) and \
                         campaigning again"
                    ));
                }
                Some(Event::CannotStart { code, message }) => {
                    eprintln!("nlock: error: {message}");
                    shut_down(ctx, &elector, &mut events, key).await;
                    return Err(Failure::Exit(code));
                }
                Some(other) => say(ctx, key, &other),
                // The factory (and with it the sender) lives as long as the elector.
                None => {
                    shut_down(ctx, &elector, &mut events, key).await;
                    return Err(Failure::Other(format!("the campaign for {key} ended")));
                }
            }
        }
    }
}

/// Prints what a role reports (the events that do not decide anything).
fn say(ctx: &Ctx, key: &str, event: &Event) {
    match event {
        Event::Started { token, pid } => {
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            ctx.say(format!(
                "leading {key} (token {token}): started the command{pid}"
            ));
        }
        Event::Exited { token, code, .. } => {
            ctx.say(format!(
                "term {token} of {key} ended: the command exited with {code}"
            ));
        }
        Event::Killing { grace } => {
            ctx.say(format!(
                "the command did not stop within {grace:?}: SIGKILL"
            ));
        }
        Event::CannotStart { message, .. } => ctx.say(message),
    }
}

/// Shuts the elector down (the role stops the command first), printing what the role
/// reports meanwhile.
async fn shut_down(
    ctx: &Ctx,
    elector: &nlock::Elector,
    events: &mut mpsc::UnboundedReceiver<Event>,
    key: &str,
) {
    let shutdown = elector.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = events.recv() => say(ctx, key, &event),
        }
    }
    while let Ok(event) = events.try_recv() {
        say(ctx, key, &event);
    }
}
