//! A scriptable lock client in its own OS process, for the fault-injection tests (a holder
//! that can really be paused with SIGSTOP or killed) and for trying nlock by hand.
//!
//! Usage: `nlock-fault-client <nats-url> <bucket> <ttl-seconds> [retry-ms]`
//!
//! Reads one command per line on stdin and answers with one JSON object per line on stdout:
//! - `acquire <key> <timeout-ms>` / `try <key>`: `{"ev":"acquired","key","token"}` or
//!   `{"ev":"error","key","kind","error"}`; a later loss prints `{"ev":"lost","key","token","reason"}`.
//! - `sem <name> <permits> <timeout-ms>`: a permit of the semaphore `name`, kept (and
//!   released, watched, ...) under `name`; `acquired` names the semaphore as its key.
//! - `release <key>`: `{"ev":"released","key"}` or an error.
//! - `held <key>`: `{"ev":"held","key","held":bool}`.
//! - `watch-held <key>`: watches the held lock's `is_held()` every millisecond; when it turns
//!   false, prints `{"ev":"unheld","key","token","last_held_us","deadline_us"}` (the
//!   wall-clock time of the last check that said true, and the lease deadline that check saw,
//!   as a wall-clock time). `acquired` carries `t_us`, read right after the grant.
//!
//! The environment variable `NLOCK_RESTART_GRACE=on` turns the restart grace on (it is off by
//! default: each test starts its own fresh server); `NLOCK_STORAGE=file` makes a file bucket.
//! - `res-read <subject>`: asks a test resource for its value: `{"ev":"read","value"}`.
//! - `res-write <subject> <key> <value>`: writes to a test resource with the key's fencing
//!   token (0 if not held): `{"ev":"write","accepted":bool}`.
//! - `elect <key> <identity> [ttl-s]`: starts a candidate for leadership of `key` (lock-delay
//!   1 s; with a TTL of its own, sent as `Nats-TTL`, when given)
//!   whose role ticks every 20 ms: `{"ev":"elector","key"}` at once, then
//!   `{"ev":"role-start","token","t_us"}`, `{"ev":"tick","token","held","t_us"}` and
//!   `{"ev":"role-stop","token","t_us"}` as they happen (`t_us`: wall clock, microseconds).
//! - `resign <key> <hold-off-ms>`: the candidate on `key` resigns: `{"ev":"resigned","key"}`.
//! - `observe <key>`: prints every leadership change of `key`:
//!   `{"ev":"leader","kind","identity","token","revision"}`.
//! - `exit`: releases everything and exits.
//!
//! The resource protocol is the test's: a request with `{"token":u64,"value":i64}`, answered
//! with `accepted` or `rejected`.

use std::collections::HashMap;
use std::time::Duration;

