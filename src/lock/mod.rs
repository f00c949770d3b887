//! The lock machinery: the manager actor and its per-key queues, the contender that takes a
//! key, the lock actor that keeps one, and the tenure operations they share.
//!
//! Layout: `manager.rs` (`LockManagerActor`; `manager/grant.rs` serves a waiter: contender,
//! then lock actor and handle), `requests.rs` (the manager's public messages and
//! `LockOptions`), `queue.rs` (`KeyQueue`, the per-key state machine: no actix, no async, no
//! NATS), `contend.rs` (`Contender`), `actor.rs` (`LockActor`; `actor/keep_alive.rs` its
//! refresh timer), `state.rs` (the lock actor's public messages, `LockState`, `LockLost`),
//! `tenure.rs` (`Tenure`: writes, refreshes and releases of one tenure), `delay.rs` (the
//! lock-delay after an unclean end of the previous tenure), `line.rs` (the line across
//! processes: entries, the manager's view of them, a contender's seat), `meter.rs` (outcomes
//! in the metrics' terms, `crate::telemetry`).

pub(crate) mod actor;
pub(crate) mod contend;
pub(crate) mod delay;
pub(crate) mod granted;
pub(crate) mod lease;
pub(crate) mod line;
pub(crate) mod loss;
pub(crate) mod manager;
mod meter;
pub(crate) mod queue;
pub(crate) mod requests;
pub(crate) mod state;
pub(crate) mod tenure;
