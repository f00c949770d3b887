//! Leadership: a periodic job that runs only on the leader.
//!
//! Needs: a nats-server 2.9+ with JetStream. With `NATS_URL` set, it uses that server;
//! otherwise it tries `nats://127.0.0.1:4222` (what `scripts/nats-server` starts), and if
//! nothing answers there it starts its own nats-server on a random loopback port (binary from
//! `NATS_SERVER_BIN`, or `nats-server` on PATH; `scripts/install-nats-server` installs one).
//!
//! Against a shared server, start it in three terminals:
//!
//! ```sh
//! scripts/nats-server                          # terminal 0
//! cargo run --example leader -- node-a         # terminals 1, 2, 3 (node-b, node-c)
//! ```
//!
//! One of them ticks "as leader"; stop it with Ctrl-C (it resigns: another takes over at
//! once) or kill it with `kill -9` (another takes over when its TTL of 3 s runs out). Each
//! prints every change of leadership it sees. On its own server it runs three candidates in
//! one process instead, resigns twice and stops.

#[path = "support/local_server.rs"]
mod local_server;

use std::time::Duration;

use futures::StreamExt;
use local_server::LocalServer;
use nlock::{Config, ElectorOptions, LockManager, Term};

const KEY: &str = "example.leader";

/// The leader-only job: a tick every second, each checked against the lease first. An async
/// function: started when a term begins; at its end `term.ending()` resolves, and the job
/// says goodbye before the term is released (up to the elector's `stop_timeout`).
async fn job(term: Term) {
    let me = term.identity().to_owned();
    println!("[{me}] role started, term token {}", term.token());
    let ending = term.ending(); // asked for: this role winds down by itself
    tokio::pin!(ending);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            () = &mut ending => break,
            _ = tick.tick() => {
                if !term.is_held() {
                    continue; // a paused process wakes here: the lease says no, do nothing
                }
                ticks += 1;
                // A real job passes term.token() to what it writes, to fence it.
                println!("[{me}] tick {ticks} as leader (token {})", term.token());
            }
        }
    }
    println!("[{me}] role stopped after {ticks} ticks");
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::builder()
        .bucket("nlock_example_leader")
        .ttl(Duration::from_secs(3))
        .build()?;
    let shared = match std::env::var("NATS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            let url = "nats://127.0.0.1:4222";
            let up = LockManager::connect(url, config.clone()).await.is_ok();
            up.then(|| url.to_owned())
        }
    };
    match shared {
        Some(url) => one_candidate(&url, config).await,
        None => three_candidates(config).await,
    }
}

/// One candidate per process, until Ctrl-C.
async fn one_candidate(url: &str, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let identity = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("pid-{}", std::process::id()));
    let manager = LockManager::connect(url, config).await?;
    println!("[{identity}] candidate for {KEY} on {url}; Ctrl-C resigns and exits");
    let _watch = watch(&manager, &identity).await?;
    let options = ElectorOptions::new(&identity).metadata(serde_json::json!({
        "pid": std::process::id(),
    }));
    let elector = manager.elector(KEY, options).run(job)?;
    tokio::signal::ctrl_c().await?;
    elector.shutdown().await; // stops the role, then releases: the next leader starts now
    manager.shutdown().await;
    Ok(())
}

/// Three candidates in one process, on a server of its own: two resigns, then a shutdown.
async fn three_candidates(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let server = LocalServer::start()?;
    println!(
        "nothing at 127.0.0.1:4222; started a nats-server at {}",
        server.url
    );
    let mut electors = Vec::new();
    let mut managers = Vec::new();
    for identity in ["node-a", "node-b", "node-c"] {
        let manager = LockManager::connect(&server.url, config.clone()).await?;
        electors.push(
            manager
                .elector(KEY, ElectorOptions::new(identity))
                .run(job)?,
        );
        managers.push(manager);
    }
    let _watch = watch(&managers[0], "observer").await?;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        if let Some(leader) = electors.iter().find(|e| e.is_leader()) {
            println!("-- the leader resigns (and stands aside for 10 s)");
            leader.resign(Duration::from_secs(10)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    println!("-- shutting down");
    for elector in &electors {
        elector.shutdown().await;
    }
    for manager in &managers {
        manager.shutdown().await;
    }
    Ok(())
}

/// Prints every change of leadership, as any process (leader or not) can see it.
async fn watch(
    manager: &LockManager,
    me: &str,
) -> Result<tokio::task::JoinHandle<()>, nlock::LockError> {
    let mut changes = manager.leader_changes(KEY).await?;
    let me = me.to_owned();
    Ok(actix::spawn(async move {
        while let Some(c) = changes.next().await {
            let who = c
                .leader
                .map(|l| format!("{} (token {})", l.identity, l.token));
            println!("[{me}] sees {:?}: {}", c.kind, who.unwrap_or_default());
        }
    }))
}
