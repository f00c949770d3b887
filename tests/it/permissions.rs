//! Least privilege: the README's "Permissions" block, used as the server's config word for
//! word. Each role works with exactly its permissions, and with one permission less it fails
//! with an error (not a wait for the request timeout).

use std::time::Duration;

use nlock::{Config, ConfigBuilder, ErrorKind, LockError, LockEventKind, LockManager};

use crate::fixture::{next_event_except, spawn_waiter, PATIENCE};
use crate::harness::NatsServer;

/// The README's server config block for the three roles.
fn readme_block() -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Permissions\n")
        .nth(1)
        .expect("README has a Permissions section");
    let start = section.find("```text\n").expect("a config block") + "```text\n".len();
    let len = section[start..].find("```").expect("the block ends");
    section[start..start + len].to_owned()
}

/// The README's block without the line `line` in the permissions of `user`.
fn without(user: &str, line: &str) -> String {
    let block = readme_block();
    let at = block
        .find(&format!("{{ user: {user},"))
        .unwrap_or_else(|| panic!("user {user} in the README block"));
    let (head, tail) = block.split_at(at);
    let end = tail.find("subscribe:").expect("the user's subscribe list");
    let (perms, rest) = tail.split_at(end);
    let needle = format!("\"{line}\"");
    assert!(perms.contains(&needle), "{user} has {line} in the README");
    // The removed entry may be the list's last, which has no comma after it.
    let perms = perms
        .replace(&format!("{needle},\n"), "")
        .replace(&format!(",\n          {needle}\n"), "\n");
    assert!(!perms.contains(&needle), "{line} removed from {user}");
    format!("{head}{perms}{rest}")
}

/// A server configured with `config` (an `authorization` block).
async fn server(config: String) -> NatsServer {
    crate::harness::init_tracing();
    NatsServer::builder()
        .config(config)
        // The readiness probe has no user; the operator's first start waits instead.
        .wait_for_jetstream(false)
        .start()
        .await
}

/// The default bucket, as in the README, with a request timeout far above what a refused
/// request takes to be reported.
fn config() -> ConfigBuilder {
    Config::builder()
        .restart_grace(false)
        .ttl(Duration::from_secs(10))
        .request_timeout(Duration::from_secs(5))
}

async fn connect(server: &NatsServer, user: &str) -> Result<LockManager, LockError> {
    connect_as(server, user, config()).await
}

async fn connect_as(
    server: &NatsServer,
    user: &str,
    config: ConfigBuilder,
) -> Result<LockManager, LockError> {
    let url = format!("nats://{user}:{user}-secret@127.0.0.1:{}", server.port());
    let config = config.build().expect("valid config");
    bounded(LockManager::connect(&url, config))
        .await
        .map_err(LockError::from)
}

/// `f`, bounded only so that a failing test does not hang.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("an answer within PATIENCE")
}

/// The operator's manager; its start creates the bucket. Retried while the just-started
/// server's JetStream is not answering yet.
async fn operator(server: &NatsServer) -> LockManager {
    operator_with(server, config()).await
}

/// [`operator`] with a config of the test's own (the bucket's TTL, say).
async fn operator_with(server: &NatsServer, cfg: ConfigBuilder) -> LockManager {
    let mut last = None;
    for _ in 0..50 {
        match connect_as(server, "operator", cfg.clone()).await {
            Ok(m) => return m,
            Err(e) if e.kind() == ErrorKind::JetStreamNotEnabled => last = Some(e),
            Err(e) => panic!("operator starts: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("operator starts: {last:?}");
}

#[actix::test]
async fn the_readme_roles_work_with_exactly_their_permissions() {
    let server = server(readme_block()).await;
    let operator = operator(&server).await;
    let holder = connect(&server, "holder").await.expect("holder starts");
    let other = connect(&server, "holder")
        .await
        .expect("second holder starts");
    let observer = connect(&server, "observer").await.expect("observer starts");
    let mut events = bounded(observer.events(">"))
        .await
        .expect("observer watches");

    // Holder: acquire, wait, hand over on release.
    let lock = bounded(holder.acquire("jobs.a", Some(PATIENCE)))
        .await
        .unwrap_or_else(|e| panic!("holder acquires: {e}\n{}", server.log_tail(40)));
    lock.refresh().await.expect("holder refreshes");
    let waiter = spawn_waiter(&other, "jobs.a", PATIENCE).await;
    // Observer: sees the holder.
    let seen = bounded(observer.holders()).await.expect("observer lists");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].key, "jobs.a");
    assert_eq!(seen[0].token, lock.token());
    let acquired = next_event_except(&mut events, LockEventKind::Refreshed).await;
    assert_eq!(acquired.kind, LockEventKind::Acquired);
    let token = lock.token();
    lock.release().await.expect("holder releases");
    let next = waiter.await.unwrap().expect("the waiter gets the lock");
    assert!(next.token() > token);
    let released = next_event_except(&mut events, LockEventKind::Refreshed).await;
    assert_eq!(released.kind, LockEventKind::Released);

    // Operator: breaks the lock the second holder has.
    let broken = bounded(operator.force_release("jobs.a", None))
        .await
        .expect("operator breaks the lock");
    assert_eq!(broken.token, next.token());
    assert_eq!(bounded(observer.holder("jobs.a")).await.unwrap(), None);

    // Nothing any role did was refused on the way (a consumer deletion, say).
    observer.shutdown().await;
    holder.shutdown().await;
    other.shutdown().await;
    operator.shutdown().await;
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains("Violation"), "{}", server.log_tail(30));
}

