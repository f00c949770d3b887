//! The `nats` CLI's saved contexts: `$XDG_CONFIG_HOME/nats/context/NAME.json` (`~/.config`
//! when `XDG_CONFIG_HOME` is unset), the selected one named in `nats/context.txt`.
//!
//! Every function takes the environment as `var`, so that tests need not change the
//! process's own.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConnectSettings;
use crate::error::LockError;
use crate::settings::{Config, JetStreamApi};

/// The fields nlock reads from a context file; the others are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContextFile {
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

/// A context file's settings, paths expanded and the JetStream API checked.
pub(super) struct Fields {
    pub url: String,
    pub user: String,
    pub password: String,
    pub token: String,
    pub creds: Option<PathBuf>,
    pub nkey: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub jetstream_api: Option<JetStreamApi>,
}

fn invalid(setting: &str, problem: String) -> LockError {
    LockError::InvalidConnectSetting {
        setting: setting.to_owned(),
        problem,
    }
}

/// The `nats` CLI's configuration directory: `$XDG_CONFIG_HOME/nats`, else `~/.config/nats`.
fn config_dir(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |name| var(name).filter(|v| !v.is_empty());
    let base = match non_empty("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(non_empty("HOME")?).join(".config"),
    };
    Some(base.join("nats"))
}

