//! A scriptable lock client in its own OS process, for the fault-injection tests (a holder
//! that can really be paused with SIGSTOP or killed) and for trying nlock by hand.
//!
//! Usage: `nlock-fault-client <nats-url> <bucket> <ttl-seconds> [retry-ms]`
//!
//! Reads one command per line on stdin and answers with one JSON object per line on stdout:
//! - `acquire <key> <timeout-ms>` / `try <key>`: `{"ev":"acquired","key","token"}` or
//!   `{"ev":"error","key","kind","error"}`; a later loss prints `{"ev":"lost","key","token","reason"}`.
//! - `release <key>`: `{"ev":"released","key"}` or an error.
//! - `held <key>`: `{"ev":"held","key","held":bool}`.
//! - `res-read <subject>`: asks a test resource for its value: `{"ev":"read","value"}`.
//! - `res-write <subject> <key> <value>`: writes to a test resource with the key's fencing
//!   token (0 if not held): `{"ev":"write","accepted":bool}`.
//! - `exit`: releases everything and exits.
//!
//! The resource protocol is the test's: a request with `{"token":u64,"value":i64}`, answered
//! with `accepted` or `rejected`.

use std::collections::HashMap;
use std::time::Duration;

use nlock::{Config, LockError, LockHandle, LockLost, LockManager};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

fn emit(v: serde_json::Value) {
    println!("{v}");
}

fn emit_error(key: &str, e: &LockError) {
    emit(
        json!({"ev": "error", "key": key, "kind": format!("{:?}", e.kind()), "error": e.to_string()}),
    );
}

#[actix::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("nlock-fault-client: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, bucket, ttl, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: nlock-fault-client <nats-url> <bucket> <ttl-seconds> [retry-ms]".into(),
        );
    };
    let mut config = Config::builder()
        .bucket(bucket.clone())
        .ttl(Duration::from_secs(ttl.parse()?))
        .request_timeout(Duration::from_millis(500));
    if let Some(ms) = rest.first() {
        config = config.retry_interval(Duration::from_millis(ms.parse()?));
    }
    let client = async_nats::connect(url.as_str()).await?;
    let manager = LockManager::start(client.clone(), config.build()?).await?;
    emit(json!({"ev": "ready", "owner": manager.owner()}));

    let printer = actix::Actor::start(LossPrinter);
    let mut locks: HashMap<String, LockHandle> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["acquire", key, ms] => {
                let timeout = Duration::from_millis(ms.parse()?);
                got(
                    &mut locks,
                    &printer,
                    key,
                    manager.acquire(key, Some(timeout)).await,
                );
            }
            ["try", key] => got(&mut locks, &printer, key, manager.try_acquire(key).await),
            ["release", key] => match locks.remove(*key) {
                Some(lock) => match lock.release().await {
                    Ok(()) => emit(json!({"ev": "released", "key": key})),
                    Err(e) => emit_error(key, &e),
                },
                None => emit(json!({"ev": "error", "key": key, "kind": "NotHeld"})),
            },
            ["held", key] => {
                let held = locks.get(*key).is_some_and(|l| l.is_held());
                emit(json!({"ev": "held", "key": key, "held": held}));
            }
            ["res-read", subject] => {
                let reply = client.request(subject.to_string(), "".into()).await?;
                let value: i64 = String::from_utf8_lossy(&reply.payload).parse()?;
                emit(json!({"ev": "read", "value": value}));
            }
            ["res-write", subject, key, value] => {
                let token = locks.get(*key).map(|l| l.token()).unwrap_or(0);
                let value: i64 = value.parse()?;
                let body = json!({"token": token, "value": value}).to_string();
                let reply = client.request(subject.to_string(), body.into()).await?;
                let accepted = reply.payload.as_ref() == b"accepted";
                emit(json!({"ev": "write", "accepted": accepted, "token": token}));
            }
            ["exit"] => break,
            _ => emit(json!({"ev": "error", "kind": "BadCommand", "error": line})),
        }
    }
    for (_, lock) in locks.drain() {
        let _ = lock.release().await;
    }
    manager.shutdown().await;
    Ok(())
}

/// Prints every `LockLost` it is sent.
struct LossPrinter;

impl actix::Actor for LossPrinter {
    type Context = actix::Context<Self>;
}

impl actix::Handler<LockLost> for LossPrinter {
    type Result = ();
    fn handle(&mut self, lost: LockLost, _: &mut actix::Context<Self>) {
        let reason = format!("{:?}", lost.reason);
        emit(json!({"ev": "lost", "key": lost.key, "token": lost.token, "reason": reason}));
    }
}

/// Records a new lock, subscribed so that its loss is printed when it happens.
fn got(
    locks: &mut HashMap<String, LockHandle>,
    printer: &actix::Addr<LossPrinter>,
    key: &str,
    result: Result<LockHandle, LockError>,
) {
    match result {
        Ok(lock) => {
            lock.subscribe(printer.clone().recipient());
            emit(json!({"ev": "acquired", "key": key, "token": lock.token()}));
            locks.insert(key.to_owned(), lock);
        }
        Err(e) => emit_error(key, &e),
    }
}
