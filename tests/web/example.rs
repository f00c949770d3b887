//! The web example (`examples/web.rs`) as a person runs it: a child process stopped with
//! SIGINT (Ctrl-C) or SIGTERM while a request holds a lock. Both stops are graceful: the
//! request finishes, the example says what it released, and the bucket (read with a plain
//! NATS client, not nlock) holds no key afterwards.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;

/// The example's default bucket (it runs with `Config::default()`).
const BUCKET: &str = "distributed_locks";

/// The example's executable, built once per test process with the cargo running the tests
/// (`cargo test --test web` does not build examples). Called from `spawn_blocking`.
pub(crate) fn example_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let output = std::process::Command::new(&cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "--quiet",
                "--example",
                "web",
                "--features",
                "actix-web,metrics",
                "--message-format=json-render-diagnostics",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build --example web");
        assert!(
            output.status.success(),
            "cargo build --example web failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "web")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reports the example's executable")
    })
}

/// The keys with a value in the bucket, read with a plain client.
async fn keys_in(env: &Env) -> Vec<String> {
    let js = async_nats::jetstream::new(env.raw().await);
    let Ok(kv) = js.get_key_value(BUCKET).await else {
        return Vec::new();
    };
    let mut keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    keys.sort();
    keys
}

async fn stops_gracefully_on(sig: &str, name: &str) {
    let env = Env::start().await;
    let bin = tokio::task::spawn_blocking(|| example_bin().clone())
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(bin)
        .env("NATS_URL", env.server.url())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("NODE", "node-t")
        // The test's own fresh server has had no earlier holders.
        .env("NLOCK_NO_RESTART_GRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let pid = child.id().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let said = |what: &'static str| {
        let lines = lines.clone();
        move || {
            let lines = lines.clone();
            async move { lines.lock().unwrap().iter().any(|l| l.contains(what)) }
        }
    };
    must_eventually(PATIENCE, "the example listens", said("listening on")).await;
    must_eventually(PATIENCE, "the example leads", said("leading web.leader")).await;

    // A request in flight: it holds accounts.42 for 5 s.
    let url = format!("http://127.0.0.1:{port}/accounts/42/close");
    let request = actix_web::rt::spawn(async move {
        let mut response = crate::app::client().post(url).send().await?;
        let body = response.body().await.unwrap();
        Ok::<_, awc::error::SendRequestError>((
            response.status().as_u16(),
            String::from_utf8(body.to_vec()).unwrap(),
        ))
    });
    must_eventually(PATIENCE, "the request holds accounts.42", || async {
        keys_in(&env).await.contains(&"accounts.42".to_owned())
    })
    .await;
    assert_eq!(keys_in(&env).await, ["accounts.42", "web.leader"]);

    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let (code, body) = request
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the in-flight request was dropped on {name}: {e}"));
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("closed accounts.42 with token"), "{body}");
    let exit = tokio::time::timeout(PATIENCE * 4, child.wait())
        .await
        .expect("the example exits")
        .unwrap();
    assert!(exit.success(), "{exit}");
    reader.await.unwrap();
    let said = lines.lock().unwrap().join("\n");
    // The role stopped before the manager released the term's key and the example reported.
    let role_stopped = said.find("stopped leading web.leader").expect(&said);
    let reported = said.find("stopped on ").expect(&said);
    assert!(role_stopped < reported, "{said}");
    assert!(
        said.contains(&format!(
            "stopped on {name}: in-flight requests finished; released accounts.42, web.leader"
        )),
        "{said}"
    );
    assert_eq!(
        keys_in(&env).await,
        Vec::<String>::new(),
        "keys left behind"
    );
}

#[actix_web::test]
async fn ctrl_c_stops_the_example_gracefully_and_it_says_what_it_released() {
    stops_gracefully_on("-INT", "SIGINT").await;
}

#[actix_web::test]
async fn sigterm_stops_the_example_gracefully_and_it_says_what_it_released() {
    stops_gracefully_on("-TERM", "SIGTERM").await;
}
