//! A client: its one acquisition (queue entry, look, compare-and-set, takeover), its
//! tenure (keep-alive, lease deadline, release), and its answers to what it receives.

use crate::config::{
    Kind, Local, Protocol, HOLDER_MARGIN, HOLD_FOR, POLL_EVERY, REFRESH_EVERY, REQUEST_TIMEOUT, TTL,
};
use crate::state::{
    Body, EntryOp, Id, LockOp, Pending, Phase, Rev, State, Tenure, To, WriteResult,
};

/// The lease deadline of a write sent at `sent` (`src/deadline.rs`, `lease_deadline`).
fn lease_deadline(sent: Local) -> Local {
    sent + TTL - HOLDER_MARGIN
}

impl State {
    fn send_lock_write(&mut self, i: Id, op: LockOp, expect: Rev) {
        let c = &mut self.clients[i as usize];
        let sent = c.clock(self.now);
        c.lock_req = Some(Pending { op, sent });
        let max_seen = c.max_seen;
        self.send(
            To::Server(i),
            Body::LockWrite {
                op,
                expect,
                sent,
                max_seen,
            },
        );
    }

    fn send_entry_write(&mut self, i: Id, op: EntryOp, expect: Rev) {
        let c = &mut self.clients[i as usize];
        let sent = c.clock(self.now);
        c.entry_req = Some(Pending { op, sent });
        let max_seen = c.max_seen;
        self.send(
            To::Server(i),
            Body::EntryWrite {
                op,
                expect,
                sent,
                max_seen,
            },
        );
    }

    fn look(&mut self, i: Id) {
        let c = &mut self.clients[i as usize];
        let sent = c.clock(self.now);
        c.look_sent = Some(sent);
        c.poll_at = sent + POLL_EVERY;
        self.send(To::Server(i), Body::Look { sent });
    }

    /// What client `i` does next on its own (a timer, a timeout), if anything is due: the
    /// first due thing, or `false` when nothing is. Due steps are urgent: time does not pass
    /// while a running client has one.
    pub fn step(&mut self, i: Id, p: &Protocol) -> bool {
        let now = self.clients[i as usize].clock(self.now);
        let c = self.clients[i as usize].clone();
        let timed_out = |sent: Local| now >= sent + REQUEST_TIMEOUT;
        // The lock's request without an answer: its outcome is unknown.
        if let Some(r) = c.lock_req.filter(|r| timed_out(r.sent)) {
            self.clients[i as usize].lock_req = None;
            match (c.phase, r.op) {
                // An acquire may have landed: the next look finds our value and claims it.
                (Phase::Waiting, _) => self.look(i),
                // A release is retried until the deadline.
                (Phase::Releasing(t), LockOp::Release) => {
                    self.send_lock_write(i, LockOp::Release, t.rev)
                }
                // A refresh is retried by the refresh timer.
                _ => {}
            }
            return true;
        }
        if c.entry_req.is_some_and(|r| timed_out(r.sent)) {
            self.clients[i as usize].entry_req = None;
            return true;
        }
        if c.look_sent.is_some_and(timed_out) {
            self.clients[i as usize].look_sent = None;
            return true;
        }
        match c.phase {
            Phase::Idle => {
                self.clients[i as usize].phase = Phase::Waiting;
                self.clients[i as usize].poll_at = now + POLL_EVERY;
                match c.kind {
                    Kind::Queued => self.send_entry_write(i, EntryOp::Create, 0),
                    Kind::Barging => self.look(i),
                }
                return true;
            }
            Phase::Holding(t) | Phase::Releasing(t) if now >= t.deadline => {
                // The lease ran out (or the release was never confirmed): lost.
                self.clients[i as usize].phase = Phase::Done;
                return true;
            }
            Phase::Holding(t) if c.lock_req.is_none() => {
                if now >= t.release_at {
                    self.clients[i as usize].phase = Phase::Releasing(t);
                    self.send_lock_write(i, LockOp::Release, t.rev);
                    return true;
                }
                if now >= t.next_refresh {
                    let t = Tenure {
                        next_refresh: now + REFRESH_EVERY,
                        ..t
                    };
                    self.clients[i as usize].phase = Phase::Holding(t);
                    self.send_lock_write(i, LockOp::Refresh, t.rev);
                    return true;
                }
            }
            Phase::Waiting if c.lock_req.is_none() => {
                let entry_holds = c.entry.is_some_and(|(_, d)| now < d);
                let may_lead = match c.kind {
                    Kind::Queued => (c.first && entry_holds) || !p.queue_order,
                    Kind::Barging => false,
                };
                if let Some((rev, t)) = c.seen {
                    if p.takeover && may_lead && now >= t + p.takeover_wait() {
                        self.send_lock_write(i, LockOp::Takeover, rev);
                        return true;
                    }
                }
                if c.look_sent.is_none() && now >= c.poll_at {
                    self.look(i);
                    return true;
                }
            }
            _ => {}
        }
        // The queue entry: kept alive while waiting, appended again if lost, deleted after.
        if c.kind == Kind::Queued && c.entry_req.is_none() {
            match (c.phase, c.entry) {
                (Phase::Waiting, None) => {
                    self.send_entry_write(i, EntryOp::Create, 0);
                    return true;
                }
                (Phase::Waiting, Some((rev, _))) if now >= c.entry_refresh_at => {
                    self.clients[i as usize].entry_refresh_at = now + REFRESH_EVERY;
                    self.send_entry_write(i, EntryOp::Refresh, rev);
                    return true;
                }
                (Phase::Waiting, _) | (_, None) => {}
                (_, Some((rev, _))) => {
                    self.send_entry_write(i, EntryOp::Delete, rev);
                    return true;
                }
            }
        }
        false
    }

