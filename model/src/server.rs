//! The KV server: compare-and-set on one key's last revision, expiry at TTL after the last
//! write (possibly late), the restart grace's reset check, and the change stream's wakes.
//! The grace check is made by the client in the code (`Store::admit` before the write,
//! `Store::confirm_grant` after it, `src/store/grace.rs`); here it is made at the write, as
//! one step: a grant refused by it is one the code writes and withdraws before anyone sees it.

use crate::config::{Kind, Local, Protocol, CLOCK_SKEW_TICKS, TTL_TICKS};
use crate::state::WriteResult;
use crate::state::{Body, EntryKey, EntryOp, Id, LockKey, LockOp, Rev, State, To};

/// Which key an expiry acts on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum KeyId {
    /// The lock key.
    Lock,
    /// A client's queue entry.
    Entry(Id),
}

impl State {
    fn next_seq(&mut self) -> Rev {
        let s = &mut self.server;
        s.seq += 1;
        s.never_written = false;
        s.high_water = s.high_water.max(s.seq);
        s.seq
    }

    /// Before a create: a stream reset and not written since, or behind a revision the
    /// writer saw, has its sequence moved past every earlier one (a purge to the clock),
    /// which starts the grace anew (`check_grace`'s move).
    fn move_if_reset(&mut self, max_seen: Rev, may_move: bool) {
        let s = &mut self.server;
        if may_move && (s.never_written || s.seq < max_seen) {
            s.seq = s.high_water;
            s.never_written = false;
            s.began = Some(self.now);
        }
    }

    fn in_grace(&self, grace: bool) -> bool {
        grace
            && self
                .server
                .began
                .is_some_and(|b| self.now < b + TTL_TICKS + CLOCK_SKEW_TICKS)
    }

    /// Tells every client but `except` what the lock key is now (each manager's one change
    /// stream; a client that is not waiting ignores it).
    fn publish(&mut self, except: Option<Id>) {
        let lock = self.server.lock.map(|k| (k.rev, k.owner));
        for i in 0..self.clients.len() as Id {
            if Some(i) != except {
                self.send(To::Client(i), Body::Changed { lock });
            }
        }
    }