const STREAM_INFO: &str = "$JS.API.STREAM.INFO.KV_distributed_locks";
const STREAM_CREATE: &str = "$JS.API.STREAM.CREATE.KV_distributed_locks";
const CONSUMER_CREATE: &str = "$JS.API.CONSUMER.CREATE.KV_distributed_locks.>";
const DIRECT_GET: &str = "$JS.API.DIRECT.GET.KV_distributed_locks.>";
const KV: &str = "$KV.distributed_locks.>";

/// The subject of a `PermissionDenied` error (panics on any other error).
fn denied<T: std::fmt::Debug, E: Into<LockError>>(result: Result<T, E>) -> String {
    match result.map_err(Into::into) {
        Err(LockError::PermissionDenied { subject }) => {
            let e = LockError::PermissionDenied {
                subject: subject.clone(),
            };
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
            assert_eq!(e.kind().as_str(), "permission_denied");
            assert!(e.to_string().contains(&subject), "{e}");
            subject
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[actix::test]
async fn a_holder_without_the_bucket_subjects_is_denied_naming_the_key_subject() {
    let server = server(without("holder", KV)).await;
    let _operator = operator(&server).await;
    let holder = connect(&server, "holder").await.expect("holder starts");
    assert_eq!(
        denied(bounded(holder.try_acquire("jobs.a")).await),
        "$KV.distributed_locks.jobs.a"
    );
    // A waiting acquire does not wait out its timeout either.
    assert_eq!(
        denied(bounded(holder.acquire("jobs.a", Some(PATIENCE * 2))).await),
        "$KV.distributed_locks.jobs.a"
    );
}

#[actix::test]
async fn the_observer_may_not_write_to_the_bucket() {
    let server = server(readme_block()).await;
    let _operator = operator(&server).await;
    let observer = connect(&server, "observer").await.expect("observer starts");
    assert_eq!(
        denied(bounded(observer.try_acquire("jobs.a")).await),
        "$KV.distributed_locks.jobs.a"
    );
    assert_eq!(bounded(observer.holders()).await.unwrap().len(), 0);
}

#[actix::test]
async fn a_holder_without_stream_info_is_denied_at_start() {
    let server = server(without("holder", STREAM_INFO)).await;
    let _operator = operator(&server).await;
    assert_eq!(denied(connect(&server, "holder").await), STREAM_INFO);
}

#[actix::test]
async fn a_holder_without_direct_get_is_denied_when_it_must_read() {
    let server = server(without("holder", DIRECT_GET)).await;
    let operator = operator(&server).await;
    let _held = bounded(operator.acquire("jobs.a", Some(PATIENCE)))
        .await
        .unwrap();
    let holder = connect(&server, "holder").await.expect("holder starts");
    // A conflict is explained by a read of the key, which is refused.
    assert_eq!(
        denied(bounded(holder.try_acquire("jobs.a")).await),
        "$JS.API.DIRECT.GET.KV_distributed_locks.$KV.distributed_locks.jobs.a"
    );
}

#[actix::test]
async fn an_observer_without_consumer_create_is_denied() {
    let server = server(without("observer", CONSUMER_CREATE)).await;
    let _operator = operator(&server).await;
    // The manager's own change stream is made at start, so the start is refused.
    let subject = denied(connect(&server, "observer").await);
    assert!(
        subject.starts_with("$JS.API.CONSUMER.CREATE.KV_distributed_locks.nlock_"),
        "{subject}"
    );
}

#[actix::test]
async fn an_operator_without_stream_create_is_denied_the_bucket() {
    let server = server(without("operator", STREAM_CREATE)).await;
    let mut outcome = connect(&server, "operator").await;
    for _ in 0..50 {
        match &outcome {
            // The just-started server's JetStream is not answering yet.
            Err(e) if e.kind() == ErrorKind::JetStreamNotEnabled => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                outcome = connect(&server, "operator").await;
            }
            _ => break,
        }
    }
    assert_eq!(denied(outcome), STREAM_CREATE);
}

#[actix::test]
async fn an_operator_without_the_bucket_subjects_cannot_break_a_lock() {
    let server = server(without("operator", KV)).await;
    let operator = operator(&server).await;
    let holder = connect(&server, "holder").await.expect("holder starts");
    let lock = bounded(holder.acquire("jobs.a", Some(PATIENCE)))
        .await
        .unwrap();
    assert_eq!(
        denied(bounded(operator.force_release("jobs.a", None)).await),
        "$KV.distributed_locks.jobs.a"
    );
    // Nothing was broken.
    lock.refresh().await.expect("still held");
}

/// Why a holder needs `STREAM.PURGE`: a bucket never written moves its sequence past every
/// earlier token when its first tenure is admitted, and once the bucket is older than one TTL
/// (plus the clock skew) that is the holder's first acquire, not the bucket's creation
/// (servers 2.10+; before, the operator's creation does it).
#[actix::test]
async fn a_holder_moves_the_sequence_of_a_bucket_never_written() {
    let short = || {
        config()
            .ttl(Duration::from_secs(2))
            .request_timeout(Duration::from_millis(500))
            .max_clock_skew(Duration::ZERO)
    };
    for (with_purge, block) in [
        (true, readme_block()),
        (
            false,
            without("holder", "$JS.API.STREAM.PURGE.KV_distributed_locks"),
        ),
    ] {
        let server = server(block).await;
        let mut operator = connect_as(&server, "operator", short()).await;
        for _ in 0..50 {
            match &operator {
                Err(e) if e.kind() == ErrorKind::JetStreamNotEnabled => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    operator = connect_as(&server, "operator", short()).await;
                }
                _ => break,
            }
        }
        let _operator = operator.expect("operator starts");
        // The bucket ages past one TTL without a write (a fault's duration, not a wait for
        // something to happen).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let holder = connect_as(&server, "holder", short())
            .await
            .expect("holder starts");
        let acquired = bounded(holder.try_acquire("jobs.a")).await;
        let (major, minor, _) = server.version();
        if with_purge || (major, minor) < (2, 10) {
            // Before 2.10 a stream has no first sequence of its own: the operator's purge at
            // creation moved it already, and the bucket does not count as never written.
            acquired.expect("the holder acquires");
        } else {
            assert_eq!(
                denied(acquired),
                "$JS.API.STREAM.PURGE.KV_distributed_locks"
            );
        }
    }
}

#[actix::test]
async fn a_holder_that_may_not_write_line_entries_waits_outside_the_line() {
    // The holder may write lock keys under `jobs.` only, not the `_nlock` entries.
    let block = readme_block().replacen(
        "\"$KV.distributed_locks.>\"",
        "\"$KV.distributed_locks.jobs.>\"",
        1,
    );
    let server = server(block).await;
    // A request timeout beyond PATIENCE: a waiter that sat out one for its entry fails here.
    let cfg = || {
        config()
            .ttl(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(30))
    };
    let _operator = operator_with(&server, cfg()).await;
    let a = connect_as(&server, "holder", cfg()).await.expect("starts");
    let b = connect_as(&server, "holder", cfg()).await.expect("starts");
    let held = bounded(a.acquire("jobs.a", Some(PATIENCE))).await.unwrap();
    let waiter = spawn_waiter(&b, "jobs.a", PATIENCE * 4).await;
    bounded(held.release()).await.unwrap();
    let got = bounded(waiter)
        .await
        .unwrap()
        .expect("granted outside the line");
    assert_eq!(got.state().await.unwrap().holder.owner, b.owner());
}