/// The context `NATS_CONTEXT` names, else the one `nats context select` left in
/// `context.txt`; `None` when neither names one.
pub(super) fn selected(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ConnectSettings>, LockError> {
    if let Some(name) = var("NATS_CONTEXT").filter(|v| !v.trim().is_empty()) {
        return named(name.trim(), "NATS_CONTEXT", var).map(Some);
    }
    let Some(dir) = config_dir(var) else {
        return Ok(None);
    };
    let txt = dir.join("context.txt");
    // No file: nothing selected, as with `nats`.
    let Ok(text) = std::fs::read_to_string(&txt) else {
        return Ok(None);
    };
    match text.trim() {
        "" => Ok(None),
        name => named(name, &txt.display().to_string(), var).map(Some),
    }
}

/// The context `name`; `setting` is what errors call the choice of it (`context`,
/// `NATS_CONTEXT`, the `context.txt` path).
pub(super) fn named(
    name: &str,
    setting: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnectSettings, LockError> {
    // A name is a file name in the context directory, never a path out of it.
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(invalid(setting, format!("invalid context name {name:?}")));
    }
    let Some(dir) = config_dir(var) else {
        return Err(invalid(
            setting,
            "cannot find the nats configuration: set HOME or XDG_CONFIG_HOME".into(),
        ));
    };
    let path = dir.join("context").join(format!("{name}.json"));
    let file = read(&path).map_err(|p| invalid(setting, format!("context {name:?}: {p}")))?;
    let label = format!("context {name:?}");
    let fields = fields(file, var, &label)?;
    Ok(ConnectSettings::from_context_fields(
        fields,
        name.to_owned(),
        |field| format!("{field} in {label}"),
    ))
}

/// A context file anywhere; errors name its path.
pub(super) fn file(
    path: &Path,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnectSettings, LockError> {
    let label = path.display().to_string();
    let file = read(path).map_err(|p| invalid("context file", p))?;
    let fields = fields(file, var, &label)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| label.clone());
    Ok(ConnectSettings::from_context_fields(
        fields,
        name,
        |field| format!("{field} in {label}"),
    ))
}

/// Reads and parses a context file.
fn read(path: &Path) -> Result<ContextFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Expands the paths (`~/` as the `nats` CLI does) and checks the JetStream API.
fn fields(
    file: ContextFile,
    var: &dyn Fn(&str) -> Option<String>,
    label: &str,
) -> Result<Fields, LockError> {
    let home = var("HOME").filter(|h| !h.is_empty());
    let path = |value: String| -> Option<PathBuf> {
        if value.is_empty() {
            return None;
        }
        match (value.strip_prefix("~/"), &home) {
            (Some(rest), Some(home)) => Some(Path::new(home).join(rest)),
            _ => Some(PathBuf::from(value)),
        }
    };
    // Checked with the config's own rule, so that a bad one names the context's field.
    let api = |setting: &str, api: JetStreamApi| {
        let builder = match &api {
            JetStreamApi::Domain(d) => Config::builder().jetstream_domain(d.clone()),
            JetStreamApi::Prefix(p) => Config::builder().jetstream_api_prefix(p.clone()),
        };
        builder
            .build()
            .map(|_| api)
            .map_err(|e| invalid(&format!("{setting} in {label}"), e.to_string()))
    };
    let jetstream_api = match (file.jetstream_domain, file.jetstream_api_prefix) {
        (domain, _) if !domain.is_empty() => {
            Some(api("jetstream_domain", JetStreamApi::Domain(domain))?)
        }
        (_, prefix) if !prefix.is_empty() => {
            Some(api("jetstream_api_prefix", JetStreamApi::Prefix(prefix))?)
        }
        _ => None,
    };
    Ok(Fields {
        url: file.url,
        user: file.user,
        password: file.password,
        token: file.token,
        creds: path(file.creds),
        nkey: path(file.nkey),
        ca: path(file.ca),
        cert: path(file.cert),
        key: path(file.key),
        jetstream_api,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A nats configuration in a temporary directory, and an environment pointing at it.
    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Home {
            let home = Home {
                dir: tempfile::tempdir().unwrap(),
            };
            std::fs::create_dir_all(home.dir.path().join("xdg/nats/context")).unwrap();
            home
        }
        fn context(&self, name: &str, body: serde_json::Value) {
            let path = self
                .dir
                .path()
                .join(format!("xdg/nats/context/{name}.json"));
            std::fs::write(path, body.to_string()).unwrap();
        }
        fn select(&self, name: &str) {
            std::fs::write(self.dir.path().join("xdg/nats/context.txt"), name).unwrap();
        }
        fn var<'a>(
            &'a self,
            extra: &'a [(&'a str, &'a str)],
        ) -> impl Fn(&str) -> Option<String> + 'a {
            move |name| match name {
                "XDG_CONFIG_HOME" => Some(self.dir.path().join("xdg").display().to_string()),
                "HOME" => Some(self.dir.path().display().to_string()),
                _ => extra
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string()),
            }
        }
    }

    fn setting_of(e: impl Into<LockError>) -> String {
        match e.into() {
            LockError::InvalidConnectSetting { setting, .. } => setting,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_selected_context_and_precedence() {
        let home = Home::new();
        home.context(
            "one",
            serde_json::json!({ "url": "nats://one:4222", "nkey": "~/one.nk",
                                "jetstream_domain": "hub", "description": "ignored" }),
        );
        home.context("two", serde_json::json!({ "url": "nats://two:4222" }));
        let var = home.var(&[]);
        // Nothing selected: no context.
        let none = ConnectSettings::nats_cli_from(None, &var).unwrap();
        assert_eq!(none.context(), None);
        home.select("one\n");
        let one = ConnectSettings::nats_cli_from(None, &var).unwrap();
        assert_eq!(one.context(), Some("one"));
        assert_eq!(
            one.jetstream_api(),
            Some(&JetStreamApi::Domain("hub".into()))
        );
        // `~/` is the home directory; a missing file names the context's field.
        let err = setting_of(one.validate().await.unwrap_err());
        assert_eq!(err, "nkey in context \"one\"");
        // NATS_CONTEXT beats context.txt, a named context beats both.
        let by_env = home.var(&[("NATS_CONTEXT", "two")]);
        let two = ConnectSettings::nats_cli_from(None, &by_env).unwrap();
        assert_eq!(two.context(), Some("two"));
        let named = ConnectSettings::nats_cli_from(Some("two"), &var).unwrap();
        assert_eq!(named.context(), Some("two"));
        // A variable beats the context's value: NATS_NKEY is the one checked now.
        let env_over = home.var(&[("NATS_NKEY", "/nonexistent/env.nk")]);
        let s = ConnectSettings::nats_cli_from(None, &env_over).unwrap();
        assert_eq!(setting_of(s.validate().await.unwrap_err()), "NATS_NKEY");
    }

    #[test]
    fn unusable_contexts_are_named() {
        let home = Home::new();
        let var = home.var(&[]);
        let missing = ConnectSettings::nats_cli_from(Some("three"), &var).unwrap_err();
        assert!(missing.to_string().contains("three"), "{missing}");
        assert_eq!(setting_of(missing), "context");
        for bad in ["../x", ".hidden", ""] {
            let e = ConnectSettings::nats_cli_from(Some(bad), &var).unwrap_err();
            assert_eq!(setting_of(e), "context", "{bad:?}");
        }
        let by_env = home.var(&[("NATS_CONTEXT", "nope")]);
        let e = ConnectSettings::nats_cli_from(None, &by_env).unwrap_err();
        assert_eq!(setting_of(e), "NATS_CONTEXT");
        home.select("gone");
        let e = ConnectSettings::nats_cli_from(None, &var).unwrap_err();
        assert!(setting_of(e).ends_with("context.txt"));
        home.context("bad", serde_json::json!({ "jetstream_domain": "a.b" }));
        let e = ConnectSettings::nats_cli_from(Some("bad"), &var).unwrap_err();
        assert_eq!(setting_of(e), "jetstream_domain in context \"bad\"");
        std::fs::write(home.dir.path().join("xdg/nats/context/junk.json"), "{").unwrap();
        let e = ConnectSettings::nats_cli_from(Some("junk"), &var).unwrap_err();
        assert_eq!(setting_of(e), "context");
    }
}
