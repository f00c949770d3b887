//! A nats-server of the example's own: JetStream on a random loopback port, its store in a
//! temp dir, killed and removed when dropped. Shared by the examples through `#[path]`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A nats-server child process with JetStream, on a random port, in a temp dir.
pub struct LocalServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    pub fn start() -> Result<LocalServer, Box<dyn std::error::Error>> {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let dir = tempfile::tempdir()?;
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1"])
            .arg("-sd")
            .arg(dir.path().join("store"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}; run scripts/demo, which installs it, or set NATS_SERVER_BIN"))?;
        let mut server = LocalServer {
            child,
            url: String::new(),
            _dir: dir,
        };
        // The server writes its ports file once it listens; 10 s is ample on loopback.
        let ports_file =
            server
                ._dir
                .path()
                .join(format!("{}_{}.ports", exe_name(&bin), server.child.id()));
        let started = std::time::Instant::now();
        while server.url.is_empty() {
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                let ports: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(url) = ports["nats"][0].as_str() {
                    server.url = url.to_owned();
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err("nats-server did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

fn exe_name(bin: &str) -> String {
    std::path::Path::new(bin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nats-server".into())
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
