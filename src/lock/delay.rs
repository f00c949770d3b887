//! The lock-delay of plain locks ([`LockOptions::lock_delay`](crate::LockOptions), as Consul
//! sessions have): after an unclean end of the previous tenure (someone else's delete or
//! purge, an operator's break), a new holder gets its handle only after the delay, so that
//! the previous holder, told of its loss at the same moment, has time to stop its work.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::LockError;
use crate::lock::granted::Granted;
use crate::store::{ChangeOp, Store};

/// Whether the message at `revision` (the last one on a key, which a new tenure's create
/// is about to replace) ended the previous tenure uncleanly. Clean: a holder's own release
/// or clearing of its lapsed tenure, or an expiry marker. Anything else (someone else's
/// delete or purge), or a read that fails, is unclean.
pub(crate) async fn unclean_end_at(store: &Store, revision: u64) -> bool {
    !matches!(
        store.op_at(revision).await,
        Ok(ChangeOp::Ended(_) | ChangeOp::Expired)
    )
}

/// Hands `handle` to `tx`: at once after a clean end, `delay` later after an unclean one.
/// The lock is held and kept alive meanwhile; a caller gone meanwhile gets nothing, and the
/// handle's drop releases the lock.
pub(crate) async fn hand_over(
    unclean: bool,
    delay: Duration,
    handle: Granted,
    mut tx: oneshot::Sender<Result<Granted, LockError>>,
) {
    if unclean && !delay.is_zero() {
        tracing::info!(
            key = handle.lease().key(),
            ?delay,
            "previous tenure ended uncleanly: lock-delay"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tx.closed() => {}
        }
    }
    if let Err(Ok(handle)) = tx.send(Ok(handle)) {
        drop(handle);
    }
}
