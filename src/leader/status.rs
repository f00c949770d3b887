//! Where a candidate stands: [`ElectorStatus`], and what the campaign publishes for the
//! [`Elector`](super::Elector) handle to read.

use crate::lock::lease::Lease;

/// Where a candidate stands.
///
/// ```no_run
/// # async fn f(elector: nlock::Elector) {
/// let status = elector.wait_for(|s| *s != nlock::ElectorStatus::Campaigning).await;
/// if let nlock::ElectorStatus::Leading { token } = status {
///     println!("leading with token {token}");
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ElectorStatus {
    /// Waiting for the key (a queued acquire that wakes when the key is free).
    Campaigning,
    /// Holding the key with this token: in the lock-delay, or running the role.
    Leading {
        /// The term's fencing token.
        token: u64,
    },
    /// The term `token` is ending: lost, its lease deadline passed, or handed over (a
    /// resign, a step-down, a shutdown); its role is being stopped. Not leading any more,
    /// although the key may still be held (refreshed) until the role has stopped.
    Ending {
        /// The ending term's fencing token.
        token: u64,
    },
    /// Not campaigning for a while: after a resign, a lost term or a failed attempt.
    HoldingOff,
    /// The campaign ended (shut down, the manager gone, or a bad key).
    Stopped,
}

/// What the campaign publishes: its status, and while leading the term's lease, so that
/// `Leading` is reported only while that lease is held.
#[derive(Debug, Clone)]
pub(crate) struct Standing {
    pub(crate) status: ElectorStatus,
    pub(crate) lease: Option<Lease>,
}

impl Standing {
    /// The status as callers see it: a term whose lease is no longer held (lost, or its
    /// deadline passed before the campaign noticed) is `Ending`, not `Leading`.
    pub(crate) fn effective(&self) -> ElectorStatus {
        match (self.status, &self.lease) {
            (ElectorStatus::Leading { token }, Some(lease)) if !lease.is_held() => {
                ElectorStatus::Ending { token }
            }
            (status, _) => status,
        }
    }
}
