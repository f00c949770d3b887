//! Test harness for nlock's integration tests: real `nats-server` processes (single node and
//! a 3-node cluster) plus a fault-injecting TCP proxy, and small async helpers.
//!
//! All waiting in the harness is bounded and measured on the wall clock
//! ([`std::time::Instant`]), so a test that pauses tokio's clock cannot make a deadline pass
//! early while a real server process is still starting.

pub mod child;
pub mod cluster;
pub mod history;
pub mod proxy;
pub mod resource;
pub mod server;

use std::future::Future;
use std::time::{Duration, Instant};

// Re-exports for the tests; not every test binary configuration uses each of them.
#[allow(unused_imports)]
pub use cluster::NatsCluster;
#[allow(unused_imports)]
pub use proxy::{ProxyMode, TcpProxy};
#[allow(unused_imports)]
pub use server::{
    binary_version, nats_server_bin, wait_jetstream_api, wait_jetstream_api_as, NatsServer,
    NatsServerBuilder, ProbeAuth,
};

/// How often [`wait_until`] re-evaluates its condition. 10 ms keeps tests responsive without
/// busy-looping on the 2-core CI machine.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Polls `cond` until it yields `true` or `timeout` (wall clock) has passed; returns whether it
/// became true. Exists so tests synchronise on observable state instead of sleeping. The
/// condition is always evaluated at least once, and once more at the deadline.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// Like [`wait_until`], but panics with `what` and the timeout when the condition never held:
/// the common case in tests, where a missed condition is a failure.
pub async fn must_eventually<F, Fut>(timeout: Duration, what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !wait_until(timeout, cond).await {
        panic!("timed out after {timeout:?} waiting for: {what}");
    }
}

/// Makes one round trip to the server on `client`'s connection (a request nobody answers, which
/// the server rejects with a "no responders" status). Exists because `Client::flush` in
/// async-nats 0.51 only flushes the socket: it does not prove that the server has processed an
/// earlier SUB, so another connection publishing right after could still miss it.
pub async fn server_round_trip(client: &async_nats::Client) {
    // A loopback server answers at once; 5 s only guards against a hung server.
    let req = async_nats::Request::new().timeout(Some(Duration::from_secs(5)));
    let subject = format!(
        "_HARNESS.SYNC.{}",
        client.new_inbox().replace("_INBOX.", "")
    );
    match client.send_request(subject, req).await {
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
        other => panic!("round trip to server failed: {other:?}"),
    }
}

/// Installs a `tracing` subscriber that writes to the test's captured output, filtered by
/// `RUST_LOG` (default: warnings only). Safe to call from every test: later calls are no-ops.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Waits (bounded, 5 s) until process `pid` is stopped (`T` in /proc/<pid>/stat) or, with
/// `stopped` false, running again. `kill -STOP` returns before every thread of the target has
/// stopped; a test that checks "nothing answers now" must wait for the stop to take effect.
pub fn wait_process_state(pid: u32, stopped: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state is the first field after the parenthesised command name.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        let is_stopped = matches!(state, Some("T") | Some("t"));
        if is_stopped == stopped || state.is_none() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} did not reach stopped={stopped}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wall-clock microseconds since the Unix epoch: the clock the child processes stamp their
/// events with, one for every process on the machine.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}
