//! `Granted`: what the lock layer hands up for a won lock, the lease and the lock actor's
//! address, and `Pending`, the answer to a queued acquire. The caller-facing
//! [`LockHandle`](crate::LockHandle) and its future are built on these one layer up; this
//! layer knows nothing of them.

use actix::Addr;
use tokio::sync::oneshot;

use crate::error::LockError;
use crate::lock::actor::{LetExpire, LockActor};
use crate::lock::lease::Lease;
use crate::lock::state::Release;

/// A won lock, released when dropped (unless let expire). Whoever owns it owns the lock: a
/// grant that nobody receives (the caller gave up at that moment) is dropped, and so released.
#[derive(Debug)]
pub(crate) struct Granted {
    lease: Lease,
    addr: Addr<LockActor>,
    /// False once the holder let it expire or released it: dropping then sends nothing.
    release_on_drop: bool,
}

impl Granted {
    pub(crate) fn new(lease: Lease, addr: Addr<LockActor>) -> Granted {
        Granted {
            lease,
            addr,
            release_on_drop: true,
        }
    }

    pub(crate) fn lease(&self) -> &Lease {
        &self.lease
    }

    pub(crate) fn addr(&self) -> &Addr<LockActor> {
        &self.addr
    }

    /// Stops refreshing without releasing: the tenure ends at its lease deadline.
    pub(crate) fn let_expire(mut self) {
        self.release_on_drop = false;
        if self.lease.end().is_none() {
            self.addr.do_send(LetExpire);
        }
    }

    /// Sends the release and waits for its answer (`None`: the actor is gone); nothing is
    /// sent again on drop.
    pub(crate) async fn release(mut self) -> Option<Result<(), LockError>> {
        self.release_on_drop = false;
        self.addr.send(Release).await.ok()
    }
}

impl Drop for Granted {
    /// Releases the lock without waiting. Harmless if it was already released or lost.
    fn drop(&mut self) {
        if self.release_on_drop && self.lease.end().is_none() && self.addr.connected() {
            self.addr.do_send(Release);
        }
    }
}

/// The answer to a queued acquire: the grant (or why not) arrives on `rx`; dropping
/// `withdraw` tells the manager the request is withdrawn.
#[derive(Debug)]
pub(crate) struct Pending {
    pub key: String,
    pub rx: oneshot::Receiver<Result<Granted, LockError>>,
    pub withdraw: oneshot::Sender<()>,
}
