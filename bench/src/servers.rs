//! The servers a run starts for itself: nats-server, etcd and redis-server, each a child
//! process on 127.0.0.1 with its own temp dir, killed (and its dir removed) on drop.
//!
//! A peer whose binary is missing is not an error: the caller skips it and says how to
//! install it.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tempfile::TempDir;

/// How long a server may take to listen. Loopback servers start in well under a second;
/// 15 s absorbs a loaded 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running server process.
pub struct Server {
    child: Child,
    /// Holds the store, log and ports file; removed on drop.
    dir: TempDir,
    pub name: &'static str,
    pub url: String,
    pub version: String,
    /// The command line, for the report.
    pub flags: Vec<String>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `env` if set, else the first of `candidates` that exists, else `name` on PATH.
pub fn find_bin(env: &str, name: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Some(p.clone());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago. The server binds it right after; on a quiet loopback
/// the race with another process is negligible, and a lost race fails loudly at start.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The first line of `<bin> --version` (or `<bin> version`).
pub fn version_of(bin: &Path, arg: &str) -> String {
    Command::new(bin)
        .arg(arg)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn spawn(
    name: &'static str,
    bin: &Path,
    args: Vec<String>,
    dir: TempDir,
    version: String,
) -> Result<Server> {
    let log = File::create(dir.path().join("server.log"))?;
    let child = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut flags = vec![bin.display().to_string()];
    flags.extend(args);
    Ok(Server {
        child,
        dir,
        name,
        url: String::new(),
        version,
        flags,
    })
}

fn wait_tcp(server: &mut Server, addr: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!(
                "{} exited ({status}) before listening:\n{}",
                server.name,
                server.log_tail()
            );
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "{} not listening on {addr} after {READY_TIMEOUT:?}",
                server.name
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nats-server with JetStream on a random port (`-p -1`), its store in the temp dir.
pub fn start_nats(bin: &Path) -> Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix("nlock-bench-nats")
        .tempdir()?;
    let args = vec![
        "-js".to_owned(),
        "-a".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        "-1".to_owned(),
        "-sd".to_owned(),
        dir.path().join("store").display().to_string(),
        "--ports_file_dir".to_owned(),
        dir.path().display().to_string(),
    ];
    let version = version_of(bin, "--version");
    let mut server = spawn("nats-server", bin, args, dir, version)?;
    let exe = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nats-server".into());
    let ports_file = server
        .dir
        .path()
        .join(format!("{exe}_{}.ports", server.pid()));
    let started = Instant::now();
    while server.url.is_empty() {
        if let Ok(text) = std::fs::read_to_string(&ports_file) {
            let ports: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(url) = ports["nats"][0].as_str() {
                server.url = url.to_owned();
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("nats-server exited ({status}):\n{}", server.log_tail());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("nats-server wrote no ports file within {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The flags as a reader would type them: the temp paths say nothing.
    server.flags = vec![
        "nats-server".into(),
        "-js -a 127.0.0.1 -p -1 -sd <tmp>/store".into(),
    ];
    Ok(server)
}

/// redis-server without persistence on a random port.
pub fn start_redis(bin: &Path) -> Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix("nlock-bench-redis")
        .tempdir()?;
    let port = free_port()?;
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let version = version_of(bin, "--version");
    let mut server = spawn("redis-server", bin, args, dir, version)?;
    let addr = format!("127.0.0.1:{port}");
    wait_tcp(&mut server, &addr)?;
    server.url = format!("redis://{addr}/");
    server.flags = vec![
        "redis-server".into(),
        "--port <random> --bind 127.0.0.1 --save \"\" --appendonly no".into(),
    ];
    Ok(server)
}

/// A single-member etcd. Its data dir is on tmpfs (/dev/shm) when there is one, so its
/// fsyncs cost about what NATS memory storage costs; the report says which was used.
pub fn start_etcd(bin: &Path) -> Result<Server> {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("nlock-bench-etcd").clone();
    let (dir, on_tmpfs) = if shm.is_dir() {
        (builder.tempdir_in(shm)?, true)
    } else {
        (builder.tempdir()?, false)
    };
    let (client, peer) = (free_port()?, free_port()?);
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    let args: Vec<String> = [
        "--name",
        "bench",
        "--data-dir",
        &dir.path().join("data").display().to_string(),
        "--listen-client-urls",
        &c,
        "--advertise-client-urls",
        &c,
        "--listen-peer-urls",
        &p,
        "--initial-advertise-peer-urls",
        &p,
        "--initial-cluster",
        &format!("bench={p}"),
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let version = version_of(bin, "--version");
    let mut server = spawn("etcd", bin, args, dir, version)?;
    wait_tcp(&mut server, &format!("127.0.0.1:{client}"))?;
    server.url = c;
    server.flags = vec![
        "etcd".into(),
        format!(
            "--name bench --data-dir {}/<tmp> --listen-client-urls http://127.0.0.1:<random> \
             (single member, default snapshot and fsync settings)",
            if on_tmpfs { "/dev/shm" } else { "/tmp" }
        ),
    ];
    Ok(server)
}

/// CPU time a process has used, in nanoseconds, summed over its threads' schedstat (more
/// precise than the 10 ms ticks of /proc/<pid>/stat).
pub fn process_cpu_precise(pid: u32) -> Result<Duration> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(Duration::from_nanos(total))
}
