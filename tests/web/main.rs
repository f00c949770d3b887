//! Tests of the actix-web integration (`nlock::web`, feature `actix-web`): a real
//! `HttpServer` on a loopback port, driven by awc, against a real nats-server.
#![allow(dead_code)]

#[path = "../it/fixture.rs"]
mod fixture;
#[path = "../it/harness/mod.rs"]
mod harness;

mod admin;
mod app;
mod browser;
mod errors;
mod example;
mod leader;
// nlock's metrics are recorded only with its feature `metrics` (on by default).
#[cfg(feature = "metrics")]
mod metrics;
mod request;
mod shutdown;
