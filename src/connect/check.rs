//! Turning [`ConnectSettings`] into a connection: every setting checked, files read, before
//! any connection is tried; then the connection itself.

use async_nats::ConnectOptions;

use super::{nkey_seed, parse_servers, readable, ConnectSettings, DEFAULT_URL};
use crate::error::{ConnectError, LockError};

impl ConnectSettings {
    /// Checks every setting as [`connect`](Self::connect) does, without connecting: the
    /// server list parses, a password has a user, a client certificate has its key, and the
    /// files named can be read (a credentials file and an nkey seed are parsed too). The
    /// first problem is [`ConnectErrorKind::InvalidConnectSetting`](crate::ConnectErrorKind) naming
    /// the setting.
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() {
    /// if let Err(e) = nlock::ConnectSettings::from_env().validate().await {
    ///     eprintln!("{e}"); // e.g. "cannot use NATS_CREDS: /etc/x.creds: No such file ..."
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ConnectErrorKind::InvalidConnectSetting`](crate::ConnectErrorKind::InvalidConnectSetting)
    /// only, naming the setting.
    pub async fn validate(&self) -> Result<(), ConnectError> {
        self.options().await.map(drop).map_err(ConnectError::from)
    }

    /// The servers and async-nats options, every setting checked; files are read here so
    /// that a bad one is named before connecting (async-nats reads TLS files only then).
    pub(crate) async fn options(&self) -> Result<(ConnectOptions, String), LockError> {
        let bad = |setting: &str, problem: String| LockError::InvalidConnectSetting {
            setting: setting.to_owned(),
            problem,
        };
        let servers = match &self.servers {
            Some(s) => {
                parse_servers(&s.value, &s.setting)?;
                s.value.clone()
            }
            None => DEFAULT_URL.to_owned(),
        };
        let mut options = ConnectOptions::new();
        if let Some(name) = &self.name {
            options = options.name(name.clone());
        }
        match (&self.user, &self.password) {
            (Some(user), Some(pass)) => {
                options = options.user_and_password(user.value.clone(), pass.value.clone())
            }
            // As with the `nats` CLI's --user: a user without a password is a token.
            (Some(token), None) => options = options.token(token.value.clone()),
            (None, Some(pass)) => return Err(bad(&pass.setting, "set without a user".into())),
            (None, None) => {}
        }
        if let Some(token) = &self.token {
            options = options.token(token.value.clone());
        }
        if let Some(creds) = &self.creds {
            let path = readable(&creds.setting, &creds.value)?;
            options = options
                .credentials_file(&path)
                .await
                .map_err(|e| bad(&creds.setting, format!("{}: {e}", path.display())))?;
        }
        if let Some(nkey) = &self.nkey {
            let seed = nkey_seed(&nkey.value).map_err(|p| bad(&nkey.setting, p))?;
            options = options.nkey(seed);
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(readable(&ca.setting, &ca.value)?);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let cert = readable(&cert.setting, &cert.value)?;
                let key = readable(&key.setting, &key.value)?;
                options = options.add_client_certificate(cert, key);
            }
            (Some(cert), None) => {
                return Err(bad(
                    &cert.setting,
                    "a client certificate without its key".into(),
                ))
            }
            (None, Some(key)) => {
                return Err(bad(
                    &key.setting,
                    "a client key without its certificate".into(),
                ))
            }
            (None, None) => {}
        }
        Ok((options, servers))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    async fn env_error(pairs: &[(&str, &str)]) -> Option<String> {
        match ConnectSettings::from_vars(&vars(pairs))
            .validate()
            .await
            .map_err(LockError::from)
        {
            Ok(()) => None,
            Err(LockError::InvalidConnectSetting { setting, .. }) => Some(setting),
            Err(other) => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn unusable_variables_are_named_before_connecting() {
        let missing = "/nonexistent/nlock-test/file";
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a seed\n").unwrap();
        let junk = junk.to_str().unwrap();
        // A line that looks like a seed but is not one.
        let fake = dir.path().join("fake.nk");
        std::fs::write(&fake, "SUAFAKESEED\n").unwrap();
        let fake = fake.to_str().unwrap();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("NATS_URL", "nats://a:x")], "NATS_URL"),
            (&[("NATS_PASSWORD", "pw")], "NATS_PASSWORD"),
            (&[("NATS_CREDS", missing)], "NATS_CREDS"),
            (&[("NATS_CREDS", junk)], "NATS_CREDS"),
            (&[("NATS_NKEY", missing)], "NATS_NKEY"),
            (&[("NATS_NKEY", junk)], "NATS_NKEY"),
            (&[("NATS_NKEY", fake)], "NATS_NKEY"),
            (&[("NATS_CA", missing)], "NATS_CA"),
            (&[("NATS_CERT", junk)], "NATS_CERT"),
            (&[("NATS_KEY", junk)], "NATS_KEY"),
            (&[("NATS_CERT", missing), ("NATS_KEY", junk)], "NATS_CERT"),
        ];
        for (pairs, want) in cases {
            assert_eq!(env_error(pairs).await.as_deref(), Some(*want), "{pairs:?}");
        }
        // Unset and empty are the same; nothing set is the default server.
        assert_eq!(env_error(&[("NATS_CREDS", "")]).await, None);
        let (_, servers) = ConnectSettings::from_vars(&|_| None)
            .options()
            .await
            .unwrap();
        assert_eq!(servers, DEFAULT_URL);
    }

    #[tokio::test]
    async fn setters_name_their_setting_and_override_the_base() {
        let err = |s: ConnectSettings| async move {
            match s.validate().await.map_err(LockError::from) {
                Err(LockError::InvalidConnectSetting { setting, .. }) => setting,
                other => panic!("{other:?}"),
            }
        };
        let env = ConnectSettings::from_vars(&vars(&[("NATS_NKEY", "/nonexistent/env.nk")]));
        assert_eq!(err(env.clone()).await, "NATS_NKEY");
        let flag = ConnectSettings::new().nkey_file("/nonexistent/flag.nk");
        assert_eq!(err(flag.or(env.clone())).await, "nkey_file");
        assert_eq!(err(ConnectSettings::new().or(env)).await, "NATS_NKEY");
        assert_eq!(err(ConnectSettings::new().password("p")).await, "password");
        assert_eq!(err(ConnectSettings::new().tls_key("/k")).await, "tls_key");
        assert_eq!(
            err(ConnectSettings::new().servers("a:b:c")).await,
            "servers"
        );
    }
}