    /// A waiter gives up (its acquire timed out or was dropped): it leaves the queue.
    pub fn give_up(&mut self, i: Id) {
        let c = &mut self.clients[i as usize];
        c.phase = Phase::Done;
        c.gave_up = true;
        c.first = false;
    }

    /// Client `i` receives `body`.
    pub fn receive(&mut self, i: Id, body: Body, p: &Protocol) {
        let now = self.clients[i as usize].clock(self.now);
        let c = self.clients[i as usize].clone();
        match body {
            // The change stream: a write seen (for a takeover), or the key freed (look now).
            Body::Changed { lock } => {
                if c.phase != Phase::Waiting {
                    return;
                }
                let cm = &mut self.clients[i as usize];
                match lock {
                    Some((rev, _)) => {
                        cm.max_seen = cm.max_seen.max(rev);
                        if cm.seen.is_none_or(|(r, _)| r != rev) {
                            cm.seen = Some((rev, now));
                        }
                    }
                    None => {
                        cm.seen = None;
                        if c.look_sent.is_none() {
                            self.look(i);
                        }
                    }
                }
            }
            Body::Seen {
                sent,
                lock,
                entry,
                first,
            } => {
                // An answer after the request's timeout is dropped, as the code drops it.
                if c.look_sent != Some(sent) || now >= sent + REQUEST_TIMEOUT {
                    return;
                }
                let cm = &mut self.clients[i as usize];
                cm.look_sent = None;
                cm.first = first;
                let revs = lock.map_or(0, |l| l.0).max(entry.unwrap_or(0));
                cm.max_seen = cm.max_seen.max(revs);
                // Our entry, also one whose create was not answered.
                // (One whose create was not answered has no known send time: no lease until
                // its next refresh is answered, due now.)
                cm.entry = match (entry, cm.entry) {
                    (Some(r), Some((_, d))) => Some((r, d)),
                    (Some(r), None) => {
                        cm.entry_refresh_at = now;
                        Some((r, 0))
                    }
                    (None, _) => None,
                };
                cm.seen = match (lock, cm.seen) {
                    (Some((rev, _)), Some((seen, t))) if seen == rev => Some((rev, t)),
                    (Some((rev, _)), _) => Some((rev, now)),
                    (None, _) => None,
                };
                if c.phase != Phase::Waiting || c.lock_req.is_some() {
                    return;
                }
                let entry_holds = cm.entry.is_some_and(|(_, d)| now < d);
                let may_lead = match c.kind {
                    Kind::Queued => (first && entry_holds) || !p.queue_order,
                    Kind::Barging => true,
                };
                match lock {
                    Some((rev, owner)) if owner == i => self.send_lock_write(i, LockOp::Claim, rev),
                    None if may_lead => self.send_lock_write(i, LockOp::Acquire, 0),
                    _ => {}
                }
            }
            Body::LockAnswer { op, sent, result } => self.lock_answer(i, op, sent, result),
            Body::EntryAnswer { op, sent, result } => {
                let cm = &mut self.clients[i as usize];
                if cm.entry_req.is_some_and(|r| r.sent == sent && r.op == op) {
                    cm.entry_req = None;
                }
                match (op, result) {
                    (EntryOp::Create | EntryOp::Refresh, WriteResult::Ok(r)) => {
                        cm.max_seen = cm.max_seen.max(r);
                        cm.entry = Some((r, lease_deadline(sent)));
                        cm.entry_refresh_at = sent + REFRESH_EVERY;
                        if op == EntryOp::Create && cm.phase == Phase::Waiting {
                            self.look(i);
                        }
                    }
                    // An earlier write of ours landed unanswered: carry on from it (a delete
                    // tries again; a create's entry gets its lease from its next refresh).
                    (_, WriteResult::Conflict(Some((r, _)))) => {
                        let d = cm.entry.map_or(0, |e| e.1);
                        if d == 0 {
                            cm.entry_refresh_at = now;
                        }
                        cm.entry = Some((r, d));
                    }
                    (EntryOp::Delete, _) | (_, WriteResult::Conflict(None)) => cm.entry = None,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn lock_answer(&mut self, i: Id, op: LockOp, sent: Local, result: WriteResult) {
        let now = self.clients[i as usize].clock(self.now);
        let cm = &mut self.clients[i as usize];
        let matched = cm.lock_req.is_some_and(|r| r.sent == sent && r.op == op);
        if matched {
            cm.lock_req = None;
        }
        if let WriteResult::Ok(r) = result {
            cm.max_seen = cm.max_seen.max(r);
        }
        let phase = cm.phase;
        match (phase, op, result) {
            (
                Phase::Waiting,
                LockOp::Acquire | LockOp::Claim | LockOp::Takeover,
                WriteResult::Ok(r),
            ) => {
                cm.phase = Phase::Holding(Tenure {
                    token: r,
                    rev: r,
                    deadline: lease_deadline(sent),
                    // The caller works for a while after it is told, then releases.
                    release_at: now + HOLD_FOR,
                    next_refresh: sent + REFRESH_EVERY,
                });
                cm.served = true;
                cm.seen = None;
                cm.first = false;
            }
            // A grant nobody waits for any more (given up, or a second grant): deleted.
            (_, LockOp::Acquire | LockOp::Claim | LockOp::Takeover, WriteResult::Ok(r)) if !matches!(phase, Phase::Holding(t) | Phase::Releasing(t) if t.rev == r) =>
            {
                let release = Body::LockWrite {
                    op: LockOp::Release,
                    expect: r,
                    sent,
                    max_seen: 0,
                };
                self.send(To::Server(i), release);
            }
            // In the grace: the poll tries again later (the code sleeps the grace out).
            (Phase::Waiting, _, WriteResult::Grace) => {}
            (Phase::Waiting, _, _) if cm.lock_req.is_none() && cm.look_sent.is_none() => {
                self.look(i)
            }
            (Phase::Holding(t) | Phase::Releasing(t), LockOp::Refresh, WriteResult::Ok(r)) => {
                let t = Tenure {
                    rev: r,
                    deadline: lease_deadline(sent).max(t.deadline),
                    ..t
                };
                cm.phase = match phase {
                    Phase::Holding(_) => Phase::Holding(t),
                    _ => Phase::Releasing(t),
                };
            }
            // An earlier write of ours landed unanswered: carry on from its revision.
            (Phase::Holding(t), LockOp::Refresh, WriteResult::Conflict(Some((r, true)))) => {
                cm.phase = Phase::Holding(Tenure { rev: r, ..t });
            }
            (Phase::Holding(_), LockOp::Refresh, _) => cm.phase = Phase::Done,
            // (Only the answer to its own delete: one for a stray grant's delete is not.)
            (Phase::Releasing(_), LockOp::Release, _) if matched => cm.phase = Phase::Done,
            _ => {}
        }
    }
}
