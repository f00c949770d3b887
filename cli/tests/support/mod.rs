//! What the command line's tests need: a real nats-server per test (JetStream, a random
//! loopback port, a private store), the built `nlock` binary with a clean environment, and
//! bounded waits on observable things (a file, a line, an exit).
//!
//! A small copy of the library harness's server start (tests/it/harness/server.rs): the cli
//! crate cannot reach the root's test modules.

#![allow(dead_code)]

pub mod auth;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A generous bound for what should take milliseconds; only a failure waits it out.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Pause between checks of a bounded wait.
const POLL: Duration = Duration::from_millis(10);

/// `NATS_SERVER_BIN`, else the pinned copy in the workspace's `.tools/`, else `PATH`.
fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let pinned =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/nats-server-2.15.1/bin/nats-server");
    if pinned.is_file() {
        return pinned;
    }
    PathBuf::from("nats-server")
}

/// One nats-server with JetStream; killed on drop.
pub struct Server {
    child: Child,
    dir: TempDir,
    pub url: String,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with_config(None)
    }

    /// A server with `config` (authorization, TLS, accounts, ...) as its configuration file
    /// besides the usual flags. A caller whose config requires credentials waits for
    /// JetStream itself (the ports file comes before an account's JetStream is up).
    pub fn start_with_config(config: Option<&str>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(nats_server_bin());
        if let Some(config) = config {
            let path = dir.path().join("server.conf");
            std::fs::write(&path, config).unwrap();
            cmd.arg("-c").arg(path);
        }
        let child = cmd
            .args(["-a", "127.0.0.1", "-p", "-1", "-js"])
            .arg("-sd")
            .arg(dir.path().join("store"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nats-server (run scripts/install-nats-server): {e}")
            });
        let ports = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let text = eventually("nats-server writes its ports file", || {
            std::fs::read_to_string(&ports)
                .ok()
                .filter(|t| t.contains("\"nats\""))
        });
        let ports: serde_json::Value = serde_json::from_str(&text).unwrap();
        let url = ports["nats"][0].as_str().unwrap().to_owned();
        Server { child, dir, url }
    }
}

impl Server {
    /// Stops the server (SIGKILL): every client sees its connection drop.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port with the same
    /// store (what file storage kept is there again).
    pub fn start_again(&mut self) {
        let port = self.url.rsplit(':').next().unwrap().to_owned();
        self.child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &port, "-js"])
            .arg("-sd")
            .arg(self.dir.path().join("store"))
            .arg("-l")
            .arg(self.dir.path().join("server-again.log"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
    }

    /// Sends `sig` to the server process: SIGSTOP and SIGCONT freeze and resume it, which
    /// every client sees as a loss of its connection for that long.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with plain integers.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value, for at most [`PATIENCE`].
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(POLL);
    }
}

/// A directory for one test's files, and the environment every `nlock` there runs with:
/// no NATS_* or NLOCK_* variables from outside, and an empty nats configuration.
pub struct Scene {
    pub dir: TempDir,
}

impl Scene {
    pub fn new() -> Scene {
        Scene {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The nats configuration directory of this scene (`$XDG_CONFIG_HOME/nats`).
    pub fn nats_config(&self) -> PathBuf {
        self.path("config/nats")
    }

    /// `nlock` with this scene's environment, run in its directory, no server chosen.
    pub fn bare(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nlock"));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("NATS_") || name.starts_with("NLOCK_") {
                cmd.env_remove(&name);
            }
        }
        // Each test's own fresh server: nobody can hold a lock on an earlier life of its
        // buckets, so the restart grace would only make every first lock wait one TTL.
        cmd.env("NLOCK_NO_RESTART_GRACE", "true")
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// `nlock --server <server>`.
    pub fn nlock(&self, server: &Server) -> Command {
        let mut cmd = self.bare();
        cmd.arg("--server").arg(&server.url);
        cmd
    }

    /// Waits for a file the command under test writes, and returns its contents.
    pub fn wait_file(&self, name: &str) -> String {
        let path = self.path(name);
        eventually(&format!("{name} exists"), || {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|t| !t.is_empty())
        })
    }
}

/// The output of a finished command: exit code, stdout, stderr.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn output(cmd: &mut Command) -> Out {
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits for `child` to exit, for at most [`PATIENCE`] (then kills it and fails).
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("process {} did not exit", child.id());
        }
        std::thread::sleep(POLL);
    }
}

/// A process whose standard output is read line by line as it comes.
pub struct Lines {
    pub child: Child,
    rx: mpsc::Receiver<String>,
}

impl Lines {
    /// Reads standard output.
    pub fn spawn(cmd: &mut Command) -> Lines {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        Lines::reading(child, stdout)
    }

    /// Reads standard error.
    pub fn spawn_stderr(cmd: &mut Command) -> Lines {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        Lines::reading(child, stderr)
    }

    fn reading(child: Child, from: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { child, rx }
    }

    /// The next line, within [`PATIENCE`].
    pub fn next(&self) -> String {
        self.rx
            .recv_timeout(PATIENCE)
            .expect("a line within PATIENCE")
    }

    /// The next line containing `text`, skipping the others, within [`PATIENCE`] in all (a
    /// process printing other lines without end fails the wait too).
    pub fn next_containing(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line containing {text:?} within PATIENCE"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The next line that parses as JSON and satisfies `want`, skipping the others.
    pub fn next_json(&self, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let line = self.next();
            let value: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            if want(&value) {
                return value;
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
