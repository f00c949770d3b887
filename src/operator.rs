//! What an operator does to locks it does not hold: [`LockManager::force_release`] breaks a
//! stuck lock with a compare-and-set delete on the revision it read, never a blind delete.

use crate::client::LockManager;
use crate::error::{LockError, ReleaseError};
use crate::holder::Holder;
use crate::observe::{key_holder, KeyHolder};
use crate::store::{Change, ChangeOp, End, Op, WriteError};

/// How many times a break reads the key again after its delete lost a race with the
/// holder's own refresh (same tenure, new revision). A holder refreshes every TTL/factor, so
/// a second attempt almost always lands; a few more cover a holder whose refreshes are
/// retried back to back. A new tenure is never retried: it is a different lock.
const FORCE_ATTEMPTS: usize = 5;

impl LockManager {
    /// Breaks the lock on `key`, held by any process: an operator's tool for a stuck lock
    /// (the `nlock release --force` command line). The holder is told
    /// [`LossReason::Deleted`](crate::LossReason) within milliseconds (its manager follows the
    /// bucket's changes), and [`events`](LockManager::events) report `Deleted`. Returns who was
    /// broken.
    ///
    /// It is a compare-and-set, never a blind delete: the key is read and the delete expects
    /// that revision. When the holder refreshed in between (the same tenure, a newer revision)
    /// it reads and tries again, a few times. It never deletes another tenure than the one
    /// first read, or than `token` when given.
    ///
    /// # Errors
    /// [`ReleaseErrorKind`](crate::ReleaseErrorKind): `TokenMismatch` for a key held with
    /// another token, `NotHeld` for a free key, `InvalidKey` before anything is sent,
    /// `OutcomeUnknown` for a delete whose answer did not come (read the key again to know),
    /// `Unavailable`, `Rejected`, `PermissionDenied` from NATS.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// // Break tenure 42 of the key, and only that one.
    /// let broken = m.force_release("billing.close-day", Some(42)).await?;
    /// println!("broke token {} held by {}", broken.token, broken.holder);
    /// # Ok(()) }
    /// ```
    pub async fn force_release(
        &self,
        key: &str,
        token: Option<u64>,
    ) -> Result<KeyHolder, ReleaseError> {
        Ok(self.force_release_inner(key, token).await?)
    }

    async fn force_release_inner(
        &self,
        key: &str,
        token: Option<u64>,
    ) -> Result<KeyHolder, LockError> {
        crate::key::validate_held_key(key)?;
        // The tenure to break: the one asked for, or else the first one read.
        let mut want = token;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let held = match self.store.read(key).await {
                Ok(Some(event)) if event.op == Op::Put => key_holder(Change {
                    key: key.to_owned(),
                    revision: event.revision,
                    op: ChangeOp::Put,
                    value: event.value,
                    stored_at_ms: None,
                }),
                Ok(_) => None,
                Err(e) => return Err(e.into_lock_error(key)),
            };
            let Some(held) = held else {
                return Err(LockError::NotHeld {
                    key: key.to_owned(),
                });
            };
            let expected = *want.get_or_insert(held.token);
            if held.token != expected {
                return Err(LockError::TokenMismatch {
                    key: key.to_owned(),
                    expected,
                    found: held.token,
                });
            }
            match self
                .store
                .delete(
                    key,
                    held.revision,
                    marker(&held.holder, held.token),
                    End::Forced,
                )
                .await
            {
                Ok(_) => return Ok(held),
                Err(WriteError::Conflict) if attempt < FORCE_ATTEMPTS => {
                    tracing::debug!(key, attempt, "key changed before the break; reading again");
                }
                Err(e) => return Err(e.into_lock_error(key)),
            }
        }
    }
}

/// The delete marker's payload: the broken holder's record with its token, so watchers can
/// name the tenure that ended. A foreign record keeps its raw value. An nlock record ends
/// with a newline (JSON readers ignore it): the holder's own delete marker carries exactly
/// its value, and a holder that reads this marker after an unanswered delete of its own must
/// not take the break for its own release.
fn marker(holder: &Holder, token: u64) -> bytes::Bytes {
    if holder.foreign {
        return bytes::Bytes::from(holder.owner.clone().into_bytes());
    }
    let mut h = holder.clone();
    h.token = Some(token);
    let mut payload = h.encode().to_vec();
    payload.push(b'\n');
    bytes::Bytes::from(payload)
}
