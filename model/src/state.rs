//! The model's state: the KV server, the clients and the messages in flight.

use crate::config::{Kind, Local, Tick};

/// A revision: the stream sequence of a key's last message. 0 means "no message" (free).
pub type Rev = u16;
/// A client's index (also its owner id in the values it writes).
pub type Id = u8;

/// The lock key's message at the server, if it has one that is a put.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct LockKey {
    /// Its revision.
    pub rev: Rev,
    /// Whose value it is.
    pub owner: Id,
    /// The server may expire it from this tick on (last write + TTL).
    pub expires_at: Tick,
}

/// A waiter's queue entry (`<key>.q.<owner>`), one per waiting client.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct EntryKey {
    /// Its revision (moves with each keep-alive write).
    pub rev: Rev,
    /// Its place in the queue: the revision that created it, kept in its value.
    pub ticket: Rev,
    /// The server may expire it from this tick on.
    pub expires_at: Tick,
}

/// The KV bucket on one server (its stream).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Server {
    /// The stream's last sequence.
    pub seq: Rev,
    /// The lock key.
    pub lock: Option<LockKey>,
    /// The queue entries, by owner.
    pub entries: Vec<Option<EntryKey>>,
    /// When the data began again (a reset, or a sequence move); `None`: long ago.
    pub began: Option<Tick>,
    /// Reset and not written since: the sequence went back (the code's "last < first").
    pub never_written: bool,
    /// Ghost: the highest sequence ever used, what a move goes past (the clock in
    /// microseconds, in the code).
    pub high_water: Rev,
    /// Ghost: the token of the last grant.
    pub last_token: Rev,
    /// Ghost: a grant's token was not above the one before.
    pub token_went_back: bool,
    /// Ghost: a queued client was granted while a live entry was ahead of its own.
    pub out_of_order: bool,
    /// Ghost: a takeover on the holder's last revision was granted.
    pub took_over: bool,
}

/// A compare-and-set's purpose on the lock key.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockOp {
    /// Create on a free key (expected: no message).
    Acquire,
    /// An earlier acquire of ours landed unanswered: prove it with a write on its revision.
    Claim,
    /// The holder's lease has certainly ended: write on exactly the revision seen.
    Takeover,
    /// Keep-alive.
    Refresh,
    /// Delete, expecting our revision.
    Release,
}

/// A queue entry operation.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryOp {
    /// Append (create, expected: no message).
    Create,
    /// Keep-alive (write on its revision; the ticket stays).
    Refresh,
    /// Leave the queue (delete on its revision).
    Delete,
}

/// The answer to a write.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteResult {
    /// Written at this revision (for a delete: the key is free).
    Ok(Rev),
    /// Wrong last sequence; what the key holds now (revision, and whether it is ours).
    Conflict(Option<(Rev, bool)>),
    /// Refused: the bucket is in its restart grace. Nothing was written.
    Grace,
}

/// What a message says. Times are the sender's clock when the request was sent (echoed in
/// the answer, so the sender knows which request it answers and when its lease began).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Body {
    /// Client to server: a write on the lock key.
    LockWrite {
        /// What it is for.
        op: LockOp,
        /// The expected revision (0: no message).
        expect: Rev,
        /// When it was sent.
        sent: Local,
        /// The highest revision the writer has seen (for the reset check).
        max_seen: Rev,
    },
    /// Client to server: a write on the sender's queue entry.
    EntryWrite {
        /// What it is for.
        op: EntryOp,
        /// The expected revision (0: no message).
        expect: Rev,
        /// When it was sent.
        sent: Local,
        /// The highest revision the writer has seen (for the reset check).
        max_seen: Rev,
    },
    /// Client to server: read the lock key and the queue.
    Look {
        /// When it was sent.
        sent: Local,
    },
    /// Server to client: the answer to a `LockWrite`.
    LockAnswer {
        /// What the write was for.
        op: LockOp,
        /// When it was sent.
        sent: Local,
        /// Its result.
        result: WriteResult,
    },
    /// Server to client: the answer to an `EntryWrite`.
    EntryAnswer {
        /// What the write was for.
        op: EntryOp,
        /// When it was sent.
        sent: Local,
        /// Its result.
        result: WriteResult,
    },
    /// Server to client: the answer to a `Look`.
    Seen {
        /// When the look was sent.
        sent: Local,
        /// The lock key: revision and owner.
        lock: Option<(Rev, Id)>,
        /// The client's own entry's revision.
        entry: Option<Rev>,
        /// Whether that entry is first among live entries (the holder's not counted).
        first: bool,
    },
    /// Server to every other client (each manager's change stream): the lock key changed.
    Changed {
        /// The key now: (revision, owner), or `None` when freed (a delete, an expiry marker).
        lock: Option<(Rev, Id)>,
    },
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum To {
    /// The server, from this client.
    Server(Id),
    /// This client.
    Client(Id),
}

