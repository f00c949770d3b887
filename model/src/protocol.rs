//! The stateright `Model`: which steps may happen in a state, what each does, and the
//! properties checked.

use stateright::{Model, Property};

use crate::config::{Faults, Setup, EXPIRY_LAG, PAUSE_TICKS};
use crate::server::KeyId;
use crate::state::{Client, Id, Phase, Server, State, To};

/// A fault, which happens at the start of a tick.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Fault {
    /// A client is paused for `PAUSE_TICKS` (its clock runs on; messages to it wait).
    Pause(Id),
    /// A client crashes.
    Crash(Id),
    /// The server loses its data.
    Reset,
    /// A waiter gives up (its acquire timed out or was dropped).
    GiveUp(Id),
}

/// One step of the system. Client timers are not steps of their own: whatever a client's
/// timers say is due runs right after each step (a client's own work commutes with every
/// other process's, so this loses no interleaving that matters, and keeps the state space
/// small). Likewise messages to clients are delivered in one fixed order; only the order in
/// which the server serves requests, which decides who wins a compare-and-set, varies.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Action {
    /// Real time advances one tick, with a fault at its start or none. Only when nothing is
    /// due: every message due now is delivered (or lost, or delayed) and every key past its
    /// expiry lag expired first. A message is delivered in the tick after it was sent: one
    /// tick of latency each way, small against a TTL of 16 ticks.
    Tick(Option<Fault>),
    /// The message at this index of `State::net` is delivered.
    Deliver(usize),
    /// The message at this index is lost.
    Lose(usize),
    /// The message at this index is delayed by one tick.
    Delay(usize),
    /// The server expires a key past its TTL.
    Expire(KeyId),
}

/// The protocol under one `Setup`.
#[derive(Clone, Debug)]
pub struct LockProtocol {
    /// What is explored.
    pub setup: Setup,
}

impl LockProtocol {
    fn deliverable(s: &State, to: To) -> bool {
        match to {
            To::Server(_) => true,
            To::Client(i) => {
                let c = &s.clients[i as usize];
                c.phase == Phase::Crashed || s.now >= c.paused_until
            }
        }
    }

    fn quiet(s: &State) -> bool {
        s.net.is_empty()
            && s.clients
                .iter()
                .all(|c| matches!(c.phase, Phase::Done | Phase::Crashed))
    }

    /// Runs every client's due timers.
    fn settle(&self, s: &mut State) {
        for i in 0..s.clients.len() as Id {
            // Bounded: each step moves a timer or sends a request that blocks the next.
            for _ in 0..8 {
                if !s.clients[i as usize].runs(s.now) || !s.step(i, &self.setup.protocol) {
                    break;
                }
            }
        }
    }
}

fn some_held_twice(m: &LockProtocol, s: &State) -> bool {
    let ends = m.setup.protocol.release_ends_lease;
    s.clients.iter().filter(|c| c.is_held(s.now, ends)).count() > 1
}

fn all_served(_: &LockProtocol, s: &State) -> bool {
    s.clients
        .iter()
        .all(|c| c.served || c.gave_up || c.phase == Phase::Crashed)
}