use nlock::{Config, Elector, ElectorOptions, LockError, LockHandle, LockLost, LockManager, Term};
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
    let grace = std::env::var("NLOCK_RESTART_GRACE").is_ok_and(|v| v == "on");
    let storage = match std::env::var("NLOCK_STORAGE").as_deref() {
        Ok("file") => nlock::Storage::File,
        _ => nlock::Storage::Memory,
    };
    let mut config = Config::builder()
        .restart_grace(grace)
        .storage(storage)
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
    let mut electors: HashMap<String, Elector> = HashMap::new();
    let mut observers = Vec::new();
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
                    manager
                        .acquire(key, Some(timeout))
                        .await
                        .map_err(LockError::from),
                );
            }
            ["sem", name, permits, ms] => {
                let timeout = Duration::from_millis(ms.parse()?);
                got(
                    &mut locks,
                    &printer,
                    name,
                    manager
                        .semaphore(name, permits.parse()?)
                        .timeout(timeout)
                        .acquire()
                        .await
                        .map_err(LockError::from),
                );
            }
            ["try", key] => got(
                &mut locks,
                &printer,
                key,
                manager.try_acquire(key).await.map_err(LockError::from),
            ),
            ["release", key] => match locks.remove(*key) {
                Some(lock) => match lock.release().await.map_err(LockError::from) {
                    Ok(()) => emit(json!({"ev": "released", "key": key})),
                    Err(e) => emit_error(key, &e),
                },
                None => emit(json!({"ev": "error", "key": key, "kind": "NotHeld"})),
            },
            ["held", key] => {
                let held = locks.get(*key).is_some_and(|l| l.is_held());
                emit(json!({"ev": "held", "key": key, "held": held}));
            }
            ["watch-held", key] => match locks.get(*key) {
                Some(lock) => {
                    let lease = lock.lease().clone();
                    let watched = key.to_string();
                    tokio::spawn(async move {
                        let (mut last_held_us, mut deadline_us) = (0, 0);
                        while lease.is_held() {
                            last_held_us = now_us();
                            let left = u64::try_from(lease.time_left().as_micros());
                            deadline_us = last_held_us.saturating_add(left.unwrap_or(u64::MAX));
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        emit(
                            json!({"ev": "unheld", "key": watched, "token": lease.token(),
                            "last_held_us": last_held_us, "deadline_us": deadline_us}),
                        );
                    });
                    emit(json!({"ev": "watching", "key": key}));
                }
                None => emit(json!({"ev": "error", "key": key, "kind": "NotHeld"})),
            },
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
            ["elect", key, identity, rest @ ..] => {
                let mut options = ElectorOptions::new(*identity);
                if let Some(ttl) = rest.first() {
                    options = options.ttl(Duration::from_secs(ttl.parse()?));
                }
                match manager.elector(key, options).actor(Ticker::new) {
                    Ok(elector) => {
                        electors.insert(key.to_string(), elector);
                        emit(json!({"ev": "elector", "key": key}));
                    }
                    Err(e) => emit_error(key, e.lock_error()),
                }
            }
            ["resign", key, ms] => {
                if let Some(elector) = electors.get(*key) {
                    elector.resign(Duration::from_millis(ms.parse()?)).await;
                }
                emit(json!({"ev": "resigned", "key": key}));
            }
            ["observe", key] => {
                use futures::StreamExt;
                let mut changes = manager.leader_changes(key).await?;
                observers.push(tokio::spawn(async move {
                    while let Some(c) = changes.next().await {
                        let kind = format!("{:?}", c.kind);
                        let identity = c.leader.as_ref().map(|l| l.identity.clone());
                        let token = c.leader.as_ref().map(|l| l.token);
                        emit(json!({"ev": "leader", "kind": kind, "identity": identity,
                            "token": token, "revision": c.revision}));
                    }
                }));
                emit(json!({"ev": "observing", "key": key}));
            }
            ["exit"] => break,
            _ => emit(json!({"ev": "error", "kind": "BadCommand", "error": line})),
        }
    }
    for (_, elector) in electors.drain() {
        elector.shutdown().await;
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
            lock.subscribe(printer.clone().recipient()).detach();
            emit(
                json!({"ev": "acquired", "key": key, "lock_key": lock.key(), "token": lock.token(), "t_us": now_us()}),
            );
            locks.insert(key.to_owned(), lock);
        }
        Err(e) => emit_error(key, &e),
    }
}

/// Wall-clock microseconds since the Unix epoch: one clock for every process on the machine.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The role of `elect`: says when it starts and stops, and ticks every 20 ms with what its
/// lease says then.
struct Ticker {
    term: Term,
}

impl Ticker {
    fn new(term: Term) -> Ticker {
        Ticker { term }
    }
}

impl actix::Actor for Ticker {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::AsyncContext;
        emit(json!({"ev": "role-start", "token": self.term.token(), "t_us": now_us()}));
        ctx.run_interval(Duration::from_millis(20), |this, _| {
            let held = this.term.is_held();
            emit(json!({"ev": "tick", "token": this.term.token(), "held": held, "t_us": now_us()}));
        });
    }

    fn stopped(&mut self, _: &mut actix::Context<Self>) {
        emit(json!({"ev": "role-stop", "token": self.term.token(), "t_us": now_us()}));
    }
}
