//! `nlock run KEY -- CMD`: wait for the lock, run the command while it is kept alive, stop
//! the command if the lock is lost, release when it exits, and pass its exit code through.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use clap::Args;
use std::future::Future;
use std::pin::Pin;

use nlock::{
    AcquireError, LeaseEnd, LockError, LockHandle, LockManager, LockOptions, LossReason,
    SemaphoreRequest,
};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::spinner::Waiting;
use crate::{exit, Ctx, Failure};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The lock key (letters, digits, `-/_=.`; `.` separates tokens).
    pub key: String,
    /// Give up waiting after this long (exit code 4); no limit when left out.
    #[arg(long, value_parser = crate::parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Do not wait: if the lock is held, exit with 3 without running the command.
    #[arg(long, conflicts_with = "timeout")]
    no_wait: bool,
    /// After a loss, how long the command has between SIGTERM and SIGKILL.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration, value_name = "DURATION")]
    grace: Duration,
    /// A description stored with the lock, shown by `ls` and `who`.
    #[arg(long)]
    description: Option<String>,
    /// This lock's TTL (at most the bucket's --ttl; nats-server 2.11+).
    #[arg(long, value_parser = crate::parse_duration, value_name = "DURATION", long_help = crate::lock_ttl::HELP)]
    pub lock_ttl: Option<Duration>,
    /// Make KEY a semaphore with this many permits: at most N commands run at once under it,
    /// in every process (each run holds one permit; every run must give the same N).
    #[arg(long, value_name = "N")]
    permits: Option<u32>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// How often the waiting display reads who holds the key. Each read is one small snapshot
/// request; once a second keeps the "held for" age current without loading the server.
const HOLDER_POLL: Duration = Duration::from_secs(1);
/// Spinner frame interval on a terminal.
const FRAME: Duration = Duration::from_millis(100);

/// The signals nlock passes on to the command (and that end a wait).
pub(crate) struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    pub(crate) fn new() -> Result<Signals, Failure> {
        let make =
            |kind| signal(kind).map_err(|e| Failure::Other(format!("cannot handle signals: {e}")));
        Ok(Signals {
            int: make(SignalKind::interrupt())?,
            term: make(SignalKind::terminate())?,
            hup: make(SignalKind::hangup())?,
        })
    }

    /// The next of the three signals, as its number.
    pub(crate) async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

/// Whether the terminal already sent `sig` to the command: Ctrl-C (SIGINT) goes to the
/// terminal's whole foreground process group, which the command shares with nlock. Passing it
/// on again would make it a second Ctrl-C, which many programs take as "quit now".
fn terminal_sent(sig: i32) -> bool {
    if sig != libc::SIGINT {
        return false;
    }
    // SAFETY: both calls take and return plain integers.
    let (foreground, ours) = unsafe { (libc::tcgetpgrp(libc::STDIN_FILENO), libc::getpgrp()) };
    foreground >= 0 && foreground == ours
}

/// Sends `sig` to the process `pid`. Only called for a child not yet waited for, so the pid
/// cannot have been reused.
pub(crate) fn send_signal(pid: u32, sig: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

pub async fn run(
    ctx: &Ctx,
    manager: &LockManager,
    bucket: &str,
    args: RunArgs,
) -> Result<u8, Failure> {
    // Installed first: from here on, an interrupt ends the wait cleanly (nothing is left
    // behind) or is passed to the command, instead of killing nlock with the lock held.
    let mut signals = Signals::new()?;
    let mut options = LockOptions::default();
    if let Some(d) = &args.description {
        options = options.description(d.clone());
    }
    if let Some(ttl) = args.lock_ttl {
        options = options.ttl(ttl);
    }
    let lock = if args.no_wait {
        match args.permits {
            Some(n) => semaphore(manager, &args, n).try_acquire().await?,
            None => {
                manager
                    .lock(&args.key)
                    .options(options)
                    .try_acquire()
                    .await?
            }
        }
    } else {
        let Some(lock) = wait(ctx, manager, &args, options, &mut signals).await? else {
            ctx.say(format!("interrupted while waiting for {}", args.key));
            return Err(Failure::Exit(exit::INTERRUPTED));
        };
        lock
    };
    ctx.say(format!("acquired {} (token {})", args.key, lock.token()));
    supervise(ctx, bucket, &args, lock, &mut signals).await
}

/// The semaphore request of a run with `--permits`.
fn semaphore<'a>(manager: &'a LockManager, args: &RunArgs, permits: u32) -> SemaphoreRequest<'a> {
    let mut request = manager
        .semaphore(&args.key, permits)
        .timeout_opt(args.timeout);
    if let Some(d) = &args.description {
        request = request.description(d.clone());
    }
    if let Some(ttl) = args.lock_ttl {
        request = request.ttl(ttl);
    }
    request
}

