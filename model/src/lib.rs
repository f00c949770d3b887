//! A checked model of nlock's lock protocol (issue 14, item 4), for the `stateright` model
//! checker: what the code does today (acquire's compare-and-set, keep-alive, the holder's
//! local lease deadline, release, the restart grace) and two designs not yet implemented (a
//! queue across processes, and takeover at the lease's end), under message loss and delay,
//! process pauses, crashes, server data resets and bounded clock-rate drift.
//! `docs/protocol-model.md` says what is modelled and how, and where each part lives in the
//! code.
//!
//! Layout: `config` (the constants, the `Setup` of one check and the `Protocol` guards),
//! `state` (the server, clients and messages), `server` (the KV server's steps), `client`
//! (a client's steps), `protocol` (the `Model`: actions and properties).

#![deny(missing_docs)]

pub mod client;
pub mod config;
mod explain;
pub mod protocol;
pub mod server;
pub mod state;

pub use config::{Faults, Kind, Protocol, Setup};
pub use explain::explain;
pub use protocol::{Action, Fault, LockProtocol};