impl Model for LockProtocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let n = self.setup.clients.len();
        let mut out = Vec::new();
        // Every combination of clock rates.
        let combos = self.setup.rates.len().pow(n as u32);
        for mut k in 0..combos {
            let clients = self
                .setup
                .clients
                .iter()
                .map(|&kind| {
                    let rate = self.setup.rates[k % self.setup.rates.len()];
                    k /= self.setup.rates.len();
                    Client {
                        kind,
                        rate,
                        phase: Phase::Idle,
                        paused_until: 0,
                        lock_req: None,
                        entry_req: None,
                        look_sent: None,
                        entry: None,
                        entry_refresh_at: 0,
                        seen: None,
                        first: false,
                        poll_at: 0,
                        max_seen: 0,
                        served: false,
                        gave_up: false,
                    }
                })
                .collect();
            let mut s = State {
                now: 0,
                server: Server {
                    seq: 0,
                    lock: None,
                    entries: vec![None; n],
                    began: None,
                    never_written: false,
                    high_water: 0,
                    last_token: 0,
                    token_went_back: false,
                    out_of_order: false,
                    took_over: false,
                },
                clients,
                net: Vec::new(),
                left: self.setup.faults,
            };
            self.settle(&mut s);
            out.push(s);
        }
        out
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        if s.now >= self.setup.horizon {
            return;
        }
        let mut urgent = false;
        let mut client_bound = false;
        for (k, m) in s.net.iter().enumerate() {
            if m.due > s.now || !Self::deliverable(s, m.to) {
                continue;
            }
            if matches!(m.to, To::Client(_)) {
                // Messages to clients commute: one fixed order.
                if client_bound {
                    continue;
                }
                client_bound = true;
            }
            urgent = true;
            actions.push(Action::Deliver(k));
            if s.left.losses > 0 {
                actions.push(Action::Lose(k));
            }
            if s.left.delays > 0 {
                actions.push(Action::Delay(k));
            }
        }
        for (key, expires_at) in s.expirable() {
            actions.push(Action::Expire(key));
            urgent |= expires_at + u16::from(EXPIRY_LAG) <= u16::from(s.now);
        }
        if urgent || Self::quiet(s) {
            return;
        }
        actions.push(Action::Tick(None));
        let Faults {
            pauses,
            crashes,
            resets,
            give_ups,
            ..
        } = s.left;
        for (i, c) in s.clients.iter().enumerate() {
            let i = i as Id;
            let live = c.runs(s.now + 1) && !matches!(c.phase, Phase::Done);
            if pauses > 0 && live {
                actions.push(Action::Tick(Some(Fault::Pause(i))));
            }
            if crashes > 0 && live {
                actions.push(Action::Tick(Some(Fault::Crash(i))));
            }
            if give_ups > 0 && live && c.phase == Phase::Waiting {
                actions.push(Action::Tick(Some(Fault::GiveUp(i))));
            }
        }
        if resets > 0 {
            actions.push(Action::Tick(Some(Fault::Reset)));
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let p = &self.setup.protocol;
        match action {
            Action::Tick(fault) => {
                s.now += 1;
                match fault {
                    None => {}
                    Some(Fault::Pause(i)) => {
                        s.clients[i as usize].paused_until = s.now + PAUSE_TICKS;
                        s.left.pauses -= 1;
                    }
                    Some(Fault::Crash(i)) => {
                        s.clients[i as usize].phase = Phase::Crashed;
                        s.left.crashes -= 1;
                    }
                    Some(Fault::Reset) => {
                        s.reset();
                        s.left.resets -= 1;
                    }
                    Some(Fault::GiveUp(i)) => {
                        s.give_up(i);
                        s.left.give_ups -= 1;
                    }
                }
            }
            Action::Deliver(k) => {
                let m = s.net.remove(k);
                match m.to {
                    To::Server(i) => s.serve(i, m.body, p),
                    To::Client(i) if s.clients[i as usize].phase == Phase::Crashed => {}
                    To::Client(i) => s.receive(i, m.body, p),
                }
            }
            Action::Lose(k) => {
                s.net.remove(k);
                s.left.losses -= 1;
            }
            Action::Delay(k) => {
                let mut m = s.net.remove(k);
                m.due += 1;
                s.left.delays -= 1;
                let at = s.net.partition_point(|x| *x <= m);
                s.net.insert(at, m);
            }
            Action::Expire(key) => s.expire(key),
        }
        self.settle(&mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut props = vec![
            Property::always("never two holders whose is_held() is true", |m, s| {
                !some_held_twice(m, s)
            }),
            Property::always("tokens increase in grant order", |_, s: &State| {
                !s.server.token_went_back
            }),
            Property::always(
                "queued waiters are granted in arrival order",
                |_, s: &State| !s.server.out_of_order,
            ),
        ];
        if self.setup.check_liveness {
            props.push(Property::eventually(
                "every waiter that lives is granted",
                all_served,
            ));
        }
        if self.setup.expect_takeover {
            props.push(Property::sometimes(
                "a waiter takes over at the lease's end",
                |_, s: &State| s.server.took_over,
            ));
        }
        props
    }
}
