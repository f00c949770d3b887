//! Starting a manager from [`ConnectSettings`]: here, one layer above the connection code,
//! which knows nothing of managers.

use super::LockManager;
use crate::connect::ConnectSettings;
use crate::error::ConnectError;
use crate::settings::Config;

impl ConnectSettings {
    /// Checks the settings ([`validate`](Self::validate)), connects and starts a manager
    /// with `config`, as [`LockManager::connect_with`] does. A context's JetStream domain or
    /// API prefix is used when `config` names none.
    ///
    /// ```no_run
    /// # #[actix::main]
    /// # async fn main() -> Result<(), nlock::LockError> {
    /// let manager = nlock::ConnectSettings::from_env()
    ///     .connect(nlock::Config::default())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConnectErrorKind`](crate::ConnectErrorKind): `InvalidConnectSetting` naming the
    /// setting, before any connection is tried; then what
    /// [`LockManager::connect`] returns.
    pub async fn connect(&self, mut config: Config) -> Result<LockManager, ConnectError> {
        let (options, servers) = self.options().await?;
        if config.jetstream_api.is_none() {
            config.jetstream_api = self.jetstream_api().cloned();
        }
        LockManager::connect_with(options, &servers, config).await
    }
}
