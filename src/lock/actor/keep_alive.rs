//! Keeping a held lock alive: one timer for the earlier of the next refresh and the lease
//! deadline, the refreshes it starts, and what their outcomes do to the tenure; and
//! `LetExpire`, which stops the refreshes.

use std::time::SystemTime;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Asked, LockActor};
use crate::deadline::{after, lease_deadline};
use crate::error::LossReason;
use crate::lock::state::LockStatus;
use crate::lock::tenure::{self, Confirmed};

/// Stop refreshing, without a release: the tenure ends at its lease deadline (lost,
/// `Expired`) and the key expires on the server. Sent by a holder whose protected work did
/// not stop in time (an elector's role past its `stop_timeout`): handing the key over early
/// by a release would let the next holder start while that work may still run. A manager
/// shutdown then leaves the key to expire too, instead of deleting it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct LetExpire;

impl Handler<LetExpire> for LockActor {
    type Result = ();

    fn handle(&mut self, _: LetExpire, ctx: &mut Context<Self>) {
        self.expire_if_due(ctx);
        if self.status != LockStatus::Held {
            return;
        }
        let _e = self.span.clone().entered();
        tracing::warn!(
            time_left = ?self.deadline.saturating_duration_since(Instant::now()),
            "no longer refreshing: the lock expires at its lease deadline"
        );
        self.expiring = true;
        self.next_refresh = None;
        self.arm(ctx);
    }
}

impl LockActor {
    /// Arms the timer for the earlier of the next refresh and the lease deadline, unless it
    /// is armed already. An armed timer is never due later than that: the deadline only
    /// moves later, and the next refresh only moves when the timer fires (or goes away when
    /// refreshes stop), so a timer armed before fires in time, and `on_timer` arms the next.
    /// (Not cancelled and armed anew: actix keeps cancelled handles in a small vector that
    /// moves to the heap past two entries and stays there for the actor's life.)
    pub(super) fn arm(&mut self, ctx: &mut Context<Self>) {
        if self.timer_armed {
            return;
        }
        let wake = self
            .next_refresh
            .map_or(self.deadline, |r| r.min(self.deadline));
        let wait = wake.saturating_duration_since(Instant::now());
        ctx.run_later(wait, |act, ctx| act.on_timer(ctx));
        self.timer_armed = true;
    }

    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        self.timer_armed = false;
        let now = Instant::now();
        if now >= self.deadline {
            // Fires even if NATS never answers: the holder is told before the server could
            // hand the key to anyone else.
            return self.declare_lost(LossReason::Expired, ctx);
        }
        if self.next_refresh.is_some_and(|r| now >= r) {
            self.next_refresh = Some(after(now, self.refresh_interval()));
            self.start_refresh(ctx);
        }
        self.arm(ctx);
    }

    /// A held lock whose deadline has passed is lost, whether or not the timer has run yet:
    /// a message handled late (the actor's thread was busy) must not act on it.
    pub(super) fn expire_if_due(&mut self, ctx: &mut Context<Self>) {
        if self.status == LockStatus::Held && Instant::now() >= self.deadline {
            self.declare_lost(LossReason::Expired, ctx);
        }
    }

    pub(super) fn start_refresh(&mut self, ctx: &mut Context<Self>) {
        // Only a held lock refreshes; a release in flight owns the revision until it ends.
        // Nor one told to let its lease run out: a refresh would extend it.
        if self.refreshing || self.status != LockStatus::Held || self.expiring {
            return;
        }
        self.refreshing = true;
        let (common, lease) = self.for_request();
        let (rev, deadline) = (self.revision, self.deadline);
        let timeout = common.config.request_timeout;
        let work = async move {
            tenure::refresh(&common.store, lease.tenure(), rev, deadline, timeout).await
        }
        .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.refreshing = false;
            act.on_refreshed(result, ctx)
        }));
    }

    fn on_refreshed(&mut self, result: Result<Confirmed, LossReason>, ctx: &mut Context<Self>) {
        let _e = self.span.clone().entered();
        match result {
            Ok(c) if matches!(self.status, LockStatus::Held | LockStatus::Releasing) => {
                self.common.store.meter().refreshed();
                // The compare-and-set moved the revision, whoever asked for it.
                self.revision = c.revision;
                // With keep-alive off, only the caller's `refresh()` extends the lease: a check
                // after someone else's write keeps the local deadline where it was (the key
                // lives on at the server until this write's TTL; the holder clears it itself
                // at its deadline, `release_if_ours`).
                let extends = self.common.config.keep_alive || self.refresh_asked();
                if extends {
                    self.deadline = lease_deadline(c.sent_at, self.ttl(), self.margin());
                    self.lease.set_deadline(self.deadline);
                    self.last_refresh = Some(SystemTime::now());
                }
                tracing::trace!(revision = c.revision, extends, "refreshed");
                self.arm(ctx);
                for r in self.take_replies(Asked::Refresh) {
                    let _ = r.send(Ok(()));
                }
                if self.status == LockStatus::Releasing {
                    self.start_release(ctx);
                } else if std::mem::take(&mut self.recheck) {
                    self.start_refresh(ctx);
                }
            }
            // The tenure already ended. (The actor stops when it ends, which drops this
            // future, so this is only a guard.)
            Ok(_) => {}
            Err(reason) => self.declare_lost(reason, ctx),
        }
    }
}
