//! `nlock`, the command line of the nlock library: run a command while holding a lock, list,
//! watch and break the locks of a bucket, and report what the server gives.
//!
//! Layout: this file has the flags (clap derive), exit codes and error reporting;
//! `connect.rs` maps the connection flags onto the library's `ConnectSettings` (which reads
//! the variables and the `nats` CLI's contexts); `run.rs` runs a command under a lock; `elect.rs` runs one while leading
//! (`elect/role.rs`: the command of one term and its kill deadlines); `show.rs` has the
//! read-only commands and `release --force`; `spinner.rs` shows who holds a lock while we
//! wait for it.

mod connect;
mod elect;
mod leader;
mod lock_ttl;
mod run;
mod show;
mod spinner;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nlock::{ErrorKind, LockError};

/// The exit codes, as `--help` shows them; `exit` below is their single source.
const EXIT_CODES: &str = "\
Exit codes:
  0      success (for `run`: the command's own exit code is passed through; `elect`: stopped by
         SIGTERM, SIGINT or SIGHUP, the term released)
  1      error: NATS unreachable, the server refused, a bucket with other settings, no such
         bucket (only `run` and `elect` create one), ...
  2      usage: bad flags, a bad key, a bad connection or bucket setting
  3      busy: `run --no-wait` found the lock held (the command did not run)
  4      timed out: `run --timeout` passed before the lock was free (the command did not run)
  5      lost: the lock was lost while the command ran; it was stopped (SIGTERM, then SIGKILL)
  6      not held: `who` or `release --force` on a free key, `leader` on a key nobody leads
  7      token mismatch: `release --force --token N` found another tenure holding the key
  126    `run`, `elect`: the command could not be started (not executable)
  127    `run`, `elect`: the command was not found
  128+N  `run`: the command was killed by signal N (130: nlock interrupted while waiting)
  any    `elect --resign-on-exit`: the command's own exit code (128+N: killed by signal N)";

/// The exit codes of `nlock` (see [`EXIT_CODES`]).
mod exit {
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const BUSY: u8 = 3;
    pub const TIMED_OUT: u8 = 4;
    pub const LOST: u8 = 5;
    pub const NOT_HELD: u8 = 6;
    pub const TOKEN_MISMATCH: u8 = 7;
    pub const CANNOT_EXECUTE: u8 = 126;
    pub const NOT_FOUND: u8 = 127;
    /// 128 + SIGINT, as a shell reports an interrupted command.
    pub const INTERRUPTED: u8 = 130;

