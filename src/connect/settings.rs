//! [`ConnectSettings`]: where and how to connect, from a builder, the `nats` CLI's
//! environment variables or one of its contexts, checked before any connection is tried.

use std::fmt;
use std::path::{Path, PathBuf};

use super::context;
use crate::error::{ConnectError, LockError};
use crate::settings::JetStreamApi;

/// A value, and what an error calls its setting: `NATS_CREDS` when it came from the
/// environment, `creds in context "prod"` from a context, the builder method's name
/// (`creds_file`) when set in code.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Named<T> {
    pub(super) value: T,
    pub(super) setting: String,
}

fn named<T>(value: T, setting: impl Into<String>) -> Option<Named<T>> {
    Some(Named {
        value,
        setting: setting.into(),
    })
}

/// Where and how to connect to NATS, as the `nats` CLI reads it: servers, a user and
/// password or a token, a credentials file, an nkey seed file, TLS files.
///
/// Built from the environment ([`from_env`](Self::from_env)), a `nats` CLI context
/// ([`from_context`](Self::from_context)), both as the `nats` CLI layers them
/// ([`from_nats_cli`](Self::from_nats_cli)), or in code; each setter replaces one field, and
/// [`or`](Self::or) fills what is unset from another source, so flags can override the
/// environment, which overrides a context. Nothing is read or checked until
/// [`connect`](Self::connect) (or [`validate`](Self::validate)): then every setting is checked
/// before a connection is tried, and one that cannot be used is
/// [`LockError::InvalidConnectSetting`] naming where it came from (`NATS_NKEY`,
/// `creds in context "prod"`, or the setter's name, `nkey_file`).
///
/// `Debug` shows no password or token.
///
/// ```no_run
/// # #[actix::main]
/// # async fn main() -> Result<(), nlock::LockError> {
/// let manager = nlock::ConnectSettings::new()
///     .servers("tls://nats-1.internal:4222,tls://nats-2.internal:4222")
///     .creds_file("/etc/nats/locks.creds")
///     .tls_ca("/etc/nats/ca.pem")
///     .connect(nlock::Config::default())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ConnectSettings {
    pub(super) servers: Option<Named<String>>,
    pub(super) user: Option<Named<String>>,
    pub(super) password: Option<Named<String>>,
    pub(super) token: Option<Named<String>>,
    pub(super) creds: Option<Named<PathBuf>>,
    pub(super) nkey: Option<Named<PathBuf>>,
    pub(super) tls_ca: Option<Named<PathBuf>>,
    pub(super) tls_cert: Option<Named<PathBuf>>,
    pub(super) tls_key: Option<Named<PathBuf>>,
    /// The connection's name, shown by the server (`nats server report connections`).
    pub(super) name: Option<String>,
    /// The `nats` CLI context these came from, if any: for telling a person.
    pub(super) context: Option<String>,
    /// A context's JetStream domain or API prefix, used when the config names none.
    pub(super) jetstream_api: Option<JetStreamApi>,
}

impl ConnectSettings {
    /// No settings: [`connect`](Self::connect) would go to `nats://127.0.0.1:4222` without
    /// credentials. Set what is needed with the other methods.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().servers("nats://10.0.0.1:4222");
    /// ```
    pub fn new() -> ConnectSettings {
        ConnectSettings::default()
    }

