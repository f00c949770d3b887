//! The connection failure's own error: which servers were tried, and what the client said.

/// The source of a [`LockError::Unavailable`](crate::LockError::Unavailable) when the first
/// connection could not be made: names the servers tried (without credentials), so that
/// "connection refused" says where.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {}: {source}", .servers.join(", "))]
pub struct ConnectFailed {
    /// The server URLs tried, in the order given, credentials removed.
    pub servers: Vec<String>,
    /// The client's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}
