//! `PendingLock`: the future of an acquire that is queued at the manager.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::error::LockError;
use crate::handle::LockHandle;
use crate::lock::granted::{Granted, Pending};

/// Resolves to the lock, or to why it was not granted.
///
/// Dropping it withdraws the request: the manager stops contending for this caller, and a
/// lock granted at that moment is released (its handle is dropped). So a caller that gives up,
/// times out or is cancelled never leaves a lock behind.
#[derive(Debug)]
#[must_use = "an acquire does nothing unless awaited; dropping it withdraws the request"]
pub(crate) struct PendingLock {
    key: String,
    rx: oneshot::Receiver<Result<Granted, LockError>>,
    timeout: Option<(Duration, Pin<Box<Sleep>>)>,
    /// Dropped with this future, or when it times out: tells the manager at once that the
    /// request is withdrawn, so its queue entry goes then, not when the key next frees.
    withdraw: Option<oneshot::Sender<()>>,
}

impl PendingLock {
    /// The future of `pending`, given up after `timeout` (counted from now).
    pub(crate) fn new(pending: Pending, timeout: Option<Duration>) -> Self {
        let timeout = timeout.map(|d| (d, Box::pin(tokio::time::sleep(d))));
        PendingLock {
            key: pending.key,
            rx: pending.rx,
            timeout,
            withdraw: Some(pending.withdraw),
        }
    }
}

impl Future for PendingLock {
    type Output = Result<LockHandle, LockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(result) = Pin::new(&mut self.rx).poll(cx) {
            let result = result.unwrap_or(Err(LockError::ManagerGone));
            return Poll::Ready(result.map(LockHandle::new));
        }
        let waited = match &mut self.timeout {
            Some((waited, sleep)) => match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => *waited,
                Poll::Pending => return Poll::Pending,
            },
            None => return Poll::Pending,
        };
        // Closing first means the contender sees the request withdrawn; a grant that raced
        // in just before still counts.
        self.rx.close();
        self.withdraw = None;
        match self.rx.try_recv() {
            Ok(result) => Poll::Ready(result.map(LockHandle::new)),
            Err(_) => Poll::Ready(Err(LockError::AcquireTimedOut {
                key: self.key.clone(),
                waited,
            })),
        }
    }
}
