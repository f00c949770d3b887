//! [`ChildClient`]: a lock client in its own OS process (`nlock-fault-client`), so a test can
//! pause it with SIGSTOP or kill it for real while it holds a lock.
//!
//! The binary belongs to the workspace's `nlock-test-support` crate (`support/`), not to
//! nlock, so `cargo test` does not build it and `CARGO_BIN_EXE_*` does not name it. The first
//! [`ChildClient::start`] in a test process builds it with `cargo build -p nlock-test-support`
//! (a no-op when it is up to date, as after `scripts/test`'s own build) and takes its path
//! from cargo's own report.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long to wait for the child's answer to one command: they take milliseconds on
/// loopback; 10 s only bounds a failure.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `nlock-fault-client` process. Dropping it kills the process.
pub struct ChildClient {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Events read while waiting for another kind (a `lost` that arrives mid-command).
    pending: Vec<Value>,
}

impl ChildClient {
    /// Starts a client on `url` with `bucket` and lock TTL `ttl_s`, waits for it to be ready.
    pub async fn start(url: &str, bucket: &str, ttl_s: u64, retry_ms: u64) -> ChildClient {
        ChildClient::start_opts(url, bucket, ttl_s, retry_ms, false, "memory").await
    }

    /// As [`ChildClient::start`], with the restart grace on (the library's default; the
    /// fault client turns it off unless told).
    pub async fn start_with_grace(
        url: &str,
        bucket: &str,
        ttl_s: u64,
        retry_ms: u64,
        storage: &str,
    ) -> ChildClient {
        ChildClient::start_opts(url, bucket, ttl_s, retry_ms, true, storage).await
    }

    /// A client with the restart grace on or off and a `memory` or `file` bucket.
    pub async fn start_opts(
        url: &str,
        bucket: &str,
        ttl_s: u64,
        retry_ms: u64,
        grace: bool,
        storage: &str,
    ) -> ChildClient {
        let bin = tokio::task::spawn_blocking(fault_client_bin)
            .await
            .expect("build nlock-fault-client");
        let mut child = Command::new(bin)
            .args([url, bucket, &ttl_s.to_string(), &retry_ms.to_string()])
            .env("NLOCK_RESTART_GRACE", if grace { "on" } else { "off" })
            .env("NLOCK_STORAGE", storage)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start nlock-fault-client");
        let stdin = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("fault client said: {line}"),
                }
            }
        });
        let mut client = ChildClient {
            child,
            stdin,
            events,
            pending: Vec::new(),
        };
        client.expect("ready").await;
        client
    }

    /// Sends one command line.
    pub async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("write to client");
        self.stdin.flush().await.expect("flush client stdin");
    }

    /// Sends a command and returns its answer (the next event that is not a `lost`).
    pub async fn call(&mut self, command: &str) -> Value {
        self.send(command).await;
        self.next_answer().await
    }

    async fn next_answer(&mut self) -> Value {
        loop {
            let v = self.recv().await;
            if v["ev"] == "lost" {
                self.pending.push(v);
            } else {
                return v;
            }
        }
    }

    async fn recv(&mut self) -> Value {
        tokio::time::timeout(ANSWER_TIMEOUT, self.events.recv())
            .await
            .expect("fault client answers in time")
            .expect("fault client still running")
    }

    /// Waits for the next event of kind `ev` (events of other kinds before it are kept).
    pub async fn expect(&mut self, ev: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|v| v["ev"] == ev) {
            return self.pending.remove(i);
        }
        loop {
            let v = self.recv().await;
            if v["ev"] == ev {
                return v;
            }
            self.pending.push(v);
        }
    }

    /// The events of kind `ev` read so far while waiting for others, oldest first (kept).
    pub fn pending(&self, ev: &str) -> Vec<Value> {
        self.pending
            .iter()
            .filter(|v| v["ev"] == ev)
            .cloned()
            .collect()
    }

    /// After the process ended: reads everything it printed into the kept events.
    pub async fn drain(&mut self) {
        while let Ok(Some(v)) = tokio::time::timeout(ANSWER_TIMEOUT, self.events.recv()).await {
            self.pending.push(v);
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("child running")
    }

    /// SIGSTOP: the whole process, its timers and its refreshes, stand still.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
        super::wait_process_state(self.pid(), true);
    }

    /// SIGCONT.
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// SIGKILL, and waits for the process to end.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill fault client");
    }
}

/// The `nlock-fault-client` binary, built once per test process. Concurrent tests wait for
/// the first one's build; across processes cargo's own lock on the target dir serialises them.
/// Called from `spawn_blocking`: a build can take a minute from a clean clone, and the calling
/// test's runtime (its servers' clients, its proxies) must keep running meanwhile.
fn fault_client_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_fault_client)
}

/// Runs `cargo build -p nlock-test-support --bin nlock-fault-client` in this workspace with the
/// cargo running the tests (`$CARGO`), so the same toolchain and target dir (`CARGO_TARGET_DIR`
/// is inherited), and returns the executable's path from its JSON messages rather than
/// guessing the target dir's layout.
fn build_fault_client() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = std::process::Command::new(&cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "-p",
            "nlock-test-support",
            "--bin",
            "nlock-fault-client",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run {cargo:?} to build nlock-fault-client: {e}"));
    assert!(
        output.status.success(),
        "`cargo build -p nlock-test-support --bin nlock-fault-client` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact" && m["target"]["name"] == "nlock-fault-client"
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| {
            panic!(
                "cargo built nlock-test-support but reported no nlock-fault-client executable:\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}
