//! `KeyQueue`: one key's local requests and what this process is doing with the key, as a
//! plain state machine. The manager owns one per key it has requests for and makes every
//! decision about the key through it: which waiter starts next, why a try is refused, which
//! `LockEnded` may free the key.
//!
//! No actix, no async and no NATS here: a waiter and a held lock are type parameters, so the
//! transitions are unit-tested below without a server or an actor system.

use std::collections::VecDeque;

/// A queued request that its caller may withdraw (by dropping its `PendingLock`) before it
/// is served.
pub(crate) trait Withdrawable {
    /// Whether the caller has gone: the request is skipped, never served.
    fn withdrawn(&self) -> bool;
}

/// What this process is doing with the key.
#[derive(Debug)]
enum KeyState<H> {
    /// Nothing: the next live waiter may start.
    Idle,
    /// A contender runs for the waiter at the head of the queue (already popped).
    Contending,
    /// This process holds the key.
    Held {
        lock: H,
        /// Which tenure: a `LockEnded` for another one must not reset this state.
        token: u64,
    },
}

/// Why a try-acquire is refused without asking the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Busy<'a, H> {
    /// This process holds the key.
    Held(&'a H),
    /// This process is taking the key for an earlier request.
    Contending,
    /// Earlier requests wait: local waiters go first; a try never jumps the queue.
    Queued,
}

/// What the manager should do next for the key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<W> {
    /// Start a contender for this waiter; the key is now `Contending`.
    Start(W),
    /// The key is contended or held: the next waiter starts when that ends.
    Wait,
    /// Idle with no live waiter: the queue can be dropped.
    Unused,
}

/// One key's waiters, in first-in first-out order, and its [`KeyState`].
#[derive(Debug)]
pub(crate) struct KeyQueue<W, H> {
    waiters: VecDeque<W>,
    state: KeyState<H>,
}

impl<W: Withdrawable, H> KeyQueue<W, H> {
    /// An idle key with no waiters.
    pub(crate) fn new() -> Self {
        KeyQueue {
            waiters: VecDeque::new(),
            state: KeyState::Idle,
        }
    }