    /// The server handles a message from client `i`.
    pub fn serve(&mut self, i: Id, body: Body, p: &Protocol) {
        match body {
            Body::LockWrite {
                op,
                expect,
                sent,
                max_seen,
            } => {
                let result = self.lock_write(i, op, expect, max_seen, p);
                self.send(To::Client(i), Body::LockAnswer { op, sent, result });
            }
            Body::EntryWrite {
                op,
                expect,
                sent,
                max_seen,
            } => {
                let result = self.entry_write(i, op, expect, max_seen, p.move_reset_sequence);
                self.send(To::Client(i), Body::EntryAnswer { op, sent, result });
            }
            Body::Look { sent } => {
                // First among live entries; the entry of the lock's holder does not count (it
                // is being served: it deletes its entry after the grant, but a pause or a lost
                // delete must not hold the queue up for a lease).
                let mine = self.server.entries[i as usize];
                let holder = self.server.lock.map(|k| k.owner as usize);
                let first = mine.is_some_and(|m| {
                    self.server
                        .entries
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| Some(*j) != holder)
                        .all(|(_, e)| e.is_none_or(|e| e.ticket >= m.ticket))
                });
                let lock = self.server.lock.map(|k| (k.rev, k.owner));
                let entry = mine.map(|m| m.rev);
                self.send(
                    To::Client(i),
                    Body::Seen {
                        sent,
                        lock,
                        entry,
                        first,
                    },
                );
            }
            _ => {}
        }
    }

    fn lock_write(
        &mut self,
        i: Id,
        op: LockOp,
        expect: Rev,
        seen: Rev,
        p: &Protocol,
    ) -> WriteResult {
        let (grace, may_move) = (p.restart_grace, p.move_reset_sequence);
        let current = self.server.lock.map_or(0, |k| k.rev);
        let new_tenure = matches!(op, LockOp::Acquire | LockOp::Claim | LockOp::Takeover);
        if new_tenure {
            self.move_if_reset(seen, may_move);
            if self.in_grace(grace) {
                return WriteResult::Grace;
            }
        }
        if current != expect {
            let now = self.server.lock.map(|k| (k.rev, k.owner == i));
            return WriteResult::Conflict(now);
        }
        if op == LockOp::Release {
            self.server.lock = None;
            let marker = self.next_seq();
            self.publish(Some(i));
            return WriteResult::Ok(marker);
        }
        let rev = self.next_seq();
        let previous_owner = self.server.lock.map(|k| k.owner);
        self.server.lock = Some(LockKey {
            rev,
            owner: i,
            expires_at: self.now + TTL_TICKS,
        });
        // A new tenure: a create, a takeover, or a claim of our own create (whose token is
        // the create's revision, checked when that landed).
        if matches!(op, LockOp::Acquire | LockOp::Takeover) {
            let s = &mut self.server;
            if rev <= s.last_token {
                s.token_went_back = true;
            }
            s.last_token = rev;
            if op == LockOp::Takeover && previous_owner != Some(i) {
                s.took_over = true;
            }
            // (A grant to a client that gave up meanwhile is released at once: not a grant.)
            let waiting = self.clients[i as usize].phase == crate::state::Phase::Waiting;
            if self.clients[i as usize].kind == Kind::Queued && waiting {
                let mine = self.server.entries[i as usize].map(|e| e.ticket);
                // A live entry ahead of ours whose owner is still waiting (one granted
                // before, the key's holder until now included, whose entry outlived its
                // grant, is not ahead of anyone).
                let ahead = self.server.entries.iter().enumerate().any(|(j, e)| {
                    j != i as usize
                        && previous_owner != Some(j as Id)
                        && !self.clients[j].served
                        && e.is_some_and(|e| mine.is_none_or(|m| e.ticket < m))
                });
                if ahead {
                    self.server.out_of_order = true;
                }
            }
        }
        self.publish(Some(i));
        WriteResult::Ok(rev)
    }

    fn entry_write(
        &mut self,
        i: Id,
        op: EntryOp,
        expect: Rev,
        seen: Rev,
        may_move: bool,
    ) -> WriteResult {
        let current = self.server.entries[i as usize];
        if op == EntryOp::Create {
            self.move_if_reset(seen, may_move);
        }
        if current.map_or(0, |e| e.rev) != expect {
            return WriteResult::Conflict(current.map(|e| (e.rev, true)));
        }
        let rev = self.next_seq();
        self.server.entries[i as usize] = match op {
            EntryOp::Delete => None,
            EntryOp::Create | EntryOp::Refresh => Some(EntryKey {
                rev,
                ticket: current.map_or(rev, |e| e.ticket),
                expires_at: self.now + TTL_TICKS,
            }),
        };
        WriteResult::Ok(rev)
    }

    /// The server expires a key past its TTL (2.11+: with a marker that wakes waiters).
    pub fn expire(&mut self, key: KeyId) {
        match key {
            KeyId::Lock => {
                self.server.lock = None;
                self.publish(None);
            }
            KeyId::Entry(i) => self.server.entries[i as usize] = None,
        }
    }

    /// Keys the server may expire now, and whether it must (past the lag).
    pub fn expirable(&self) -> Vec<(KeyId, Local)> {
        let mut out = Vec::new();
        if let Some(k) = self.server.lock {
            if self.now >= k.expires_at {
                out.push((KeyId::Lock, Local::from(k.expires_at)));
            }
        }
        for (i, e) in self.server.entries.iter().enumerate() {
            if let Some(e) = e {
                if self.now >= e.expires_at {
                    out.push((KeyId::Entry(i as Id), Local::from(e.expires_at)));
                }
            }
        }
        out
    }

    /// The data is lost: every key gone, the sequence back to the start.
    pub fn reset(&mut self) {
        let s = &mut self.server;
        s.lock = None;
        s.entries.iter_mut().for_each(|e| *e = None);
        s.seq = 0;
        s.never_written = true;
        s.began = Some(self.now);
    }
}