    /// The code for a command that could not be started, as a shell gives it: 127 when it
    /// was not found, 126 when it may not be executed.
    pub fn cannot_start(e: &std::io::Error) -> u8 {
        match e.kind() {
            std::io::ErrorKind::NotFound => NOT_FOUND,
            std::io::ErrorKind::PermissionDenied => CANNOT_EXECUTE,
            _ => ERROR,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "nlock",
    version,
    about = "Distributed locks on NATS JetStream: run a command under a lock, list, watch and \
             break locks",
    long_about = "Distributed locks on NATS JetStream Key-Value.\n\n\
        `nlock run KEY -- CMD` runs CMD while holding the lock KEY, kept alive for as long as \
        CMD runs, and stops CMD if the lock is lost. `ls`, `who` and `watch` show the bucket's \
        locks; `leader` shows who leads an election; `release --force` breaks a stuck one; `info` says what the server gives. Only \
        `run` and `elect` create a missing bucket; the others never create or change one.\n\n\
        Connection settings are read, in this order, from the flags, the NATS_* variables, and \
        the `nats` CLI's selected context (or --context NAME).",
    after_long_help = EXIT_CODES,
    after_help = "See `nlock --help` for the exit codes."
)]
struct Cli {
    #[command(flatten)]
    connect: connect::ConnectArgs,
    #[command(flatten)]
    bucket: BucketArgs,
    /// Print only errors (and what the command itself prints).
    #[arg(short, long, global = true, help_heading = "Output")]
    quiet: bool,
    /// JSON output (one value per line) instead of text; errors as JSON on standard error.
    /// Text is the default, on a terminal or not.
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The lock bucket. An existing bucket must match these (its TTL, storage and replicas).
#[derive(Debug, Args)]
#[command(next_help_heading = "Bucket")]
struct BucketArgs {
    /// The KV bucket holding the locks.
    #[arg(long, global = true, env = "NLOCK_BUCKET", default_value = nlock::config::DEFAULT_BUCKET)]
    bucket: String,
    /// The bucket's TTL (its max age) and every lock's, unless `run`/`elect --lock-ttl` sets a
    /// shorter one; in whole seconds (`30`, `30s`, `2m`, `1h`). Must match the bucket.
    #[arg(long, global = true, env = "NLOCK_TTL", default_value = "30s", value_parser = parse_duration)]
    ttl: Duration,
    /// Where the bucket keeps its locks.
    #[arg(long, global = true, value_enum, default_value_t = StorageArg::Memory)]
    storage: StorageArg,
    /// The bucket's replicas (1 to 5).
    #[arg(long, global = true, default_value_t = 1)]
    replicas: usize,
    /// The bucket layout Go nlock makes (no per-lock TTL, no expiry markers), for a bucket
    /// shared with Go nlock clients.
    #[arg(long, global = true)]
    go_compatible: bool,
    /// Grant locks at once on a bucket whose data is younger than one TTL, instead of waiting
    /// out the restart grace. Safe only where no process can still hold a lock on an earlier
    /// life of the bucket (a fresh server of your own): after a memory-storage restart such a
    /// holder may still count its lease for one TTL.
    #[arg(long, global = true, env = "NLOCK_NO_RESTART_GRACE")]
    no_restart_grace: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StorageArg {
    Memory,
    File,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command while holding a lock; release it when the command exits.
    #[command(
        long_about = "Waits for the lock KEY, runs the command while the lock is kept alive, \
            releases it when the command exits, and exits with the command's exit code.\n\n\
            The command gets NLOCK_KEY, NLOCK_TOKEN (the tenure's fencing token: pass it to \
            the resource the lock protects) and NLOCK_BUCKET in its environment. If the lock \
            is lost while the command runs (the key was deleted, or a refresh could not be \
            confirmed in time), the command gets SIGTERM, SIGKILL after --grace, and nlock \
            exits with 5. SIGTERM and SIGHUP sent to nlock are passed on to the command \
            (SIGINT too, unless the terminal already sent it to both), and the lock is \
            released once it exits. Interrupted while waiting, nlock exits with 130 and \
            leaves nothing behind.",
        after_long_help = EXIT_CODES
    )]
    Run(run::RunArgs),
    /// Run a command only while leading: campaign for a key, stop the command when the term
    /// ends, campaign again.
    #[command(
        long_about = "Campaigns for the election key KEY and runs the command while this \
            candidate leads. The command gets NLOCK_KEY, NLOCK_TOKEN (the term's fencing \
            token), NLOCK_BUCKET and NLOCK_LEADER_ID (--id) in its environment.\n\n\
            When nlock ends the term itself (SIGTERM, SIGINT or SIGHUP to nlock, or the \
            command exited), the command gets SIGTERM, SIGKILL after --grace, and the term is \
            kept meanwhile and released only once the command has exited; a command still not \
            gone a second after --grace leaves the term to expire, never released. When the \
            term is lost (the key deleted, `release --force`, a refresh not confirmed in time), \
            the next candidate may start after --lock-delay (after a delete) or at once (after \
            an expiry): the command then gets SIGTERM and SIGKILL within --lock-delay minus \
            250ms (at most --grace), and when refreshes fail it is stopped before the lease \
            deadline and killed at it. So the commands of two terms do not run at once, as long \
            as every candidate uses the same --lock-delay and neither a machine nor nlock is \
            paused: one paused past the TTL (nlock alone, or with its command) can resume after \
            the next leader started, which only a resource that checks NLOCK_TOKEN can \
            refuse.\n\n\
            When the command exits by itself, nlock resigns (the next candidate takes over at \
            once) and campaigns again, running it afresh in its next term. A command that \
            exits within 10s is in a crash loop: nlock backs off, as Kubernetes does, standing \
            aside 1s before campaigning again, doubling with each quick exit in a row up to \
            60s, and says so; a run of 10s or more resets the back-off. With \
            --resign-on-exit it resigns and exits with the command's exit code instead. \
            A signal to nlock stops the command as above, resigns, and exits 0. On Linux the \
            command is killed (SIGKILL) when nlock dies, so a killed nlock leaves no command \
            running while the next leader starts after the TTL.",
        after_long_help = EXIT_CODES
    )]
    Elect(elect::ElectArgs),
    /// List the bucket's locks: key, token, holder, age and time left (never creates the
    /// bucket).
    Ls,
    /// Show who holds a lock (exit code 6 when it is free).
    Who {
        /// The lock key.
        key: String,
    },
    /// Show who leads an election (exit code 6 when nobody does); with --watch, every change
    /// of leadership as it happens (never creates the bucket).
    #[command(
        long_about = "Prints the leader of the election KEY (as `nlock elect` candidates \
        campaign for it): its identity, metadata, fencing token and since when it leads, or \
        that nobody leads (exit code 6). With --watch, prints the current state, then every \
        change as it lands, one line each: elected, resigned (the leader let go), deleted \
        (someone else removed the key), expired (the leader stopped refreshing; marked by \
        nats-server 2.11+) and ended (the term ended unseen: the next one began over it). \
        Runs until interrupted. Only reads: it never campaigns.",
        after_long_help = EXIT_CODES
    )]
    Leader {
        /// The election key.
        key: String,
        /// Keep running and print every change of leadership.
        #[arg(short, long)]
        watch: bool,
    },
    /// Print what happens to locks as it happens, one line per event.
    #[command(
        long_about = "Prints each key's last change, then every change as it lands, \
        one line each: acquired, refreshed (with --refreshes), released, deleted (someone else's \
        delete: a loss for its holder) and expired (nats-server 2.11+). Runs until interrupted."
    )]
    Watch {
        /// A key, or a wildcard: `jobs.>`, `*.nightly`. All keys when left out.
        filter: Option<String>,
        /// Also print refreshes.
        #[arg(long)]
        refreshes: bool,
    },
    /// Break a stuck lock: a delete that expects the holder's revision, never a blind one.
    #[command(long_about = "Breaks the lock KEY, whoever holds it. The holder is told at \
        once that its lock was deleted (an `nlock run` holder stops its command and exits with \
        5). The delete expects the revision read, so a lock that changed hands meanwhile is \
        never deleted. Asks for confirmation unless --yes.", after_long_help = EXIT_CODES)]
    Release {
        /// The lock key.
        key: String,
        /// Required: nlock does not hold locks between commands, so a release is always a
        /// break of someone else's lock.
        #[arg(long, required = true)]
        force: bool,
        /// Break only the tenure with this fencing token (from `nlock who` or `ls`).
        #[arg(long, value_name = "N")]
        token: Option<u64>,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Show the server version, the bucket's settings and the features this server gives.
    #[command(
        long_about = "Shows the server version, JetStream, the bucket's settings, \
        which features the server and bucket give (per-lock TTL, expiry events) and whether \
        the bucket needs an upgrade. Never creates a bucket, and changes one only with \
        --upgrade-bucket."
    )]
    Info {
        /// Add per-message TTL and limit markers to a bucket made without them (nats-server
        /// 2.11+). Cannot be undone, and Go nlock cannot start on the bucket afterwards.
        #[arg(long)]
        upgrade_bucket: bool,
    },
}

