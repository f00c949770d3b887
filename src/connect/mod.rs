//! Connecting the way NATS tools do: a comma-separated server list, credentials inside a
//! URL, caller-built [`ConnectOptions`], and the settings the `nats` CLI reads (its
//! environment variables and saved contexts) as one [`ConnectSettings`].
//!
//! Besides `store/`, this is the only module that uses `async_nats`, and only to set up a
//! connection. Every setting is checked before a connection is tried, so a bad one is a
//! [`LockError::InvalidConnectSetting`] naming it, never a connection failure.
//!
//! Layout: this file parses server lists and makes the connection; `settings.rs` has
//! [`ConnectSettings`] (the builder and the environment); `check.rs` the checks that turn it
//! into options, and `connect`; `context.rs` reads the `nats` CLI's context files.

mod check;
mod context;
mod settings;

pub use settings::ConnectSettings;

use std::path::{Path, PathBuf};

use async_nats::{ConnectOptions, ServerAddr};

use tokio::sync::watch;

use crate::connection::{ConnectionState, ConnectionWatch};
use crate::error::{ConnectFailed, LockError};
use crate::store::Denials;

/// The server connected to when no setting names one (`NATS_URL` unset, ...), as with the
/// `nats` CLI.
pub(crate) const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Credentials found in a server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlAuth {
    /// `nats://user:pass@host`.
    UserPassword(String, String),
    /// `nats://token@host`: a user name without a password is a token, as in nats.go.
    Token(String),
}

/// Splits `servers` at commas, parses each address, and takes the credentials out of the
/// URLs. `setting` names the source in errors (`url` or `NATS_URL`). A URL's password is never
/// repeated in an error.
fn parse_servers(
    servers: &str,
    setting: &str,
) -> Result<(Vec<ServerAddr>, Option<UrlAuth>), LockError> {
    let invalid = |problem: String| LockError::InvalidConnectSetting {
        setting: setting.to_owned(),
        problem,
    };
    let mut addrs = Vec::new();
    let mut auth: Option<UrlAuth> = None;
    for (i, entry) in servers.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        // async-nats's own message says what is wrong without echoing the URL.
        let addr: ServerAddr = entry
            .parse()
            .map_err(|e| invalid(format!("server {}: {e}", i + 1)))?;
        let found = match (addr.username(), addr.password()) {
            (None, _) => None,
            (Some(user), Some(pass)) => Some(UrlAuth::UserPassword(
                decode(user).map_err(|p| invalid(format!("server {}: {p}", i + 1)))?,
                decode(pass).map_err(|p| invalid(format!("server {}: {p}", i + 1)))?,
            )),
            (Some(token), None) => Some(UrlAuth::Token(
                decode(token).map_err(|p| invalid(format!("server {}: {p}", i + 1)))?,
            )),
        };
        if let Some(found) = found {
            match &auth {
                Some(earlier) if *earlier != found => {
                    return Err(invalid(
                        "the servers carry different credentials; give them once".into(),
                    ))
                }
                _ => auth = Some(found),
            }
        }
        addrs.push(without_credentials(addr));
    }
    if addrs.is_empty() {
        return Err(invalid("no server address given".into()));
    }
    Ok((addrs, auth))
}

/// Percent-decodes a user name, password or token from a URL.
fn decode(part: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "the credentials are not UTF-8 once percent-decoded".to_owned())
}

/// The address with user and password removed: async-nats 0.51 does not use them (they are
/// passed as options instead), and a secret is better not kept where logs may print it.
fn without_credentials(addr: ServerAddr) -> ServerAddr {
    let mut url = addr.clone().into_inner();
    // Both fail only for URLs without a host, which `ServerAddr` does not accept.
    if url.set_username("").is_err() || url.set_password(None).is_err() {
        return addr;
    }
    ServerAddr::from_url(url).unwrap_or(addr)
}

/// Connects with `options` to the servers in `servers` (comma-separated); credentials in the
/// URLs are added to `options`, replacing a user, password or token set there.
pub(crate) async fn connect_with(
    options: ConnectOptions,
    servers: &str,
    setting: &str,
) -> Result<async_nats::Client, LockError> {
    let (addrs, auth) = parse_servers(servers, setting)?;
    let options = match auth {
        Some(UrlAuth::UserPassword(user, pass)) => options.user_and_password(user, pass),
        Some(UrlAuth::Token(token)) => options.token(token),
        None => options,
    };
    // Named in the error, credentials already taken out of the addresses.
    let servers = addrs
        .iter()
        .map(|a| a.clone().into_inner().to_string())
        .collect();
    options
        .connect(addrs)
        .await
        .map_err(|e| LockError::Unavailable {
            source: Box::new(ConnectFailed {
                servers,
                source: Box::new(e),
            }),
        })
}