/// Waits for the lock with the waiting display; `None` if interrupted.
async fn wait(
    ctx: &Ctx,
    manager: &LockManager,
    args: &RunArgs,
    options: LockOptions,
    signals: &mut Signals,
) -> Result<Option<LockHandle>, LockError> {
    let mut acquire: Pin<Box<dyn Future<Output = Result<LockHandle, AcquireError>> + '_>> =
        match args.permits {
            Some(n) => Box::pin(semaphore(manager, args, n).acquire()),
            None => Box::pin(
                manager
                    .lock(&args.key)
                    .options(options)
                    .timeout_opt(args.timeout)
                    .acquire(),
            ),
        };
    let mut display = Waiting::new(&args.key, std::io::stderr().is_terminal(), ctx.quiet);
    let mut frames = tokio::time::interval(FRAME);
    // The first read after one poll interval: a free lock is taken before anything shows.
    let mut polls =
        tokio::time::interval_at(tokio::time::Instant::now() + HOLDER_POLL, HOLDER_POLL);
    let result = loop {
        tokio::select! {
            biased;
            result = &mut acquire => break result.map(Some),
            _ = signals.recv() => break Ok(None),
            // A semaphore's permits are many keys: the display shows only the wait.
            _ = polls.tick(), if args.permits.is_none() => {
                // A failed read only leaves the display as it was; the acquire decides.
                if let Ok(held) = manager.holder(&args.key).await {
                    display.holder(held.as_ref());
                }
            }
            _ = frames.tick() => display.tick(),
        }
    };
    display.finish();
    result.map_err(LockError::from)
}

/// Runs the command under `lock` until it exits; stops it if the lock is lost.
async fn supervise(
    ctx: &Ctx,
    bucket: &str,
    args: &RunArgs,
    lock: LockHandle,
    signals: &mut Signals,
) -> Result<u8, Failure> {
    let (program, rest) = match args.command.split_first() {
        Some(split) => split,
        None => return Err(Failure::Usage("no command given after --".into())),
    };
    let spawned = tokio::process::Command::new(program)
        .args(rest)
        .env("NLOCK_KEY", lock.key())
        .env("NLOCK_TOKEN", lock.token().to_string())
        .env("NLOCK_BUCKET", bucket)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let code = exit::cannot_start(&e);
            eprintln!(
                "nlock: error: cannot run {}: {e}",
                program.to_string_lossy()
            );
            // Released by the manager's shutdown on the way out.
            drop(lock);
            return Err(Failure::Exit(code));
        }
    };
    let pid = child.id();
    let lease = lock.lease().clone();
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);
    let mut lost = None;
    let mut killed = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            loss = lease.lost(), if lost.is_none() => {
                // Told even with --quiet: it is why nlock exits with 5.
                eprintln!(
                    "nlock: lost {} (token {}): {}; stopping the command (SIGTERM, SIGKILL \
                     after {:?})",
                    args.key, loss.token, loss.reason, args.grace
                );
                if let Some(pid) = pid {
                    send_signal(pid, libc::SIGTERM);
                }
                grace.as_mut().reset(tokio::time::Instant::now() + args.grace);
                lost = Some(loss);
            }
            _ = &mut grace, if lost.is_some() && !killed => {
                ctx.say("the command did not stop in time: SIGKILL");
                let _ = child.start_kill();
                killed = true;
            }
            sig = signals.recv() => {
                match pid {
                    Some(pid) if !terminal_sent(sig) => send_signal(pid, sig),
                    _ => {}
                }
            }
        }
    };
    let status = status.map_err(|e| Failure::Other(format!("waiting for the command: {e}")))?;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        (None, None) => exit::ERROR,
    };
    if lost.is_some() {
        return Err(Failure::Exit(exit::LOST));
    }
    match lock.release().await.map_err(LockError::from) {
        Ok(()) => {
            ctx.say(format!("released {}", args.key));
            Ok(code)
        }
        // Lost after the command's last check but before the release: the command may have
        // run without the lock for a moment, so it is a loss.
        Err(LockError::Lost { reason, .. }) => {
            ctx.say(format!(
                "lost {} as the command finished: {reason}",
                args.key
            ));
            Err(Failure::Exit(exit::LOST))
        }
        Err(e) => {
            // The command ran under the lock; only the release is in doubt: the key expires
            // after its TTL if the delete did not land.
            ctx.say(format!("release of {} failed: {e}", args.key));
            match lease.end() {
                // Only the release went unanswered (the lease ends so): the command finished
                // under the lock.
                Some(LeaseEnd::Lost {
                    reason: LossReason::ReleaseUnconfirmed,
                }) => Ok(code),
                Some(LeaseEnd::Lost { .. }) => Err(Failure::Exit(exit::LOST)),
                _ => Ok(code),
            }
        }
    }
}