    /// Why a try-acquire must be refused now, or `None` if it may contend.
    pub(crate) fn busy(&self) -> Option<Busy<'_, H>> {
        match &self.state {
            KeyState::Held { lock, .. } => Some(Busy::Held(lock)),
            KeyState::Contending => Some(Busy::Contending),
            KeyState::Idle if !self.waiters.is_empty() => Some(Busy::Queued),
            KeyState::Idle => None,
        }
    }

    /// Queues a request behind every earlier one.
    pub(crate) fn push(&mut self, waiter: W) {
        self.waiters.push_back(waiter);
    }

    /// If the key is idle, takes the first live waiter (withdrawn ones are dropped on the way)
    /// and marks the key `Contending`.
    pub(crate) fn next(&mut self) -> Next<W> {
        if !matches!(self.state, KeyState::Idle) {
            return Next::Wait;
        }
        while let Some(waiter) = self.waiters.pop_front() {
            if waiter.withdrawn() {
                continue;
            }
            self.state = KeyState::Contending;
            if self.waiters.is_empty() {
                // Nobody else waits: give the buffer back rather than keep it for the whole
                // time the key is held.
                self.waiters = VecDeque::new();
            }
            return Next::Start(waiter);
        }
        Next::Unused
    }

    /// The contender has ended: the key is held with `token` if it won, idle otherwise.
    pub(crate) fn contended(&mut self, won: Option<(H, u64)>) {
        self.state = match won {
            Some((lock, token)) => KeyState::Held { lock, token },
            None => KeyState::Idle,
        };
    }

    /// The tenure with `token` has ended. Only the tenure this queue is in may reset it: a
    /// late `LockEnded` of an earlier tenure changes nothing. Returns whether the key is idle
    /// now because of it.
    pub(crate) fn ended(&mut self, token: u64) -> bool {
        if matches!(&self.state, KeyState::Held { token: held, .. } if *held == token) {
            self.state = KeyState::Idle;
            return true;
        }
        false
    }

    /// The held lock, if this process holds the key.
    pub(crate) fn held(&self) -> Option<&H> {
        match &self.state {
            KeyState::Held { lock, .. } => Some(lock),
            _ => None,
        }
    }

    /// How many local requests wait for the key: live waiters, and the one being contended
    /// for.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.iter().filter(|w| !w.withdrawn()).count()
            + usize::from(matches!(self.state, KeyState::Contending))
    }

    /// Drops the withdrawn waiters at once (their callers went away), rather than when the
    /// key next frees: a key held for hours would otherwise keep one entry per request that
    /// timed out meanwhile.
    pub(crate) fn drop_withdrawn(&mut self) {
        self.waiters.retain(|w| !w.withdrawn());
        if self.waiters.is_empty() {
            self.waiters = VecDeque::new();
        }
    }

    /// How many entries are queued, withdrawn ones included (for the tests' counters).
    pub(crate) fn queued(&self) -> usize {
        self.waiters.len()
    }

    /// Drops every queued waiter (at shutdown: their callers are told the manager is gone).
    /// A running contender and a held lock are left as they are.
    pub(crate) fn clear_waiters(&mut self) {
        self.waiters.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct W {
        name: &'static str,
        gone: bool,
    }

    impl Withdrawable for W {
        fn withdrawn(&self) -> bool {
            self.gone
        }
    }

    fn live(name: &'static str) -> W {
        W { name, gone: false }
    }

    fn gone(name: &'static str) -> W {
        W { name, gone: true }
    }

    type Q = KeyQueue<W, &'static str>;

    fn started(q: &mut Q) -> &'static str {
        match q.next() {
            Next::Start(w) => w.name,
            other => panic!("expected a waiter to start, got {other:?}"),
        }
    }

    #[test]
    fn waiters_start_one_at_a_time_in_arrival_order() {
        let mut q = Q::new();
        for name in ["a", "b", "c"] {
            q.push(live(name));
        }
        assert_eq!(started(&mut q), "a");
        // One contender at a time: b waits while a's contender runs and while a holds.
        assert_eq!(q.next(), Next::Wait);
        q.contended(Some(("a's lock", 7)));
        assert_eq!(q.next(), Next::Wait);
        assert!(q.ended(7));
        assert_eq!(started(&mut q), "b");
        // A contender that did not win (busy, failed, stopped) frees the key at once.
        q.contended(None);
        assert_eq!(started(&mut q), "c");
        q.contended(None);
        assert_eq!(q.next(), Next::Unused);
    }

    #[test]
    fn an_idle_key_without_waiters_is_unused_and_a_try_may_contend() {
        let mut q = Q::new();
        assert_eq!(q.busy(), None);
        assert_eq!(q.waiting(), 0);
        assert_eq!(q.next(), Next::Unused);
    }

    #[test]
    fn a_try_is_busy_while_contending_held_or_queued() {
        let mut q = Q::new();
        q.push(live("a"));
        // Queued but not yet started: a try does not jump ahead of it.
        assert_eq!(q.busy(), Some(Busy::Queued));
        assert_eq!(started(&mut q), "a");
        assert_eq!(q.busy(), Some(Busy::Contending));
        q.contended(Some(("a's lock", 3)));
        assert_eq!(q.busy(), Some(Busy::Held(&"a's lock")));
        assert_eq!(q.held(), Some(&"a's lock"));
        assert!(q.ended(3));
        assert_eq!(q.busy(), None);
        assert_eq!(q.held(), None);
    }

    #[test]
    fn a_stale_lock_ended_does_not_free_a_later_tenure() {
        let mut q = Q::new();
        q.push(live("a"));
        assert_eq!(started(&mut q), "a");
        q.contended(Some(("second tenure", 9)));
        // The end of an earlier tenure (token 4) arrives after the key was taken again.
        assert!(!q.ended(4));
        assert_eq!(q.held(), Some(&"second tenure"));
        assert!(q.ended(9));
        assert_eq!(q.held(), None);
    }

    #[test]
    fn a_lock_ended_while_contending_changes_nothing() {
        let mut q = Q::new();
        q.push(live("a"));
        q.push(live("b"));
        assert_eq!(started(&mut q), "a");
        assert!(!q.ended(4));
        // Still contending: b must not start beside a's contender.
        assert_eq!(q.busy(), Some(Busy::Contending));
        assert_eq!(q.next(), Next::Wait);
    }

    #[test]
    fn withdrawn_waiters_are_skipped_and_not_counted() {
        let mut q = Q::new();
        q.push(gone("a"));
        q.push(live("b"));
        q.push(gone("c"));
        q.push(live("d"));
        assert_eq!(q.waiting(), 2);
        assert_eq!(started(&mut q), "b");
        // b's contender counts as waiting; c is withdrawn.
        assert_eq!(q.waiting(), 2);
        q.contended(None);
        assert_eq!(started(&mut q), "d");
        q.contended(None);
        assert_eq!(q.next(), Next::Unused);
    }

    #[test]
    fn withdrawn_waiters_are_dropped_at_once_while_the_key_is_held() {
        let mut q = Q::new();
        q.push(live("a"));
        assert_eq!(started(&mut q), "a");
        q.contended(Some(("a's lock", 2)));
        q.push(gone("b"));
        q.push(live("c"));
        q.push(gone("d"));
        assert_eq!(q.queued(), 3);
        q.drop_withdrawn();
        assert_eq!(q.queued(), 1);
        assert_eq!(q.held(), Some(&"a's lock"));
        assert!(q.ended(2));
        assert_eq!(started(&mut q), "c");
    }

    #[test]
    fn a_queue_of_withdrawn_waiters_is_unused() {
        let mut q = Q::new();
        q.push(gone("a"));
        q.push(gone("b"));
        assert_eq!(q.next(), Next::Unused);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn shutdown_clears_waiters_but_keeps_the_contender_and_the_holder() {
        let mut q = Q::new();
        for name in ["a", "b", "c"] {
            q.push(live(name));
        }
        assert_eq!(started(&mut q), "a");
        q.clear_waiters();
        assert_eq!(q.waiting(), 1, "only a's contender is left");
        // A lock won during shutdown is kept as held, so that shutdown releases it.
        q.contended(Some(("a's lock", 5)));
        assert_eq!(q.held(), Some(&"a's lock"));
        assert_eq!(q.waiting(), 0);
        assert!(q.ended(5));
        assert_eq!(q.next(), Next::Unused);
    }
}
