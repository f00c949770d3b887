//! The connection failure's own error: which servers were tried, and what the client said.

/// The source of a [`LockError::Unavailable`](crate::LockError::Unavailable) when the first
/// connection could not be made: names the servers tried (without credentials), so that
/// "connection refused" says where.
///
/// ```no_run
/// use std::error::Error as _;
/// # async fn f() {
/// let result = nlock::LockManager::connect("nats://127.0.0.1:1", nlock::Config::default()).await;
/// if let Err(e) = result {
///     if let Some(failed) = e.source().and_then(|s| s.downcast_ref::<nlock::ConnectFailed>()) {
///         eprintln!("tried {:?}", failed.servers);
///     }
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {}: {source}", .servers.join(", "))]
pub struct ConnectFailed {
    /// The server URLs tried, in the order given, credentials removed.
    pub servers: Vec<String>,
    /// The client's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}
