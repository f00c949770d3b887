//! How the manager serves the waiter at the head of a key's queue: it runs a contender for
//! it, and when the contender ends, starts a `LockActor` and hands the waiter its
//! `LockHandle` if the lock was won, or gives the waiter its answer.

use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use tracing::Instrument;

use super::{HeldLock, LockManagerActor, Mode, Waiter};
use crate::error::LockError;
use crate::holder::{unix_ms, Holder};
use crate::lock::actor::{LockActor, LockCommon, LockSetup};
use crate::lock::contend::{Contended, Contender, Wakes};
use crate::lock::granted::Granted;
use crate::lock::lease::Lease;
use crate::lock::line::Seat;
use crate::lock::tenure::{Tenure, TenureId};

impl LockManagerActor {
    pub(super) fn contend(&mut self, key: String, mut waiter: Waiter, ctx: &mut Context<Self>) {
        self.contending += 1;
        let ttl = waiter.options.ttl.unwrap_or(self.config.ttl);
        // A request with a place in the line already writes under that place's id, so that
        // the line knows its own entry from the holder's.
        let id = waiter
            .entry
            .as_ref()
            .and_then(|entry| TenureId::parse(entry.id()))
            .unwrap_or_else(TenureId::random);
        let holder = Holder {
            owner: self.owner.clone(),
            host: self.host.clone(),
            pid: self.pid,
            acquired_at_ms: unix_ms(SystemTime::now()),
            description: waiter.options.description.clone(),
            tenure: id.text(),
            token: None,
            permits: waiter.options.permits,
            foreign: false,
        };
        // Only a TTL other than the bucket's needs the header: the bucket's max_age expires
        // the key at the same moment, and the server then tracks no per-message TTL on every
        // acquire and refresh.
        let send_ttl = self.store.capabilities().per_lock_ttl && ttl != self.config.ttl;
        let tenure = Tenure::new(key.clone(), &holder, id, ttl, send_ttl);
        let hint = self.markers.remove(&key);
        let check_previous = waiter.options.lock_delay.is_some_and(|d| !d.is_zero());
        let takeover_after = self.config.takeover_after(self.store.max_age());
        let store = self.store.clone();
        let (retry_interval, resolve_for) =
            (self.config.retry_interval, self.config.request_timeout);
        let span = tracing::info_span!("lock", key = %key, owner = %self.owner);
        let mut shutdown = self.stop_contenders.subscribe();
        // Before the contender's first round, so that a release after it is not missed.
        let seat = match (&self.line, waiter.mode) {
            (Some(view), Mode::Wait) => Some(Seat {
                view: view.clone(),
                entry: waiter.entry.take(),
                store: self.store.clone(),
                every: self.entry_keep_alive(),
                valid_for: self.entry_valid_for(),
            }),
            _ => None,
        };
        let wakes = match (waiter.mode, self.follows_changes) {
            (Mode::Wait, true) => {
                let (tx, rx) = tokio::sync::mpsc::channel(WAKE_BUFFER);
                self.wakers.insert(key.clone(), tx);
                Wakes::Feed(rx)
            }
            _ => Wakes::Own,
        };
        let work = async move {
            let contender = Contender {
                store: &store,
                tenure: &tenure,
                retry_interval,
                resolve_for,
                check_previous,
                takeover_after,
            };
            let outcome = match waiter.mode {
                Mode::Try => contender.try_once(hint).await,
                Mode::Wait => {
                    // Stop when the caller goes away or the manager shuts down.
                    let stop = async {
                        tokio::select! {
                            _ = waiter.tx.closed() => {}
                            _ = shutdown.wait_for(|stop| *stop) => {}
                        }
                    };
                    contender.wait(hint, wakes, seat, stop).await
                }
            };
            (waiter, tenure, outcome)
        }
        .instrument(span);
        ctx.spawn(
            work.into_actor(self)
                .map(move |(waiter, tenure, outcome), act, ctx| {
                    act.on_contended(waiter, tenure, outcome, ctx)
                }),
        );
    }

    fn on_contended(
        &mut self,
        mut waiter: Waiter,
        mut tenure: Tenure,
        outcome: Contended,
        ctx: &mut Context<Self>,
    ) {
        self.contending -= 1;
        let key = tenure.key.clone();
        self.wakers.remove(&key);
        waiter.waiting.end((&outcome).into());
        let won = match outcome {
            Contended::Acquired(grant) => {
                let unclean = grant.previous_unclean;
                // From the first refresh on, the value names its token, so that observers
                // (and `nlock ls`) see the fencing token of a lock they did not see taken.
                let mut holder = grant.holder;
                holder.token = Some(grant.token);
                tenure.set_holder(&holder);
                let setup = LockSetup {
                    common: self.lock_common(ctx),
                    tenure,
                    token: grant.token,
                    confirmed: grant.confirmed,
                    previous: grant.previous,
                };
                let (actor, lease) = LockActor::new(setup);
                let lease = Lease::new(lease);
                let addr = actor.start();
                let weak = addr.downgrade();
                if self.shutting_down {
                    // Won while shutting down: kept as held so that shutdown releases it.
                    let _ = waiter.tx.send(Err(LockError::ManagerGone));
                } else {
                    let handle = Granted::new(lease.clone(), addr);
                    match waiter.options.lock_delay.filter(|d| !d.is_zero()) {
                        Some(delay) => {
                            actix::spawn(crate::lock::delay::hand_over(
                                unclean, delay, handle, waiter.tx,
                            ));
                        }
                        // If the caller is gone, the handle comes back and its drop
                        // releases it.
                        None => {
                            if let Err(Ok(handle)) = waiter.tx.send(Ok(handle)) {
                                drop(handle);
                            }
                        }
                    }
                }
                Some((HeldLock { addr: weak, lease }, grant.token))
            }
            Contended::Busy(h) => {
                let _ = waiter.tx.send(Err(LockError::Busy {
                    key: key.clone(),
                    holder: h.map(Box::new),
                }));
                None
            }
            Contended::Stopped => None,
            Contended::Failed(e) => {
                let _ = waiter.tx.send(Err(e));
                None
            }
        };
        if let Some(q) = self.queues.get_mut(&key) {
            q.contended(won);
        }
        if self.shutting_down && self.contending == 0 {
            for tx in self.idle_waiters.drain(..) {
                let _ = tx.send(());
            }
        }
        self.pump(&key, ctx);
    }

    /// What this manager's lock actors share, made with the first of them.
    fn lock_common(&mut self, ctx: &mut Context<Self>) -> Arc<LockCommon> {
        if let Some(common) = &self.lock_common {
            return common.clone();
        }
        let common = Arc::new(LockCommon {
            store: self.store.clone(),
            owner: self.owner.clone(),
            config: self.config.clone(),
            manager: ctx.address().recipient(),
            manager_subscribers: self.loss_subscribers.clone(),
        });
        self.lock_common = Some(common.clone());
        common
    }
}

/// How many of a key's changes may wait for its contender: frees, its own writes and the
/// holder's refreshes (one per TTL/factor), a handful between two rounds; past it a change is
/// dropped (the next round reads the key, and a takeover that expects an older write than the
/// holder's last fails and reads it).
const WAKE_BUFFER: usize = 16;
