//! The connection, the NATS way, through the library's one mapping
//! ([`nlock::ConnectSettings`]): the flags here, over the `nats` CLI's variables, over its
//! saved contexts (`--context NAME`, else `NATS_CONTEXT`, else the selected one).
//!
//! The library reads the variables and the context and checks every setting before
//! connecting; a bad one is `InvalidConnectSetting` (a usage error) naming it: the flag when a
//! flag gave it (see [`flag_names`]), the variable, or the context's field.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use nlock::{BucketLayout, Config, ConnectSettings, LockError, LockManager, Storage};

use crate::{BucketArgs, StorageArg};

#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// NATS servers, comma-separated; credentials may be in the URL [env: NATS_URL].
    #[arg(short, long, global = true, value_name = "URLS")]
    server: Option<String>,
    /// A `nats` CLI context to read (default: the selected one, if any) [env: NATS_CONTEXT].
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// A credentials file (JWT and nkey seed) [env: NATS_CREDS].
    #[arg(long, global = true, value_name = "FILE")]
    creds: Option<PathBuf>,
    /// A user name; alone (without --password) it is a token, as with `nats` [env: NATS_USER].
    #[arg(long, global = true)]
    user: Option<String>,
    /// The user's password [env: NATS_PASSWORD].
    #[arg(long, global = true)]
    password: Option<String>,
    /// An authentication token (`--token` is `release`'s fencing token) [env: NATS_TOKEN].
    #[arg(long, global = true)]
    auth_token: Option<String>,
    /// A user nkey seed file [env: NATS_NKEY].
    #[arg(long, global = true, value_name = "FILE")]
    nkey: Option<PathBuf>,
    /// A CA certificate (PEM) to verify the server with [env: NATS_CA].
    #[arg(long, global = true, value_name = "FILE")]
    tlsca: Option<PathBuf>,
    /// A client certificate (PEM), with --tlskey [env: NATS_CERT].
    #[arg(long, global = true, value_name = "FILE")]
    tlscert: Option<PathBuf>,
    /// The client certificate's key (PEM) [env: NATS_KEY].
    #[arg(long, global = true, value_name = "FILE")]
    tlskey: Option<PathBuf>,
}

/// The settings to connect with: the flags over what the `nats` CLI would use (its variables
/// over its context). Reads the context; checks nothing else yet ([`connect`] does).
pub fn settings(args: &ConnectArgs) -> Result<ConnectSettings, LockError> {
    let mut flags = ConnectSettings::new().name("nlock-cli");
    if let Some(servers) = &args.server {
        flags = flags.servers(servers.clone());
    }
    if let Some(user) = &args.user {
        flags = flags.user(user.clone());
    }
    if let Some(password) = &args.password {
        flags = flags.password(password.clone());
    }
    if let Some(token) = &args.auth_token {
        flags = flags.token(token.clone());
    }
    if let Some(path) = &args.creds {
        flags = flags.creds_file(path.clone());
    }
    if let Some(path) = &args.nkey {
        flags = flags.nkey_file(path.clone());
    }
    if let Some(path) = &args.tlsca {
        flags = flags.tls_ca(path.clone());
    }
    if let Some(path) = &args.tlscert {
        flags = flags.tls_cert(path.clone());
    }
    if let Some(path) = &args.tlskey {
        flags = flags.tls_key(path.clone());
    }
    let nats_cli = ConnectSettings::from_nats_cli(args.context.as_deref()).map_err(flag_names)?;
    Ok(flags.or(nats_cli))
}

/// Checks the settings, connects and starts a manager.
pub async fn connect(settings: &ConnectSettings, config: Config) -> Result<LockManager, LockError> {
    settings.connect(config).await.map_err(flag_names)
}

/// A bad setting a flag gave is named by the flag: the library names what its setters set by
/// the setter's name (a variable or a context's field by its own name, left as is).
fn flag_names(e: impl Into<LockError>) -> LockError {
    let e = e.into();
    let LockError::InvalidConnectSetting { setting, problem } = e else {
        return e;
    };
    let flag = match setting.as_str() {
        "servers" => "--server",
        "context" => "--context",
        "user" => "--user",
        "password" => "--password",
        "token" => "--auth-token",
        "creds_file" => "--creds",
        "nkey_file" => "--nkey",
        "tls_ca" => "--tlsca",
        "tls_cert" => "--tlscert",
        "tls_key" => "--tlskey",
        _ => return LockError::InvalidConnectSetting { setting, problem },
    };
    LockError::InvalidConnectSetting {
        setting: flag.to_owned(),
        problem,
    }
}

/// The manager's configuration from the bucket flags (a context's JetStream domain or API
/// prefix is added by the library when connecting). `create`: whether a missing bucket is
/// created (only by the commands that hold locks). `lock_ttl`: a shorter TTL for the one lock
/// held (`--lock-ttl`); requests then time out as they would on a bucket of that TTL (2 s, or
/// half the TTL when that is shorter), so the lease cannot end before its grant is answered.
pub fn config(
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
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setter_name_maps_to_a_flag_and_others_stay() {
        let named = |setting: &str| match flag_names(LockError::InvalidConnectSetting {
            setting: setting.into(),
            problem: "p".into(),
        }) {
            LockError::InvalidConnectSetting { setting, .. } => setting,
            other => panic!("{other:?}"),
        };
        assert_eq!(named("creds_file"), "--creds");
        assert_eq!(named("token"), "--auth-token");
        assert_eq!(named("NATS_CREDS"), "NATS_CREDS");
        assert_eq!(named("creds in context \"a\""), "creds in context \"a\"");
    }
}
