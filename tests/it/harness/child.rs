//! [`ChildClient`]: a lock client in its own OS process (`nlock-fault-client`), so a test can
//! pause it with SIGSTOP or kill it for real while it holds a lock.

use std::process::Stdio;
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_nlock-fault-client"))
            .args([url, bucket, &ttl_s.to_string(), &retry_ms.to_string()])
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

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}
