//! Integration tests of nlock against real nats-server processes.
#![allow(dead_code)]

mod harness;
mod harness_selftest;

mod acquire;
mod connect;
mod consumers;
mod durations;
mod ends;
mod exclusion;
mod faults;
mod fixture;
mod go_interop;
mod input;
mod leader;
mod leader_async;
mod leader_measure;
mod leader_stop;
mod line;
mod lock_delay;
mod loss;
mod observe;
mod operator;
mod permissions;
mod reports;
mod restart;
mod runtimes;
mod rw;
mod semaphore;
mod takeover;
mod waiting;
