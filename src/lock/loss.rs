//! Losses: [`LockLost`], what a subscriber is told, and the subscriber lists that tell it: a
//! list of weak recipients that hears of a loss at most once, and the [`LossSubscription`]
//! guard that ends one subscription when dropped.
//!
//! The list lives behind a std mutex shared by the lock actor (which ends the list when the
//! lock is lost or released) and the callers' handles (which subscribe and unsubscribe without
//! a message to an actor that may already have stopped). A subscriber that arrives after the
//! end is answered at once from the stored outcome, so a loss is never missed and never told
//! twice.

use std::sync::{Arc, Mutex, Weak};

use actix::prelude::*;
use actix::WeakRecipient;
use serde::Serialize;

use crate::error::LossReason;

/// Sent to every subscriber when a held lock is lost; each subscriber is told once.
///
/// ```no_run
/// use actix::prelude::*;
///
/// struct Alarm;
/// impl Actor for Alarm {
///     type Context = Context<Self>;
/// }
/// impl Handler<nlock::LockLost> for Alarm {
///     type Result = ();
///     fn handle(&mut self, lost: nlock::LockLost, _: &mut Context<Self>) {
///         eprintln!("lost {} (token {}): {}", lost.key, lost.token, lost.reason);
///     }
/// }
/// # fn f(m: nlock::LockManager) {
/// let alarm = Alarm.start();
/// m.subscribe_losses(alarm.clone().recipient()).detach();
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Message, Serialize)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct LockLost {
    /// The key.
    pub key: String,
    /// The fencing token of the tenure that was lost.
    pub token: u64,
    /// Why it was lost.
    pub reason: LossReason,
}

/// Names one subscription inside its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SubscriptionId(u64);

/// One subscription to lock losses ([`Lease::subscribe`](crate::Lease::subscribe),
/// [`LockManager::subscribe_losses`](crate::LockManager::subscribe_losses)): dropping it ends
/// the subscription, as dropping a [`LeaderSubscription`](crate::LeaderSubscription) does.
/// [`detach`](LossSubscription::detach) keeps it for as long as the list lasts (the tenure,
/// or the manager) instead.
///
/// ```no_run
/// # use actix::prelude::*;
/// # struct Alarm;
/// # impl Actor for Alarm { type Context = Context<Self>; }
/// # impl Handler<nlock::LockLost> for Alarm {
/// #     type Result = ();
/// #     fn handle(&mut self, _: nlock::LockLost, _: &mut Context<Self>) {}
/// # }
/// # fn f(lock: &nlock::LockHandle) {
/// let alarm = Alarm.start();
/// let subscription = lock.subscribe(alarm.clone().recipient());
/// // ... the alarm hears of a loss while `subscription` lives ...
/// drop(subscription); // and no longer after
/// # }
/// ```
#[derive(Debug)]
#[must_use = "dropping a LossSubscription ends it at once; keep it, or call detach()"]
pub struct LossSubscription {
    /// Weak: a subscription does not keep a manager's or a tenure's list alive.
    list: Weak<Subscribers>,
    id: SubscriptionId,
}

impl LossSubscription {
    /// Keeps the subscription for as long as its list lasts (the tenure, or the manager),
    /// without a guard to hold.
    ///
    /// ```no_run
    /// # use actix::prelude::*;
    /// # struct Alarm;
    /// # impl Actor for Alarm { type Context = Context<Self>; }
    /// # impl Handler<nlock::LockLost> for Alarm {
    /// #     type Result = ();
    /// #     fn handle(&mut self, _: nlock::LockLost, _: &mut Context<Self>) {}
    /// # }
    /// # fn f(m: nlock::LockManager) {
    /// let alarm = Alarm.start();
    /// // Every loss of this manager, for the manager's whole life:
    /// m.subscribe_losses(alarm.clone().recipient()).detach();
    /// # }
    /// ```
    pub fn detach(mut self) {
        self.list = Weak::new();
    }
}

impl Drop for LossSubscription {
    fn drop(&mut self) {
        if let Some(list) = self.list.upgrade() {
            list.unsubscribe(self.id);
        }
    }
}

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
    /// Adds `who`; if the list already ended with a loss, tells `who` at once instead. The
    /// guard ends the subscription when dropped.
    pub(crate) fn subscribe(self: &Arc<Self>, who: Recipient<LockLost>) -> LossSubscription {
        LossSubscription {
            list: Arc::downgrade(self),
            id: self.add(who),
        }
    }

    fn add(&self, who: Recipient<LockLost>) -> SubscriptionId {
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
    fn unsubscribe(&self, id: SubscriptionId) {
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
            Arc::new(Subscribers::default()).subscribe(who).detach();
        });
        let out = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(
            out.contains("WARN") && out.contains("nothing will be delivered"),
            "{out}"
        );
    }
}
