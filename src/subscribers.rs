//! Loss subscribers: a list of weak recipients that hears of a loss at most once.
//!
//! The list lives behind a std mutex shared by the lock actor (which ends the list when the
//! lock is lost or released) and the callers' handles (which subscribe and unsubscribe without
//! a message to an actor that may already have stopped). A subscriber that arrives after the
//! end is answered at once from the stored outcome, so a loss is never missed and never told
//! twice.

use std::sync::Mutex;

use actix::{Recipient, WeakRecipient};

use crate::lock::state::LockLost;

/// Names one subscription, to [`unsubscribe`](crate::Lease::unsubscribe) it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Weak: a subscription never keeps a stopped subscriber alive (an actix `Supervisor`
    /// would restart an actor whose mailbox is still referenced).
    live: Vec<(SubscriptionId, WeakRecipient<LockLost>)>,
    /// Set once when the list ends. `Some(None)`: ended without a loss (released), so later
    /// subscribers hear nothing; `Some(Some(lost))`: later subscribers are told at once.
    ended: Option<Option<LockLost>>,
}

/// Warns when a subscriber's actor has already stopped: the subscription is weak, so it will
/// never be told anything (the usual cause: a `Recipient` made from the actor's only address).
pub(crate) fn warn_if_gone<M>(who: &Recipient<M>, what: &str)
where
    M: actix::Message + Send,
    M::Result: Send,
{
    if !who.connected() {
        tracing::warn!(
            "subscribing to {what} with a recipient whose actor has stopped: nothing will be \
             delivered (subscriptions are weak; keep an address of the subscriber)"
        );
    }
}

/// Subscribers of one lock, or of every lock of a manager.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    /// A std mutex, not a tokio one: nothing awaits while holding it, and delivery (a
    /// `do_send`) happens after it is released.
    inner: Mutex<Inner>,
}

impl Subscribers {
    /// Adds `who`; if the list already ended with a loss, tells `who` at once instead.
    pub(crate) fn subscribe(&self, who: Recipient<LockLost>) -> SubscriptionId {
        warn_if_gone(&who, "a lock loss");
        let Ok(mut inner) = self.inner.lock() else {
            return SubscriptionId(u64::MAX);
        };
        let id = SubscriptionId(inner.next_id);
        inner.next_id += 1;
        match &inner.ended {
            Some(lost) => {
                let lost = lost.clone();
                drop(inner);
                if let Some(lost) = lost {
                    who.do_send(lost);
                }
            }
            None => {
                inner.live.retain(|(_, w)| w.upgrade().is_some());
                inner.live.push((id, who.downgrade()));
            }
        }
        id
    }

    /// Removes a subscription; unknown or already delivered ids are ignored.
    pub(crate) fn unsubscribe(&self, id: SubscriptionId) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.live.retain(|(i, _)| *i != id);
        }
    }

    /// Tells every live subscriber of `lost`, and every later one too. Only the first call
    /// does anything: a list ends once.
    pub(crate) fn end_with_loss(&self, lost: &LockLost) {
        for who in self.end(Some(lost.clone())) {
            who.do_send(lost.clone());
        }
    }

    /// Ends the list without a loss (the lock was released): nobody is told anything.
    pub(crate) fn end_released(&self) {
        self.end(None);
    }

    fn end(&self, lost: Option<LockLost>) -> Vec<Recipient<LockLost>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        if inner.ended.is_some() {
            return Vec::new();
        }
        inner.ended = Some(lost);
        std::mem::take(&mut inner.live)
            .into_iter()
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    }

    /// Tells every live subscriber of `lost` without ending the list: for a manager's list,
    /// which hears of every lock's loss.
    pub(crate) fn tell(&self, lost: &LockLost) {
        let live: Vec<Recipient<LockLost>> = match self.inner.lock() {
            Ok(mut inner) => {
                inner.live.retain(|(_, w)| w.upgrade().is_some());
                inner.live.iter().filter_map(|(_, w)| w.upgrade()).collect()
            }
            Err(_) => Vec::new(),
        };
        for who in live {
            who.do_send(lost.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::prelude::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// An actor that stops as soon as it starts.
    struct Gone;
    impl Actor for Gone {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }
    impl Handler<LockLost> for Gone {
        type Result = ();
        fn handle(&mut self, _: LockLost, _: &mut Context<Self>) {}
    }

    /// Log lines, captured.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn subscribing_a_stopped_actor_warns() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        actix::System::new().block_on(async {
            let who = Gone.start().recipient::<LockLost>();
            tokio::time::timeout(Duration::from_secs(10), async {
                while who.connected() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .expect("the actor stops");
            Subscribers::default().subscribe(who);
        });
        let out = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(
            out.contains("WARN") && out.contains("nothing will be delivered"),
            "{out}"
        );
    }
}
