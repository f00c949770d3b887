//! The connection, the NATS way: flags, the `nats` CLI's variables (through clap's `env`),
//! and the `nats` CLI's saved contexts, in that order of precedence.
//!
//! A context is `$XDG_CONFIG_HOME/nats/context/NAME.json` (`~/.config` when unset), the
//! selected one named in `.../nats/context.txt`; `--context NAME` (or `NATS_CONTEXT`) picks
//! another. Every file a setting names is checked before connecting, so that a bad one is a
//! usage error naming the setting, not a connection failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use nlock::async_nats::ConnectOptions;
use nlock::{BucketLayout, Config, LockError, LockManager, Storage};
use serde::Deserialize;

use crate::{BucketArgs, Failure, StorageArg};

/// The server when neither a flag, a variable nor a context names one (as with `nats`).
const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// NATS servers, comma-separated; credentials may be in the URL.
    #[arg(short, long, global = true, env = "NATS_URL", value_name = "URLS")]
    server: Option<String>,
    /// A `nats` CLI context to read (default: the selected one, if any).
    #[arg(long, global = true, env = "NATS_CONTEXT", value_name = "NAME")]
    context: Option<String>,
    /// A credentials file (JWT and nkey seed).
    #[arg(long, global = true, env = "NATS_CREDS", value_name = "FILE")]
    creds: Option<PathBuf>,
    /// A user name; alone (without --password) it is a token, as with `nats`.
    #[arg(long, global = true, env = "NATS_USER")]
    user: Option<String>,
    /// The user's password.
    #[arg(long, global = true, env = "NATS_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// An authentication token (`--token` is `release`'s fencing token).
    #[arg(long, global = true, env = "NATS_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// A user nkey seed file.
    #[arg(long, global = true, env = "NATS_NKEY", value_name = "FILE")]
    nkey: Option<PathBuf>,
    /// A CA certificate (PEM) to verify the server with.
    #[arg(long, global = true, env = "NATS_CA", value_name = "FILE")]
    tlsca: Option<PathBuf>,
    /// A client certificate (PEM), with --tlskey.
    #[arg(long, global = true, env = "NATS_CERT", value_name = "FILE")]
    tlscert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, global = true, env = "NATS_KEY", value_name = "FILE")]
    tlskey: Option<PathBuf>,
}

/// The fields nlock reads from a `nats` CLI context file; the others are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NatsContext {
    url: String,
    token: String,
    user: String,
    password: String,
    creds: String,
    nkey: String,
    cert: String,
    key: String,
    ca: String,
    jetstream_domain: String,
    jetstream_api_prefix: String,
}

/// Where and how to connect, once flags, variables and the context are merged.
#[derive(Debug)]
pub struct Target {
    pub servers: String,
    /// The context read, if any.
    pub context: Option<String>,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    creds: Option<PathBuf>,
    nkey: Option<PathBuf>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    jetstream_domain: Option<String>,
    jetstream_api_prefix: Option<String>,
}

/// The `nats` CLI's configuration directory: `$XDG_CONFIG_HOME/nats`, else `~/.config/nats`.
fn nats_config_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("nats"))
}

/// Reads the context `name`, or the selected one when `name` is `None` (no context selected
/// is not an error; a named context that cannot be read is).
fn load_context(name: Option<&str>) -> Result<Option<(String, NatsContext)>, Failure> {
    let dir = nats_config_dir();
    let name = match name {
        Some(name) => name.to_owned(),
        None => {
            let Some(selected) = dir
                .as_ref()
                .and_then(|d| std::fs::read_to_string(d.join("context.txt")).ok())
            else {
                return Ok(None);
            };
            match selected.trim() {
                "" => return Ok(None),
                name => name.to_owned(),
            }
        }
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Failure::Usage(format!("invalid context name {name:?}")));
    }
    let Some(dir) = dir else {
        return Err(Failure::Usage(
            "cannot find the nats configuration: set HOME or XDG_CONFIG_HOME".into(),
        ));
    };
    let path = dir.join("context").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::Usage(format!("context {name:?}: {}: {e}", path.display())))?;
    let context = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("context {name:?}: {}: {e}", path.display())))?;
    Ok(Some((name, context)))
}

/// A context's path setting, with `~/` expanded as the `nats` CLI does.
fn context_path(value: &str) -> Option<PathBuf> {
    if value.is_empty() {
        return None;
    }
    match (value.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Some(Path::new(&home).join(rest)),
        _ => Some(PathBuf::from(value)),
    }
}