/// Parses `30`, `30s`, `500ms`, `2m`, `1h`. At most [`nlock::limits::MAX_TTL`] (about 292 years): a
/// longer one is refused here, so no deadline computed from it can overflow.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 30s, 500ms, 2m, 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m or h")),
    };
    let d = Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))?;
    if d > nlock::limits::MAX_TTL {
        return Err(format!(
            "{text:?} is too long: at most {}s",
            nlock::limits::MAX_TTL.as_secs()
        ));
    }
    Ok(d)
}

/// How a command ends when it does not succeed.
#[derive(Debug)]
enum Failure {
    /// An nlock error: its kind picks the exit code.
    Lock(LockError),
    /// Bad input found by the command line itself.
    Usage(String),
    /// Anything else (I/O, a declined confirmation).
    Other(String),
    /// An exit code already explained on standard error (or the command's own).
    Exit(u8),
}

impl From<LockError> for Failure {
    fn from(e: LockError) -> Self {
        Failure::Lock(e)
    }
}

/// The library's errors per operation carry a whole `LockError`: its exit code and message.
impl<K> From<nlock::Error<K>> for Failure {
    fn from(e: nlock::Error<K>) -> Self {
        Failure::Lock(e.into())
    }
}

fn exit_code(e: &LockError) -> u8 {
    match e.kind() {
        // A bucket that exists with other settings, or none, is the server's state, not a
        // bad flag.
        ErrorKind::InvalidConfig
            if matches!(
                e,
                LockError::InvalidConfig(
                    nlock::ConfigError::BucketMismatch { .. }
                        | nlock::ConfigError::BucketNotFound { .. }
                )
            ) =>
        {
            exit::ERROR
        }
        ErrorKind::InvalidKey | ErrorKind::InvalidConnectSetting | ErrorKind::InvalidConfig => {
            exit::USAGE
        }
        ErrorKind::Busy => exit::BUSY,
        ErrorKind::AcquireTimedOut => exit::TIMED_OUT,
        ErrorKind::Lost => exit::LOST,
        ErrorKind::NotHeld => exit::NOT_HELD,
        ErrorKind::TokenMismatch => exit::TOKEN_MISMATCH,
        _ => exit::ERROR,
    }
}

