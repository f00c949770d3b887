//! Whether the manager's NATS connection is up, as its event callback sees it: for telling a
//! person (`nlock watch` says when it drops and comes back), never for deciding who holds a
//! lock (leases do); and where on the connection the JetStream API is reached
//! ([`JetStreamApi`]).

use tokio::sync::watch;

/// The state of the manager's NATS connection.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) {
/// if let Some(state) = m.connection_state() {
///     if *state.borrow() == nlock::ConnectionState::Disconnected {
///         eprintln!("NATS is down: what you see may be stale");
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected (at first, and again after each reconnect).
    Connected,
    /// The connection dropped; the client is reconnecting.
    Disconnected,
}

/// The sending side, held by the connection's event callback.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionWatch {
    tx: watch::Sender<ConnectionState>,
}

impl ConnectionWatch {
    /// A watch starting as connected (it is made for a connection being opened; until the
    /// opening succeeds nobody reads it).
    pub(crate) fn new() -> (ConnectionWatch, watch::Receiver<ConnectionState>) {
        let (tx, rx) = watch::channel(ConnectionState::Connected);
        (ConnectionWatch { tx }, rx)
    }

    /// Records a new state; readers wake only on a change.
    pub(crate) fn set(&self, state: ConnectionState) {
        self.tx.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }
}

/// Which JetStream API a manager talks to, when not the account's default `$JS.API`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JetStreamApi {
    /// A JetStream domain (`$JS.<domain>.API`), e.g. a leaf node's or a hub's.
    Domain(String),
    /// A full API prefix, e.g. one imported from another account.
    Prefix(String),
}
