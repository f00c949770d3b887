//! A tour of nlock: three "replicas" (separate managers, separate NATS connections) share
//! locks. Uses `NATS_URL` if set; otherwise starts its own nats-server on a random loopback
//! port (binary from `NATS_SERVER_BIN`, or `nats-server` on PATH) and removes it on exit.
//!
//! Run it with `scripts/demo`.

#[path = "support/local_server.rs"]
mod local_server;

use std::time::Duration;

use futures::StreamExt;
use local_server::LocalServer;
use nlock::{Config, DoOutcome, LeaseEnd, LockError, LockEvent, LockManager, LockOptions};

#[actix::main]
async fn main() {
    // The error's text, not its Debug form.
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _server) = match std::env::var("NATS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = LocalServer::start()?;
            (server.url.clone(), Some(server))
        }
    };
    println!("NATS at {url}");

    let config = Config::builder()
        .bucket("nlock_demo")
        .ttl(Duration::from_secs(3))
        .build()?;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(LockManager::connect(&url, config.clone()).await?);
    }
    let caps = replicas[0].capabilities();
    println!(
        "server {}: per-lock TTL {}, expiry events {}\n",
        caps.server_version, caps.per_lock_ttl, caps.expiry_events
    );
    // A bucket whose data is younger than one TTL (new, or lost in a memory-storage restart)
    // grants nothing until a holder of the data it replaced can no longer count its lease.
    if let Some(grace) = replicas[0].restart_grace().await? {
        println!(
            "The bucket is new: no lock is granted for {:.1} s (the restart grace: one TTL plus \
             clock skew; see GUARANTEES.md). Waiting acquires wait it out.\n",
            grace.remaining.as_secs_f64()
        );
    }

    println!("1. Three replicas take turns on one key; fencing tokens only go up.");
    let mut turns = Vec::new();
    for (i, m) in replicas.iter().enumerate() {
        let m = m.clone();
        turns.push(actix::spawn(async move {
            for _ in 0..2 {
                let lock = m
                    .acquire("demo.report", Some(Duration::from_secs(10)))
                    .await?;
                println!("   replica {i} holds demo.report, token {}", lock.token());
                tokio::time::sleep(Duration::from_millis(50)).await; // the "work"
                lock.release().await?;
            }
            Ok::<(), LockError>(())
        }));
    }
    for t in turns {
        t.await??;
    }

    println!("\n2. A busy lock says who holds it.");
    let opts = LockOptions::default().description("rebuilding the search index");
    let held = replicas[0]
        .lock("demo.index")
        .options(opts)
        .acquire()
        .await?;
    match replicas[1].try_acquire("demo.index").await {
        Err(e) => println!("   replica 1: {e}"),
        Ok(_) => println!("   replica 1 unexpectedly got it"),
    }
    held.release().await?;

    println!("\n3. Go's Do: all three replicas try the nightly job; one runs it.");
    let runs = futures::future::join_all(replicas.iter().enumerate().map(|(i, m)| async move {
        let outcome = m
            .run_if_free("demo.nightly", |lease| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                lease.token()
            })
            .await;
        (i, outcome)
    }))
    .await;
    for (i, outcome) in runs {
        match outcome? {
            DoOutcome::Executed { value, .. } => {
                println!("   replica {i}: ran the job with fencing token {value}")
            }
            DoOutcome::Lost { reason, .. } => println!("   replica {i}: lost the lock: {reason}"),
            DoOutcome::Skipped { .. } => {
                println!("   replica {i}: skipped, another replica runs it")
            }
            _ => println!("   replica {i}: an outcome this demo does not know"),
        }
    }

    println!(
        "\n4. An operator breaks a lock behind its holder's back: the holder is told at once."
    );
    let mut events = replicas[0].events("demo.fragile").await?; // an observer, in any process
    let lock = replicas[2].acquire("demo.fragile", None).await?;
    let breaking = std::time::Instant::now();
    // What `nlock release --force` does: a delete that expects the tenure read (never another
    // one), whose marker names the broken holder and its token for every watcher.
    let broken = replicas[1]
        .force_release("demo.fragile", Some(lock.token()))
        .await?;
    println!(
        "   replica 1 broke {}: token {}, held by {}",
        broken.key, broken.token, broken.holder
    );
    let lost = tokio::time::timeout(Duration::from_secs(5), lock.lost()).await?;
    println!(
        "   replica 2 lost {} (token {}) {:.1} ms after the break began: {}",
        lost.key,
        lost.token,
        breaking.elapsed().as_secs_f64() * 1000.0,
        lost.reason
    );
    for _ in 0..2 {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            println!("   observer on replica 0: {}", event_text(&e));
        }
    }

    println!("\n5. Shutdown tells each holder before it releases.");
    let held = replicas[1].acquire("demo.shutdown", None).await?;
    let lease = held.lease().clone(); // what the code doing the work would hold
    replicas[1].shutdown().await;
    let end = match lease.end() {
        Some(LeaseEnd::Released) => "released".to_owned(),
        Some(LeaseEnd::Lost { reason }) => format!("lost ({reason})"),
        Some(_) => "ended".to_owned(),
        None => "not yet".to_owned(),
    };
    println!("   replica 1's lease on demo.shutdown ended: {end}");
    println!(
        "   replica 0 takes it: token {}",
        replicas[0].try_acquire("demo.shutdown").await?.token()
    );

    for m in &replicas {
        m.shutdown().await;
    }
    println!("\ndone");
    Ok(())
}

/// A lock event as a line for people, as `nlock watch` prints it.
fn event_text(e: &LockEvent) -> String {
    let kind = e.kind.as_str();
    let mut line = format!("{} {kind}", e.key);
    if let Some(token) = e.token {
        line.push_str(&format!(" token {token}"));
    }
    if let Some(h) = &e.holder {
        line.push_str(&format!(" by {h}"));
    }
    line
}
