//! What the manager does with each change its change stream shows: the lines across
//! processes learn of entries and holders, a waiting contender is woken, and a held lock is
//! told of a foreign write.

use actix::prelude::*;

use super::LockManagerActor;
use crate::lock::actor::ForeignWrite;
use crate::store::{Change, ChangeOp};

impl StreamHandler<Change> for LockManagerActor {
    fn handle(&mut self, change: Change, _: &mut Context<Self>) {
        if let Some(line) = &self.line {
            let left = match line.lock() {
                Ok(mut view) => view
                    .apply(&change, tokio::time::Instant::now())
                    .map(str::to_owned),
                Err(_) => None,
            };
            // An entry left a line: its key's waiter here may be first now.
            if let Some(waker) = left.and_then(|key| self.wakers.get(&key)) {
                let _ = waker.try_send(change);
                return;
            }
            if crate::key::is_line_entry(&change.key) {
                return;
            }
        }
        if let Some(waker) = self.wakers.get(&change.key) {
            // A waiter cares for the key becoming free, for its own write whose answer was
            // lost, and for the holder's writes (its lease counts from the last one: the
            // takeover at its end). A full channel drops the change: the waiter has changes
            // to act on already, its round reads the key, and a takeover that expects an
            // older write than the holder's last fails and reads it.
            let _ = waker.try_send(change.clone());
        }
        // This manager's own writes: refreshes and acquires of its own tenures. (Its own
        // deletes reach a lock actor that is releasing, which ignores them.)
        if change.op == ChangeOp::Put && change.value.starts_with(&self.own_value_prefix) {
            return;
        }
        if let Some(addr) = self.queues.get(&change.key).and_then(|q| q.held()?.addr()) {
            addr.do_send(ForeignWrite {
                revision: change.revision,
            });
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The change stream never ends by itself (it reopens); should it end, held locks
        // still notice foreign writes at their next refresh, and the manager carries on
        // (the default would stop it).
        tracing::warn!("the bucket's change stream ended; foreign writes are noticed at refresh");
    }
}