/// A message in flight.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Msg {
    /// Delivered at this tick (the one after it was sent, unless a delay fault moved it on
    /// or its receiver is paused then), or lost.
    pub due: Tick,
    /// Its receiver.
    pub to: To,
    /// What it says.
    pub body: Body,
}

/// Where a client is in its one acquisition.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Phase {
    /// Not started.
    Idle,
    /// Acquiring.
    Waiting,
    /// Holding, with its lease.
    Holding(Tenure),
    /// Its release is in flight; still holding until it is confirmed or the deadline passes.
    Releasing(Tenure),
    /// Finished: released, lost, or gave up.
    Done,
    /// Crashed.
    Crashed,
}

/// A tenure, as its holder sees it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Tenure {
    /// The fencing token.
    pub token: Rev,
    /// The revision its next write expects.
    pub rev: Rev,
    /// The lease deadline on the holder's clock: last acknowledged send + TTL − margin.
    pub deadline: Local,
    /// When it starts its release.
    pub release_at: Local,
    /// When it refreshes next.
    pub next_refresh: Local,
}

/// A request in flight, as its sender remembers it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Pending<Op> {
    /// What it asked.
    pub op: Op,
    /// When it was sent, on the sender's clock.
    pub sent: Local,
}

/// One client process.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Client {
    /// How it contends.
    pub kind: Kind,
    /// Its clock's rate, local units per tick (drift within ±ρ).
    pub rate: Local,
    /// Where it is.
    pub phase: Phase,
    /// Paused until this tick (its clock runs on).
    pub paused_until: Tick,
    /// Its lock request in flight.
    pub lock_req: Option<Pending<LockOp>>,
    /// Its queue-entry request in flight.
    pub entry_req: Option<Pending<EntryOp>>,
    /// When its look in flight was sent.
    pub look_sent: Option<Local>,
    /// Its entry: revision and local lease deadline (sent + TTL − margin).
    pub entry: Option<(Rev, Local)>,
    /// When it refreshes its entry next.
    pub entry_refresh_at: Local,
    /// The lock's last write it saw (revision, and when on its own clock), for a takeover.
    pub seen: Option<(Rev, Local)>,
    /// Its last look said its entry is first among live entries.
    pub first: bool,
    /// When it polls next.
    pub poll_at: Local,
    /// The highest revision it has seen.
    pub max_seen: Rev,
    /// Ghost: it was granted the lock.
    pub served: bool,
    /// Ghost: it gave up.
    pub gave_up: bool,
}

impl Client {
    /// Its clock at tick `now`.
    pub fn clock(&self, now: Tick) -> Local {
        Local::from(now) * self.rate
    }

    /// `is_held()` as the code's `Lease` answers it: holding, and the local deadline not
    /// passed (a lease told it is lost is `Done` here). With `release_ends_lease` off (today's
    /// code), also while its release is in flight.
    pub fn is_held(&self, now: Tick, release_ends_lease: bool) -> bool {
        match self.phase {
            Phase::Holding(t) => self.clock(now) < t.deadline,
            Phase::Releasing(t) if !release_ends_lease => self.clock(now) < t.deadline,
            _ => false,
        }
    }

    /// Whether it takes steps now.
    pub fn runs(&self, now: Tick) -> bool {
        self.phase != Phase::Crashed && now >= self.paused_until
    }
}

/// The whole system.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct State {
    /// Real time.
    pub now: Tick,
    /// The server.
    pub server: Server,
    /// The clients.
    pub clients: Vec<Client>,
    /// Messages in flight, sorted (a bag).
    pub net: Vec<Msg>,
    /// Faults still allowed.
    pub left: crate::config::Faults,
}

impl State {
    /// Puts a message in flight, keeping the bag sorted.
    pub fn send(&mut self, to: To, body: Body) {
        let m = Msg {
            due: self.now + 1,
            to,
            body,
        };
        let at = self.net.partition_point(|x| *x <= m);
        self.net.insert(at, m);
    }
}