/// What every command needs: the parsed flags and how to print.
struct Ctx {
    quiet: bool,
    json: bool,
}

impl Ctx {
    /// A status line on standard error, unless `--quiet`.
    fn say(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("nlock: {line}");
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(mut e) => {
            let usage = e.use_stderr();
            add_dashdash_tip(&mut e);
            let _ = e.print();
            return ExitCode::from(if usage { exit::USAGE } else { 0 });
        }
    };
    let json_errors = cli.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nlock: error: cannot start the runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => ExitCode::from(report(&failure, json_errors)),
    }
}

/// `nlock run KEY echo hi` (the `--` forgotten) is clap's "unexpected argument 'echo'": add
/// a tip that shows where the `--` goes.
fn add_dashdash_tip(e: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind as ClapKind};
    if e.kind() != ClapKind::UnknownArgument {
        return;
    }
    let Some(ContextValue::String(found)) = e.get(ContextKind::InvalidArg) else {
        return;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if found.starts_with('-') || args.iter().any(|a| a == "--") {
        return;
    }
    let Some(sub) = args.iter().find(|a| *a == "run" || *a == "elect") else {
        return;
    };
    let tip = format!("put `--` before the command: nlock {sub} KEY -- {found} ...");
    e.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
}

/// Prints `failure` on standard error and returns its exit code.
fn report(failure: &Failure, json: bool) -> u8 {
    let (code, kind, message) = match failure {
        Failure::Exit(code) => return *code,
        Failure::Lock(e) => {
            let mut message = e.to_string();
            if let LockError::InvalidConfig(nlock::ConfigError::BucketMismatch { .. }) = e {
                message.push_str(" (pass the bucket's own settings: --ttl, --storage, --replicas)");
            }
            if let LockError::InvalidConfig(nlock::ConfigError::BucketNotFound { .. }) = e {
                message.push_str(
                    " (ls, who, watch, info and release never create one: check --bucket, or \
                     let `nlock run` or `elect` create it)",
                );
            }
            if let LockError::Unsupported {
                feature: nlock::Feature::PerLockTtl,
                ..
            } = e
            {
                message.push_str(lock_ttl::UNSUPPORTED_HINT);
            }
            (exit_code(e), e.kind().as_str(), message)
        }
        Failure::Usage(m) => (exit::USAGE, "usage", m.clone()),
        Failure::Other(m) => (exit::ERROR, "error", m.clone()),
    };
    if json {
        let body = serde_json::json!({ "error": kind, "message": message, "exit_code": code });
        eprintln!("{body}");
    } else {
        eprintln!("nlock: error: {message}");
    }
    code
}