/// [`connect_with`], with an event callback that records the publishes the server refuses
/// for want of permission, so that a request refused is reported as such at once (see
/// `store/denied.rs`), and whether the connection is up (`connection.rs`). The callback
/// replaces one set in `options`; it logs every other connection event at debug level, and a
/// refusal at warn level.
pub(crate) async fn connect_watching(
    options: ConnectOptions,
    servers: &str,
    setting: &str,
) -> Result<Watched, LockError> {
    let denials = Denials::default();
    let recorder = denials.clone();
    let (state, connection) = ConnectionWatch::new();
    let options = options.event_callback(move |event| {
        let (recorder, state) = (recorder.clone(), state.clone());
        async move {
            match &event {
                async_nats::Event::ServerError(async_nats::ServerError::Other(text)) => {
                    tracing::warn!(error = %text, "NATS server error");
                    recorder.record(text);
                }
                async_nats::Event::Disconnected => {
                    tracing::debug!("NATS connection lost");
                    state.set(ConnectionState::Disconnected);
                }
                async_nats::Event::Connected => {
                    tracing::debug!("NATS connected");
                    state.set(ConnectionState::Connected);
                }
                other => tracing::debug!(event = %other, "NATS connection event"),
            }
        }
    });
    Ok(Watched {
        client: connect_with(options, servers, setting).await?,
        denials,
        connection,
    })
}

/// A connection made by [`connect_watching`], with what its event callback reports.
pub(crate) struct Watched {
    /// The client.
    pub client: async_nats::Client,
    /// The publishes the server refused.
    pub denials: Denials,
    /// Whether the connection is up.
    pub connection: watch::Receiver<ConnectionState>,
}

/// Checks that the file a variable names can be read (async-nats reads TLS files only when it
/// connects, where a missing one would look like a connection failure).
fn readable(setting: &str, path: &Path) -> Result<PathBuf, LockError> {
    std::fs::File::open(path)
        .map(|_| path.to_owned())
        .map_err(|e| LockError::InvalidConnectSetting {
            setting: setting.to_owned(),
            problem: format!("{}: {e}", path.display()),
        })
}

/// Reads a user nkey seed (`SU...`) from a seed file, bare or decorated as `nsc` writes it,
/// and checks that it is a valid seed.
fn nkey_seed(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("SU"))
        .ok_or_else(|| format!("{}: no user nkey seed (a line starting SU)", path.display()))?;
    nkeys::KeyPair::from_seed(seed)
        .map_err(|e| format!("{}: not a valid nkey seed: {e}", path.display()))?;
    Ok(seed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn server_lists_and_url_credentials() {
        let (addrs, auth) = parse_servers("nats://a:4222, nats://b:4223", "url").unwrap();
        let ports: Vec<_> = addrs
            .iter()
            .map(|a| (a.host().to_owned(), a.port()))
            .collect();
        assert_eq!(ports, [("a".into(), 4222), ("b".into(), 4223)]);
        assert_eq!(auth, None);

        let (addrs, auth) = parse_servers("nats://u%40x:p%3Aw@a:1,nats://b:2", "url").unwrap();
        assert_eq!(
            auth,
            Some(UrlAuth::UserPassword("u@x".into(), "p:w".into()))
        );
        assert!(addrs.iter().all(|a| !a.has_user_pass()), "{addrs:?}");

        let (_, auth) = parse_servers("nats://s3cr3t@a:1", "url").unwrap();
        assert_eq!(auth, Some(UrlAuth::Token("s3cr3t".into())));
        // A bare host, as the CLI takes it.
        assert_eq!(parse_servers("localhost", "url").unwrap().0[0].port(), 4222);
    }

    #[test]
    fn bad_server_lists_name_their_setting() {
        for list in [
            "",
            " , ",
            "http://a:1",
            "nats://a:notaport",
            "nats://a:1,nats://b:x",
        ] {
            match parse_servers(list, "NATS_URL") {
                Err(LockError::InvalidConnectSetting { setting, .. }) => {
                    assert_eq!(setting, "NATS_URL", "{list:?}")
                }
                other => panic!("{list:?}: {other:?}"),
            }
        }
        let err = parse_servers("nats://a:pw1@h:1,nats://a:pw2@h:2", "url").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConnectSetting);
        assert!(!err.to_string().contains("pw1"), "{err}");
    }

    #[test]
    fn nkey_seed_files_bare_or_decorated() {
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("bare.nk");
        std::fs::write(&bare, format!("{seed}\n")).unwrap();
        assert_eq!(nkey_seed(&bare).unwrap(), seed);
        let decorated = dir.path().join("decorated.nk");
        std::fs::write(
            &decorated,
            format!("-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"),
        )
        .unwrap();
        assert_eq!(nkey_seed(&decorated).unwrap(), seed);
    }
}
