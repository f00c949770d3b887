//! Leadership on one lock key: a candidate per process campaigns for the key; while it holds
//! it, it runs a role the caller supplies, an async function or an actix actor; anyone can
//! ask who leads and follow changes.
//!
//! Built on the layers below only (`client::LockManager`, `handle::LockHandle`,
//! `lease::Lease`, `observe::LockEvents`, `lock::requests::LockOptions`): nothing below this
//! module knows it exists, and it takes nothing from the crate root.
//!
//! # Layout
//! Each file imports only those listed after it (and `observe.rs` only `options.rs`):
//! - `request.rs`: [`ElectorRequest`], what `LockManager::elector` returns, and its verbs
//!   `run` (an async role) and `actor` (an actor role).
//! - `elector.rs`: [`Elector`], the handle, and the start of a campaign on an arbiter, with
//!   its hook in the manager's shutdown.
//! - `campaign.rs`: the loop of one candidate: campaign, lead (supervise the role), end the
//!   term (stop the role, release), back off, campaign again.
//! - `role.rs`: one run of a role, an actor in a context of its own or a future in a task
//!   of its own: started, stopped (a future not winding down by itself: dropped), cut short
//!   past `stop_timeout` (a future: dropped), and seen to end (stopped, returned, panicked).
//! - `backoff.rs`: the wait between campaigns, doubling and capped, with jitter.
//! - `history.rs`: the key's recent changes, to tell a clean handoff from an unclean one
//!   (the lock-delay).
//! - `status.rs`: [`ElectorStatus`], and what the campaign publishes to the handle.
//! - `term.rs`: [`Term`], what a role gets: key, fencing token, lease, a way to step down,
//!   the signal that the term is ending; and the commands a campaign takes.
//! - `options.rs`: [`ElectorOptions`] and the candidate record stored in the lock value.
//! - `observe.rs`: [`Leader`], [`LeaderChange`], [`LeaderChanges`] and
//!   [`LeaderSubscription`], for observers in any process.
//!
//! # Order at the end of a term
//! Whatever ends a term (a loss of the lock, a resign, a step-down, a shutdown), the
//! candidate stops reporting itself leader at once, [`Term::ending`] resolves, the role is
//! told to stop (an actor: `ctx.stop()`; an async role that did not ask for `ending`: its
//! future dropped at once), and the lock is kept refreshed until the role has stopped
//! (returned, or dropped) and released only then. A role still running after
//! `stop_timeout` leaves the term to expire at its lease deadline (no release, no more
//! refreshes); an async role is dropped then, an actor left running. So another candidate
//! cannot lead while this candidate's role still runs, except for a role that outlives its
//! lease (lost, or past `stop_timeout`).

mod backoff;
mod campaign;
mod elector;
mod history;
mod observe;
mod options;
mod request;
mod role;
mod status;
mod term;

pub use elector::Elector;
pub use observe::{Leader, LeaderChange, LeaderChangeKind, LeaderChanges, LeaderSubscription};
/// The candidate record in a term's lock description, decoded; the web admin shows it.
#[cfg(feature = "actix-web")]
pub(crate) use options::CandidateRecord;
pub use options::{ElectorOptions, DEFAULT_LOCK_DELAY};
pub use request::ElectorRequest;
pub use status::ElectorStatus;
pub use term::Term;
