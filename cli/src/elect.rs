//! `nlock elect KEY -- CMD`: campaign for the key with an `Elector`, run the command only
//! while leading, stop it when the term ends, and campaign again.
//!
//! The command is a role actor's: `Role::started` spawns it, `Role::stopping` (the term is
//! over, or nlock is shutting down) sends it SIGTERM, and keeps the actor running until the
//! command has exited. The elector keeps the term refreshed while the role stops and
//! releases it only then, so after a voluntary end (SIGTERM to nlock, the command's own exit)
//! the next leader's command starts only after this one is gone; SIGKILL comes after
//! `--grace`, and the elector's `stop_timeout` is `--grace` plus a second (past it the term
//! is left to expire, never released).
//!
//! After a loss the next candidate can start sooner: `--lock-delay` after an unclean end (a
//! delete, `release --force`), at once after an expiry. So the role also watches the lease
//! (`Deadlines`): SIGTERM when its time left falls to the kill window, and SIGKILL by the
//! earliest of SIGTERM + `--grace`, the loss + the kill window (`--lock-delay` minus
//! `KILL_MARGIN`, at most `--grace`) for an unclean loss, and the lease deadline itself for
//! an expiry (the local deadline comes before the server's by the lease margin).
//!
//! A command that exits by itself is run again in a later term; one that exits quickly
//! (under `backoff::QUICK_EXIT`) makes nlock stand aside, as Kubernetes' CrashLoopBackOff,
//! for 1 s, doubling with each quick exit in a row up to 60 s (`backoff.rs`).
//!
//! Shutdown: SIGTERM, SIGINT or SIGHUP to nlock call `Elector::shutdown`, which stops the
//! role (and with it the command) and then releases the term; nlock exits 0.

mod backoff;
mod role;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use nlock::{ElectorOptions, ElectorStatus, LockManager};
use tokio::sync::mpsc;

use crate::run::Signals;
use crate::{Ctx, Failure};
use backoff::Backoff;
use role::{Event, Role, Spec, KILL_MARGIN};

#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election key (letters, digits, `-/_=.`; `.` separates tokens).
    pub key: String,
    /// This candidate's identity, shown by `who` and `ls` (default: HOST:PID).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// When nlock stops leading by itself (a signal to nlock, or the command exited), how
    /// long the command has between SIGTERM and SIGKILL; the term is kept meanwhile. After a
    /// loss of the term (a delete, `release --force`, an expiry) the command gets at most
    /// the kill window: --lock-delay minus 250ms, or none after an expiry.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration, value_name = "DURATION")]
    grace: Duration,
    /// How long a new term waits before starting the command when the previous term ended
    /// uncleanly (a delete, `release --force`); its old command is killed within it. Give
    /// every candidate of a key the same value.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration, value_name = "DURATION")]
    lock_delay: Duration,
    /// The election key's TTL (at most the bucket's --ttl; nats-server 2.11+): how soon a
    /// killed leader's term expires.
    #[arg(long, value_parser = crate::parse_duration, value_name = "DURATION", long_help = crate::lock_ttl::HELP)]
    pub lock_ttl: Option<Duration>,
    /// When the command exits by itself: resign and exit with its exit code, instead of
    /// resigning and campaigning again.
    #[arg(long)]
    resign_on_exit: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
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
    ttl: Duration,
    args: ElectArgs,
) -> Result<u8, Failure> {
    // The term's lease: the key's own TTL when --lock-ttl gives one.
    let ttl = args.lock_ttl.unwrap_or(ttl);
    // Installed first: an interrupt from here on shuts the elector down cleanly.
    let mut signals = Signals::new()?;
    let (program, rest) = match args.command.split_first() {
        Some((program, rest)) => (program.clone(), rest.to_vec()),
        None => return Err(Failure::Usage("no command given after --".into())),
    };
    let kill_window = args.lock_delay.saturating_sub(KILL_MARGIN).min(args.grace);
    let spec = Arc::new(Spec {
        program,
        args: rest,
        bucket: bucket.to_owned(),
        grace: args.grace,
        kill_window,
        running_out: kill_window.min(ttl / 3),
    });
    let identity = args.id.clone().unwrap_or_else(default_identity);
    let options = ElectorOptions::new(&identity)
        .metadata(serde_json::json!({ "pid": std::process::id() }))
        .lock_delay(args.lock_delay)
        // The command's grace, and a little more for its exit to be seen; past it the term is
        // left to expire (a command not reaped after SIGKILL), never released.
        .stop_timeout(args.grace.saturating_add(Duration::from_secs(1)));
    let options = match args.lock_ttl {
        Some(lock_ttl) => options.ttl(lock_ttl),
        None => options,
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let elector = manager
        .elector(&args.key, options)
        .actor(move |term| Role::new(term, spec.clone(), events_tx.clone()))?;
    ctx.say(format!("campaigning for {} as {identity}", args.key));
    if kill_window < args.grace {
        ctx.say(format!(
            "after a loss of the term the command gets {kill_window:?} between SIGTERM and \
             SIGKILL, not --grace {:?}: the next leader may start after --lock-delay {:?}",
            args.grace, args.lock_delay
        ));
    }
    let key = &args.key;
    let mut backoff = Backoff::default();
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
                Some(Event::Exited { token, code, by_itself: true, ran_for }) => {
                    if args.resign_on_exit {
                        ctx.say(format!(
                            "the command exited with {code}: resigning {key} (token {token})"
                        ));
                        shut_down(ctx, &elector, &mut events, key).await;
                        return Ok(code);
                    }
                    let hold_off = backoff.after_run(ran_for);
                    if hold_off.is_zero() {
                        ctx.say(format!(
                            "the command exited with {code}: resigning {key} (token {token}) \
                             and campaigning again"
                        ));
                    } else {
                        ctx.say(format!(
                            "the command exited with {code} after {ran_for:.1?}: resigning {key} \
                             (token {token}); back-off: it exits quickly, so campaigning again \
                             in {hold_off:?} (doubling up to {:?}; a run of {:?} or more \
                             resets it)",
                            backoff::CAP,
                            backoff::QUICK_EXIT
                        ));
                    }
                    tokio::select! {
                        () = elector.resign(hold_off) => {}
                        sig = signals.recv() => {
                            ctx.say(format!("signal {sig}: resigning {key}"));
                            shut_down(ctx, &elector, &mut events, key).await;
                            return Ok(0);
                        }
                    }
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
        Event::Killing { why } => ctx.say(format!("SIGKILL to the command: {why}")),
        Event::RunningOut { time_left } => ctx.say(format!(
            "the term runs out in {time_left:?} (refreshes failing): stopping the command"
        )),
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
