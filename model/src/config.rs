//! What one check explores: how many clients of which kind, which faults and how many of
//! each, how long, and which parts of the protocol are on (the broken variants turn one off).
//!
//! Time is counted in two units. The checker's real time advances in ticks (`Tick`); a
//! process reads its own clock in `Local` units, `RATE_NORMAL` of them per tick when its
//! clock runs true. TTLs, margins and timers are written in local units, as the code's
//! `Duration`s are read off each process's own clock.

/// Real time, in ticks: the server's clock (the server expires keys on it).
pub type Tick = u8;
/// A process's clock reading, in local units.
pub type Local = u16;

/// Local units per tick for a clock that runs true.
pub const RATE_NORMAL: Local = 4;
/// The bound on clock rate drift, `ρ`, as a fraction `DRIFT_NUM / RATE_NORMAL`: a clock runs
/// at 2 to 6 units per tick, within ±50% of true time. Real clocks drift far less; the bound
/// is wide so that the window a drift opens (`TTL * ρ / (1 + ρ)`) is wider than the model's
/// latency (a tick each way), or no tick would fall into it.
pub const DRIFT_NUM: Local = 2;

/// The lock's TTL on a process's clock (the server counts it as `TTL / RATE_NORMAL` ticks).
pub const TTL: Local = 64;
/// The server's TTL in ticks: a key written at tick `t` may be expired from `t + TTL_TICKS`.
pub const TTL_TICKS: Tick = (TTL / RATE_NORMAL) as Tick;
/// The holder's margin (`src/deadline.rs`, `lease_deadline`): its lease ends at
/// `send time + TTL - HOLDER_MARGIN`. It covers the drift over one TTL (`TTL * ρ`): the drift
/// assumption of GUARANTEES.md promise 1.
pub const HOLDER_MARGIN: Local = TTL * DRIFT_NUM / RATE_NORMAL;
/// Keep-alive: a holder (and a queue entry's owner) rewrites its key this often (TTL/3).
pub const REFRESH_EVERY: Local = 21;
/// A waiter reads the key and the queue this often when nothing wakes it (the poll fallback).
pub const POLL_EVERY: Local = 16;
/// A request without an answer after this long has an unknown outcome (a round trip is two
/// ticks, at most twelve units on a fast clock; three ticks with a delay).
pub const REQUEST_TIMEOUT: Local = 20;
/// How long a holder keeps the lock before it releases it.
pub const HOLD_FOR: Local = 8;
/// The takeover's own margin on top of the drift term (one clock reading's granularity).
pub const TAKEOVER_MARGIN: Local = 1;
/// Allowed clock skew between hosts for the restart grace, in ticks.
pub const CLOCK_SKEW_TICKS: Tick = 1;
/// How late the server may expire a key past its TTL (its expiry timer, or 2.9's age sweep).
pub const EXPIRY_LAG: Tick = 4;
/// A pause (SIGSTOP, a GC stall) lasts this many ticks: longer than a lease.
pub const PAUSE_TICKS: Tick = 18;

/// How a client contends.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The new protocol: a queue entry, the lock only when first among live entries, and
    /// takeover at the lease's end.
    Queued,
    /// A client of the previous version (or Go nlock): no queue entry, a compare-and-set
    /// whenever the key looks free, no takeover. It may barge; it must never overlap.
    Barging,
}

/// Which parts of the protocol are on. `Protocol::FULL` is the design; each broken variant
/// turns one guard off, and the tests show the checker then finds a counterexample.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Protocol {
    /// The takeover waits `TTL * (1 + ρ)`, not only `TTL`.
    pub drift_margin: bool,
    /// A queued waiter takes the lock only when first among live entries.
    pub queue_order: bool,
    /// No grant while the bucket's data is younger than the TTL plus the clock skew.
    pub restart_grace: bool,
    /// Waiters take over at the lease's end (design (b)); off, they wait for the server.
    pub takeover: bool,
    /// A reset stream's sequence is moved past every earlier revision before the next create
    /// (`check_grace`'s purge to the clock, `src/store/grace.rs`).
    pub move_reset_sequence: bool,
    /// A release ends the lease's `is_held()` before its delete is sent. Today's code
    /// (`LockActor::release`, `src/lock/actor.rs`) keeps it true until the delete is
    /// confirmed: with the answer lost, the key is free while `is_held()` still says true.
    pub release_ends_lease: bool,
}

impl Protocol {
    /// The design as proposed: every guard on.
    pub const FULL: Protocol = Protocol {
        drift_margin: true,
        queue_order: true,
        restart_grace: true,
        takeover: true,
        move_reset_sequence: true,
        release_ends_lease: true,
    };

    /// How long after seeing the holder's write at local time `t` a waiter may take over:
    /// `TTL * (1 + ρ) + margin`, or without the drift term `TTL + margin`.
    pub fn takeover_wait(&self) -> Local {
        let drift = if self.drift_margin {
            TTL * DRIFT_NUM / RATE_NORMAL
        } else {
            0
        };
        TTL + drift + TAKEOVER_MARGIN
    }
}

/// How many faults of each kind one run may suffer (each is also free not to happen).
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub struct Faults {
    /// Messages lost.
    pub losses: u8,
    /// Messages delayed by one more tick (a message is otherwise delivered at the tick after
    /// it was sent, or when its paused receiver resumes).
    pub delays: u8,
    /// Processes paused for `PAUSE_TICKS`.
    pub pauses: u8,
    /// Processes crashed for good.
    pub crashes: u8,
    /// Server data resets (a memory server restarted, every node of a cluster down).
    pub resets: u8,
    /// Waiters that give up (an acquire timed out or dropped).
    pub give_ups: u8,
}

/// One check: the clients, the faults, the protocol, the horizon.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The clients, by kind; each acquires once.
    pub clients: Vec<Kind>,
    /// Which clock rates a client may have (from 2 to 6 units per tick).
    pub rates: Vec<Local>,
    /// The faults allowed.
    pub faults: Faults,
    /// The protocol's guards.
    pub protocol: Protocol,
    /// No step after this tick.
    pub horizon: Tick,
    /// Whether a takeover must be reachable (a `sometimes` property: the check then shows
    /// the design's takeover is not dead code). Only where the expiry lag leaves it room: a
    /// fast waiter's clock.
    pub expect_takeover: bool,
    /// Whether to check that every live client is eventually granted (needs a horizon long
    /// enough for the slowest path; the broken variants check safety only).
    pub check_liveness: bool,
}
