//! Whether the manager's NATS connection is up, as its event callback sees it: for telling a
//! person (`nlock watch` says when it drops and comes back), never for deciding who holds a
//! lock (leases do).

use tokio::sync::watch;

/// The state of the manager's NATS connection.
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

impl crate::client::LockManager {
    /// Whether this manager's NATS connection is up, and each change from now on: `None` for a
    /// manager started on a client connected elsewhere ([`start`](Self::start)), whose events
    /// nlock cannot see. For telling a person that what they watch may be stale; a lock's
    /// lease, not this, says whether it is held.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// if let Some(mut state) = m.connection_state() {
    ///     while state.changed().await.is_ok() {
    ///         println!("NATS: {:?}", *state.borrow_and_update());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn connection_state(&self) -> Option<tokio::sync::watch::Receiver<ConnectionState>> {
        self.connection.clone()
    }
}
