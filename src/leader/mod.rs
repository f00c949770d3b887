//! Leadership on one lock key: a candidate per process campaigns for the key; while it holds
//! it, it runs a role actor the caller supplies; anyone can ask who leads and follow changes.
//!
//! Built on the caller's API only (`LockManager`, `LockHandle`, `Lease`, `LockEvents`,
//! `LockOptions`): nothing below this module knows it exists.
//!
//! # Layout
//! - `options.rs`: [`ElectorOptions`] and the candidate record stored in the lock value.
//! - `term.rs`: [`Term`], what a role gets: key, fencing token, lease, a way to step down.
//! - `role.rs`: starting one role actor in a context of its own, stopping it, and seeing it
//!   end (stopped, or panicked).
//! - `history.rs`: the key's recent changes, to tell a clean handoff from an unclean one
//!   (the lock-delay).
//! - `campaign.rs`: the loop of one candidate: campaign, lead (supervise the role), stop the
//!   role, release, back off, campaign again.
//! - `elector.rs`: [`ElectorActor`] and its messages, and [`Elector`], the handle.
//! - `observe.rs`: [`Leader`], [`LeaderChange`], [`LeaderChanges`] and
//!   [`LeaderSubscription`], for observers in any process.
//!
//! # Order at the end of a term
//! Whatever ends a term (a loss of the lock, a resign, a step-down, a shutdown), the
//! candidate stops reporting itself leader at once, the role is told to stop, and the lock
//! is kept refreshed until the role has stopped and released only then. A role still
//! running after `stop_timeout` leaves the term to expire at its lease deadline (no release,
//! no more refreshes): another candidate cannot lead while this candidate's role still
//! runs, except for a role that outlives its lease (lost, or past `stop_timeout`).

mod campaign;
mod elector;
mod history;
mod observe;
mod options;
mod role;
mod term;

pub use elector::{Elector, ElectorActor, ElectorStatus, Resign, StopElecting};
pub use observe::{Leader, LeaderChange, LeaderChangeKind, LeaderChanges, LeaderSubscription};
/// The candidate record in a term's lock description, decoded; the web admin shows it.
#[cfg(feature = "actix-web")]
pub(crate) use options::CandidateRecord;
pub use options::{ElectorOptions, DEFAULT_LOCK_DELAY};
pub use term::Term;