    /// The `nats` CLI's environment variables: `NATS_URL`, `NATS_USER` and `NATS_PASSWORD`,
    /// `NATS_TOKEN`, `NATS_CREDS` (a credentials file), `NATS_NKEY` (a user nkey seed file),
    /// `NATS_CA`, `NATS_CERT` and `NATS_KEY` (TLS files). Empty counts as unset. Errors name
    /// the variable.
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), nlock::LockError> {
    /// // NATS_URL, unless a flag gave one.
    /// # let flag: Option<String> = None;
    /// let mut settings = nlock::ConnectSettings::from_env();
    /// if let Some(servers) = flag {
    ///     settings = settings.servers(servers);
    /// }
    /// let manager = settings.connect(nlock::Config::default()).await?;
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> ConnectSettings {
        ConnectSettings::from_vars(&|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with `var` as the environment (a map in tests).
    pub(crate) fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> ConnectSettings {
        let var = |name: &'static str| {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .map(|value| Named {
                    value,
                    setting: name.to_owned(),
                })
        };
        let path = |name: &'static str| {
            var(name).map(|n| Named {
                value: PathBuf::from(n.value),
                setting: n.setting,
            })
        };
        ConnectSettings {
            servers: var("NATS_URL"),
            user: var("NATS_USER"),
            password: var("NATS_PASSWORD"),
            token: var("NATS_TOKEN"),
            creds: path("NATS_CREDS"),
            nkey: path("NATS_NKEY"),
            tls_ca: path("NATS_CA"),
            tls_cert: path("NATS_CERT"),
            tls_key: path("NATS_KEY"),
            ..ConnectSettings::default()
        }
    }

    /// The `nats` CLI context `name`: `$XDG_CONFIG_HOME/nats/context/NAME.json`
    /// (`~/.config` when `XDG_CONFIG_HOME` is unset), as `nats context save` writes it. nlock
    /// reads its `url`, `user`, `password`, `token`, `creds`, `nkey`, `ca`, `cert`, `key`
    /// (paths may start with `~/`), `jetstream_domain` and `jetstream_api_prefix`; the rest
    /// is ignored. A context that cannot be read is [`LockError::InvalidConnectSetting`] for
    /// the setting `context`; a bad value in it names the field and the context
    /// (`creds in context "prod"`).
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), nlock::LockError> {
    /// let manager = nlock::ConnectSettings::from_context("prod")?
    ///     .connect(nlock::Config::default())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConnectErrorKind::InvalidConnectSetting`](crate::ConnectErrorKind::InvalidConnectSetting)
    /// only: for `context` when the context cannot be read, else naming the bad field.
    pub fn from_context(name: &str) -> Result<ConnectSettings, ConnectError> {
        Ok(context::named(name, "context", &|n| std::env::var(n).ok())?)
    }

    /// A context file at `path` (the format of [`from_context`](Self::from_context)),
    /// wherever it is. Its errors name the file.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), nlock::LockError> {
    /// let settings = nlock::ConnectSettings::from_context_file("/etc/nlock/nats-context.json")?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConnectErrorKind::InvalidConnectSetting`](crate::ConnectErrorKind::InvalidConnectSetting)
    /// only, naming the file or the bad field in it.
    pub fn from_context_file(path: impl AsRef<Path>) -> Result<ConnectSettings, ConnectError> {
        Ok(context::file(path.as_ref(), &|n| std::env::var(n).ok())?)
    }

    /// What the `nats` CLI connects with: its environment variables
    /// ([`from_env`](Self::from_env)) over a context ([`from_context`](Self::from_context)):
    /// `context` if given, else the one `NATS_CONTEXT` names, else the one selected with
    /// `nats context select` (named in `nats/context.txt`), else none. A variable overrides
    /// the context's value of the same setting.
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), nlock::LockError> {
    /// // What `nats` would use, with the server from a flag on top.
    /// let manager = nlock::ConnectSettings::new()
    ///     .servers("nats://10.0.0.1:4222")
    ///     .or(nlock::ConnectSettings::from_nats_cli(None)?)
    ///     .connect(nlock::Config::default())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConnectErrorKind::InvalidConnectSetting`](crate::ConnectErrorKind::InvalidConnectSetting)
    /// only: a context (named, or selected) that cannot be read, or a bad field in it.
    pub fn from_nats_cli(context: Option<&str>) -> Result<ConnectSettings, ConnectError> {
        Ok(ConnectSettings::nats_cli_from(context, &|n| {
            std::env::var(n).ok()
        })?)
    }

    /// [`from_nats_cli`](Self::from_nats_cli) with `var` as the environment.
    pub(crate) fn nats_cli_from(
        context: Option<&str>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnectSettings, LockError> {
        let from_context = match context {
            Some(name) => context::named(name, "context", var)?,
            None => context::selected(var)?.unwrap_or_default(),
        };
        Ok(ConnectSettings::from_vars(var).or(from_context))
    }

    /// These settings, with each one unset here taken from `base`: `flags.or(env)` lets
    /// flags override variables, field by field (a user from `self` and a password from
    /// `base` go together).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), nlock::LockError> {
    /// let settings = nlock::ConnectSettings::new()
    ///     .creds_file("/run/secrets/locks.creds")
    ///     .or(nlock::ConnectSettings::from_env());
    /// # Ok(()) }
    /// ```
    pub fn or(self, base: ConnectSettings) -> ConnectSettings {
        ConnectSettings {
            servers: self.servers.or(base.servers),
            user: self.user.or(base.user),
            password: self.password.or(base.password),
            token: self.token.or(base.token),
            creds: self.creds.or(base.creds),
            nkey: self.nkey.or(base.nkey),
            tls_ca: self.tls_ca.or(base.tls_ca),
            tls_cert: self.tls_cert.or(base.tls_cert),
            tls_key: self.tls_key.or(base.tls_key),
            name: self.name.or(base.name),
            context: self.context.or(base.context),
            jetstream_api: self.jetstream_api.or(base.jetstream_api),
        }
    }

    /// The servers: one URL or a comma-separated list, as for
    /// [`LockManager::connect`](crate::LockManager::connect) (credentials may be in the
    /// URLs). Errors call it `servers`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().servers("nats://a:4222,nats://b:4222");
    /// ```
    pub fn servers(mut self, servers: impl Into<String>) -> ConnectSettings {
        self.servers = named(servers.into(), "servers");
        self
    }

    /// A user name, with [`password`](Self::password); alone it is a token, as with the
    /// `nats` CLI's `--user`. Errors call it `user`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().user("locks").password("s3cret");
    /// ```
    pub fn user(mut self, user: impl Into<String>) -> ConnectSettings {
        self.user = named(user.into(), "user");
        self
    }

    /// The user's password; without a [`user`](Self::user) it is refused. Errors call it
    /// `password`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().user("locks").password("s3cret");
    /// ```
    pub fn password(mut self, password: impl Into<String>) -> ConnectSettings {
        self.password = named(password.into(), "password");
        self
    }

    /// An authentication token. Errors call it `token`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().token("t0ken");
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> ConnectSettings {
        self.token = named(token.into(), "token");
        self
    }

    /// A credentials file (a user JWT and its nkey seed, as `nsc` writes it). Errors call it
    /// `creds_file`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().creds_file("/etc/nats/locks.creds");
    /// ```
    pub fn creds_file(mut self, path: impl Into<PathBuf>) -> ConnectSettings {
        self.creds = named(path.into(), "creds_file");
        self
    }

    /// A user nkey seed file (a line starting `SU`, bare or as `nsc` writes it); the seed is
    /// checked before connecting. Errors call it `nkey_file`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().nkey_file("/etc/nats/locks.nk");
    /// ```
    pub fn nkey_file(mut self, path: impl Into<PathBuf>) -> ConnectSettings {
        self.nkey = named(path.into(), "nkey_file");
        self
    }

    /// A CA certificate (PEM) to verify the servers with, besides the system's roots. Errors
    /// call it `tls_ca`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new().tls_ca("/etc/nats/ca.pem");
    /// ```
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> ConnectSettings {
        self.tls_ca = named(path.into(), "tls_ca");
        self
    }

    /// A client certificate (PEM), with its [`tls_key`](Self::tls_key): one without the
    /// other is refused. Errors call it `tls_cert`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new()
    ///     .tls_cert("/etc/nats/client.pem")
    ///     .tls_key("/etc/nats/client-key.pem");
    /// ```
    pub fn tls_cert(mut self, path: impl Into<PathBuf>) -> ConnectSettings {
        self.tls_cert = named(path.into(), "tls_cert");
        self
    }

    /// The client certificate's key (PEM), with [`tls_cert`](Self::tls_cert). Errors call it
    /// `tls_key`.
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::new()
    ///     .tls_cert("/etc/nats/client.pem")
    ///     .tls_key("/etc/nats/client-key.pem");
    /// ```
    pub fn tls_key(mut self, path: impl Into<PathBuf>) -> ConnectSettings {
        self.tls_key = named(path.into(), "tls_key");
        self
    }

    /// The connection's name, as the server shows it (`nats server report connections`).
    ///
    /// ```no_run
    /// let settings = nlock::ConnectSettings::from_env().name("billing-locks");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> ConnectSettings {
        self.name = Some(name.into());
        self
    }

    /// The `nats` CLI context these settings were read from, if any.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), nlock::LockError> {
    /// let settings = nlock::ConnectSettings::from_nats_cli(None)?;
    /// if let Some(name) = settings.context() {
    ///     println!("using the nats context {name}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The JetStream domain or API prefix a context names (its `jetstream_domain`, else its
    /// `jetstream_api_prefix`). [`connect`](Self::connect) uses it unless the
    /// [`Config`](crate::Config) names one.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), nlock::LockError> {
    /// let settings = nlock::ConnectSettings::from_context("leaf")?;
    /// println!("{:?}", settings.jetstream_api());
    /// # Ok(()) }
    /// ```
    pub fn jetstream_api(&self) -> Option<&JetStreamApi> {
        self.jetstream_api.as_ref()
    }

    /// For `context.rs`: settings read from a context file, each named by `setting(field)`.
    pub(super) fn from_context_fields(
        fields: context::Fields,
        context_name: String,
        setting: impl Fn(&str) -> String,
    ) -> ConnectSettings {
        let text = |value: String, field: &str| {
            Some(value)
                .filter(|v| !v.is_empty())
                .and_then(|v| named(v, setting(field)))
        };
        let path =
            |value: Option<PathBuf>, field: &str| value.and_then(|p| named(p, setting(field)));
        ConnectSettings {
            servers: text(fields.url, "url"),
            user: text(fields.user, "user"),
            password: text(fields.password, "password"),
            token: text(fields.token, "token"),
            creds: path(fields.creds, "creds"),
            nkey: path(fields.nkey, "nkey"),
            tls_ca: path(fields.ca, "ca"),
            tls_cert: path(fields.cert, "cert"),
            tls_key: path(fields.key, "key"),
            name: None,
            context: Some(context_name),
            jetstream_api: fields.jetstream_api,
        }
    }
}

