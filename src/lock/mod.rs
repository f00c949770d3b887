//! The lock machinery: the manager actor and its per-key queues, the contender that takes a
//! key, the lock actor that keeps one, and the tenure operations they share.
//!
//! Layout: `manager.rs` (`LockManagerActor` and its messages), `contend.rs` (`Contender`),
//! `queue.rs` (`KeyQueue`, the per-key state machine), `actor.rs` (`LockActor`), `state.rs` (the lock actor's public messages, `LockState`,
//! `LockLost`), `tenure.rs` (`Tenure`: writes, refreshes and releases of one tenure).

pub(crate) mod actor;
pub(crate) mod contend;
pub(crate) mod manager;
pub(crate) mod queue;
pub(crate) mod requests;
pub(crate) mod state;
pub(crate) mod tenure;
