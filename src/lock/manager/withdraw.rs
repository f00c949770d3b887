//! Requests whose callers went away leave their key's queue at once, and the counters that
//! let tests see that nothing per key is kept longer than needed.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::LockManagerActor;
use crate::lock::requests::{CountState, ManagerCounts};

impl LockManagerActor {
    /// The sender a request's `PendingLock` keeps: dropped with it or when it times out, it
    /// makes the manager drop the withdrawn requests of `key` then, not when the key next
    /// frees (a key held for hours would otherwise keep one entry per timed-out request).
    pub(super) fn on_withdrawal(
        &mut self,
        key: &str,
        ctx: &mut Context<Self>,
    ) -> oneshot::Sender<()> {
        let (withdraw, withdrawn) = oneshot::channel::<()>();
        let key = key.to_owned();
        ctx.spawn(
            async move {
                let _ = withdrawn.await;
            }
            .into_actor(self)
            .map(move |(), act, ctx| act.drop_withdrawn(&key, ctx)),
        );
        withdraw
    }

    /// Drops the withdrawn requests of `key`, and its queue if nothing is left of it.
    fn drop_withdrawn(&mut self, key: &str, ctx: &mut Context<Self>) {
        if let Some(queue) = self.queues.get_mut(key) {
            queue.drop_withdrawn();
        }
        self.pump(key, ctx);
    }
}

impl Handler<CountState> for LockManagerActor {
    type Result = MessageResult<CountState>;

    fn handle(&mut self, _: CountState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ManagerCounts {
            keys: self.queues.len(),
            queued: self.queues.values().map(|q| q.queued()).sum(),
            wakers: self.wakers.len(),
        })
    }
}