fn non_empty(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

/// Merges the flags (and variables) over the context.
pub async fn resolve(args: &ConnectArgs) -> Result<Target, Failure> {
    let (context, ctx) = match load_context(args.context.as_deref())? {
        Some((name, ctx)) => (Some(name), ctx),
        None => (None, NatsContext::default()),
    };
    let target = Target {
        servers: args
            .server
            .clone()
            .or(non_empty(ctx.url))
            .unwrap_or_else(|| DEFAULT_URL.to_owned()),
        context,
        user: args.user.clone().or(non_empty(ctx.user)),
        password: args.password.clone().or(non_empty(ctx.password)),
        token: args.auth_token.clone().or(non_empty(ctx.token)),
        creds: args.creds.clone().or(context_path(&ctx.creds)),
        nkey: args.nkey.clone().or(context_path(&ctx.nkey)),
        ca: args.tlsca.clone().or(context_path(&ctx.ca)),
        cert: args.tlscert.clone().or(context_path(&ctx.cert)),
        key: args.tlskey.clone().or(context_path(&ctx.key)),
        jetstream_domain: non_empty(ctx.jetstream_domain),
        jetstream_api_prefix: non_empty(ctx.jetstream_api_prefix),
    };
    Ok(target)
}

/// Checks that a file a setting names can be read.
fn readable(setting: &str, path: &Path) -> Result<(), Failure> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| Failure::Usage(format!("{setting}: {}: {e}", path.display())))
}

impl Target {
    /// The manager's configuration from the bucket flags and the context's JetStream API.
    /// `create`: whether a missing bucket is created (only by the commands that hold locks).
    /// `lock_ttl`: a shorter TTL for the one lock held (`--lock-ttl`); requests then time out
    /// as they would on a bucket of that TTL (2 s, or half the TTL when that is shorter), so
    /// the lease cannot end before its grant is answered.
    pub fn config(
        &self,
        bucket: &BucketArgs,
        upgrade: bool,
        create: bool,
        lock_ttl: Option<Duration>,
    ) -> Result<Config, LockError> {
        let mut builder = Config::builder()
            .upgrade_bucket(upgrade)
            .create_bucket(create)
            .bucket(bucket.bucket.clone())
            .ttl(bucket.ttl)
            .replicas(bucket.replicas)
            .restart_grace(!bucket.no_restart_grace)
            .storage(match bucket.storage {
                StorageArg::Memory => Storage::Memory,
                StorageArg::File => Storage::File,
            });
        if bucket.go_compatible {
            builder = builder.bucket_layout(BucketLayout::GoCompatible);
        }
        if let Some(ttl) = lock_ttl.filter(|t| *t < bucket.ttl) {
            builder = builder.request_timeout(nlock::config::DEFAULT_REQUEST_TIMEOUT.min(ttl / 2));
        }
        if let Some(domain) = &self.jetstream_domain {
            builder = builder.jetstream_domain(domain.clone());
        } else if let Some(prefix) = &self.jetstream_api_prefix {
            builder = builder.jetstream_api_prefix(prefix.clone());
        }
        Ok(builder.build()?)
    }

    /// Connects and starts a manager.
    pub async fn connect(&self, config: Config) -> Result<LockManager, Failure> {
        let mut options = ConnectOptions::new().name("nlock-cli");
        match (&self.user, &self.password) {
            (Some(user), Some(pass)) => {
                options = options.user_and_password(user.clone(), pass.clone())
            }
            (Some(token), None) => options = options.token(token.clone()),
            (None, Some(_)) => {
                return Err(Failure::Usage("--password needs --user".into()));
            }
            (None, None) => {}
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(path) = &self.creds {
            readable("--creds", path)?;
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| Failure::Usage(format!("--creds: {}: {e}", path.display())))?;
        }
        if let Some(path) = &self.nkey {
            options = options.nkey(nkey_seed(path)?);
        }
        if let Some(path) = &self.ca {
            readable("--tlsca", path)?;
            options = options.add_root_certificates(path.clone());
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                readable("--tlscert", cert)?;
                readable("--tlskey", key)?;
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            _ => return Err(Failure::Usage("--tlscert and --tlskey go together".into())),
        }
        Ok(LockManager::connect_with(options, &self.servers, config).await?)
    }
}

/// Reads a user nkey seed (a line starting `SU`) from a seed file, bare or as `nsc` writes it.
fn nkey_seed(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--nkey: {}: {e}", path.display())))?;
    text.lines()
        .map(str::trim)
        .find(|line| line.starts_with("SU"))
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::Usage(format!(
                "--nkey: {}: no user nkey seed (a line starting SU)",
                path.display()
            ))
        })
}