/// A bad `watch` filter, before connecting. The library checks a filter with its key rules and
/// reports a bad one as a bad key; to the user it is a filter.
fn check_filter(filter: &str) -> Result<(), Failure> {
    nlock::validate_filter(filter).map_err(|e| match e {
        LockError::InvalidKey { rule, .. } => Failure::Usage(format!(
            "invalid filter {filter:?}: a filter is a key, or dot-separated tokens where `*` \
             stands for one token and a final `>` for all the rest ({rule})"
        )),
        e => e.into(),
    })
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let ctx = Ctx {
        quiet: cli.quiet,
        json: cli.json,
    };
    // Keys are checked before connecting: a bad key is a usage error even with no server.
    match &cli.command {
        Command::Run(args) => nlock::validate_key(&args.key)?,
        Command::Elect(args) => nlock::validate_key(&args.key)?,
        Command::Who { key } | Command::Release { key, .. } => nlock::validate_held_key(key)?,
        Command::Leader { key, .. } => nlock::validate_key(key)?,
        Command::Watch {
            filter: Some(filter),
            ..
        } => check_filter(filter)?,
        Command::Watch { .. } | Command::Ls | Command::Info { .. } => {}
    }
    let settings = connect::settings(&cli.connect)?;
    let upgrade = matches!(
        cli.command,
        Command::Info {
            upgrade_bucket: true
        }
    );
    // Only the commands that hold locks create a missing bucket: `ls`, `who`, `leader`, `watch`,
    // `info` and `release` read (or break) what is there and never write a bucket.
    let create = matches!(cli.command, Command::Run(_) | Command::Elect(_));
    let lock_ttl = match &cli.command {
        Command::Run(args) => args.lock_ttl,
        Command::Elect(args) => args.lock_ttl,
        _ => None,
    };
    let config = connect::config(&cli.bucket, upgrade, create, lock_ttl)?;
    let request_timeout = config.request_timeout();
    let manager = connect::connect(&settings, config).await?;
    if let Some(ttl) = lock_ttl {
        if let Err(e) = lock_ttl::check(&manager, cli.bucket.ttl, request_timeout, ttl) {
            manager.shutdown().await;
            return Err(e.into());
        }
    }
    let result = match cli.command {
        Command::Run(args) => run::run(&ctx, &manager, &cli.bucket.bucket, args).await,
        Command::Elect(args) => {
            elect::elect(&ctx, &manager, &cli.bucket.bucket, cli.bucket.ttl, args).await
        }
        Command::Ls => show::ls(&ctx, &manager, cli.bucket.ttl).await,
        Command::Who { key } => show::who(&ctx, &manager, &key, cli.bucket.ttl).await,
        Command::Leader { key, watch } => leader::leader(&ctx, &manager, &key, watch).await,
        Command::Watch { filter, refreshes } => {
            watch::watch(&ctx, &manager, filter.as_deref(), refreshes).await
        }
        Command::Release {
            key, token, yes, ..
        } => show::release(&ctx, &manager, &key, token, yes).await,
        Command::Info { .. } => show::info(&ctx, &manager, &cli.bucket, settings.context()).await,
    };
    manager.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in ["", "s", "10x", "-1s", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let max = nlock::limits::MAX_TTL.as_secs();
        assert_eq!(
            parse_duration(&format!("{max}s")),
            Ok(nlock::limits::MAX_TTL)
        );
        for huge in [
            format!("{}", max + 1),
            format!("{}", u64::MAX),
            "1e400".into(),
        ] {
            assert!(parse_duration(&huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn the_exit_code_table_names_every_code() {
        for code in [
            exit::ERROR,
            exit::USAGE,
            exit::BUSY,
            exit::TIMED_OUT,
            exit::LOST,
            exit::NOT_HELD,
            exit::TOKEN_MISMATCH,
            exit::CANNOT_EXECUTE,
            exit::NOT_FOUND,
        ] {
            assert!(EXIT_CODES.contains(&format!("\n  {code} ")), "{code}");
        }
    }

    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