impl fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// A secret: whether it is set, and where from, never its value.
        fn secret(s: &Option<Named<String>>) -> Option<String> {
            s.as_ref().map(|n| format!("<set by {}>", n.setting))
        }
        fn path(p: &Option<Named<PathBuf>>) -> Option<&Path> {
            p.as_ref().map(|n| n.value.as_path())
        }
        // Server URLs may carry credentials: only which setting gave them.
        let servers = self.servers.as_ref().map(|s| match s.value.contains('@') {
            true => format!("<with credentials, set by {}>", s.setting),
            false => s.value.clone(),
        });
        f.debug_struct("ConnectSettings")
            .field("servers", &servers)
            .field("user", &self.user.as_ref().map(|u| &u.value))
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .field("creds_file", &path(&self.creds))
            .field("nkey_file", &path(&self.nkey))
            .field("tls_ca", &path(&self.tls_ca))
            .field("tls_cert", &path(&self.tls_cert))
            .field("tls_key", &path(&self.tls_key))
            .field("name", &self.name)
            .field("context", &self.context)
            .field("jetstream_api", &self.jetstream_api)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secrets() {
        let s = ConnectSettings::new()
            .servers("nats://u:hunter2@a:4222")
            .user("u")
            .password("hunter2")
            .token("t0psecret");
        let text = format!("{s:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("t0psecret"),
            "{text}"
        );
        assert!(text.contains("<set by password>"), "{text}");
    }
}
