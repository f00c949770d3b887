//! Read-write locks (`LockManager::rw_lock`): many readers or one writer across processes, in
//! the order they asked, so a waiting writer is not starved by later readers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nlock::AcquireErrorKind;

use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;

#[actix::test]
async fn readers_share_a_writer_waits_for_them_and_later_readers_wait_for_the_writer() {
    let env = Env::start().await;
    let (a, b, c, d) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let r1 = a.rw_lock("cache").try_read().await.expect("a reader");
    let r2 = b
        .rw_lock("cache")
        .try_read()
        .await
        .expect("a second reader at once");
    assert_eq!(
        c.rw_lock("cache").try_write().await.unwrap_err().kind(),
        AcquireErrorKind::Busy
    );
    let writer = {
        let c = c.clone();
        actix::spawn(async move { c.rw_lock("cache").timeout(PATIENCE).write().await })
    };
    // The writer is waiting once its key is there.
    must_eventually(PATIENCE, "the writer waits", || async {
        !env.keys_with_prefix("_nlock.rw.cache.w.").await.is_empty()
    })
    .await;
    // A reader that comes after the waiting writer waits for it.
    assert_eq!(
        d.rw_lock("cache").try_read().await.unwrap_err().kind(),
        AcquireErrorKind::Busy
    );
    let late_reader = {
        let d = d.clone();
        actix::spawn(async move { d.rw_lock("cache").timeout(PATIENCE).read().await })
    };
    let tokens = [r1.token(), r2.token()];
    r1.release().await.unwrap();
    assert!(!writer.is_finished(), "one reader still reads");
    r2.release().await.unwrap();
    let w = writer
        .await
        .unwrap()
        .expect("the writer, once both readers are done");
    assert!(tokens.iter().all(|t| w.token() > *t));
    assert!(
        !late_reader.is_finished(),
        "the later reader waits for the writer"
    );
    let wt = w.token();
    w.release().await.unwrap();
    let r = late_reader
        .await
        .unwrap()
        .expect("the reader after the writer");
    assert!(r.token() > wt);
}

/// Who is inside: readers, and whether a writer is.
#[derive(Default)]
struct Register {
    readers: usize,
    writer: bool,
    violations: Vec<String>,
    writes: usize,
    reads: usize,
}

#[actix::test]
async fn readers_and_writers_in_five_processes_never_overlap_wrongly() {
    let env = Env::start().await;
    let register = Arc::new(Mutex::new(Register::default()));
    let mut tasks = Vec::new();
    for id in 0..5 {
        let m = env.manager(env.config()).await;
        let register = register.clone();
        tasks.push(actix::spawn(async move {
            for round in 0..4 {
                let writer = (id + round) % 3 == 0;
                let request = m.rw_lock("shared").timeout(PATIENCE * 3);
                let held = if writer {
                    request.write().await
                } else {
                    request.read().await
                }
                .expect("granted");
                {
                    let mut r = register.lock().unwrap();
                    if r.writer || (writer && r.readers > 0) {
                        let what = format!(
                            "{id} (writer {writer}) entered with {} readers, writer {}",
                            r.readers, r.writer
                        );
                        r.violations.push(what);
                    }
                    if writer {
                        r.writer = true;
                        r.writes += 1;
                    } else {
                        r.readers += 1;
                        r.reads += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                {
                    let mut r = register.lock().unwrap();
                    if writer {
                        r.writer = false;
                    } else {
                        r.readers -= 1;
                    }
                }
                held.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = register.lock().unwrap();
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.reads + r.writes, 20);
    assert!(r.writes > 0 && r.reads > 0);
}

#[actix::test]
async fn a_crashed_readers_key_stops_holding_the_writer_after_its_lease() {
    let env = Env::start().await;
    let cfg = env
        .config()
        .ttl(Duration::from_secs(1))
        .request_timeout(Duration::from_millis(300));
    let m = env.manager(cfg).await;
    // A reader that then crashed: its key is never refreshed nor deleted.
    env.kv()
        .await
        .create("_nlock.rw.cache.r.crashed", "crashed reader".into())
        .await
        .unwrap();
    assert_eq!(
        m.rw_lock("cache").try_write().await.unwrap_err().kind(),
        AcquireErrorKind::Busy
    );
    let w = m
        .rw_lock("cache")
        .timeout(PATIENCE)
        .write()
        .await
        .expect("the writer, once the crashed reader's lease is over");
    assert!(w.is_held());
}

#[actix::test]
async fn a_timed_out_or_refused_request_leaves_no_key() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let _w = a.rw_lock("cache").try_write().await.unwrap();
    let err = b
        .rw_lock("cache")
        .timeout(Duration::from_millis(300))
        .read()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AcquireErrorKind::AcquireTimedOut);
    assert_eq!(
        b.rw_lock("cache").try_read().await.unwrap_err().kind(),
        AcquireErrorKind::Busy
    );
    assert_eq!(
        b.rw_lock("bad..name").read().await.unwrap_err().kind(),
        AcquireErrorKind::InvalidKey
    );
    must_eventually(PATIENCE, "only the writer's key is left", || async {
        env.keys_with_prefix("_nlock.rw.").await.len() == 1
    })
    .await;
}

/// A reader cut off from the server (its connection blackholed) keeps counting its lease; the
/// waiting writer is granted only after that reader's `is_held()` turned false.
#[actix::test]
async fn a_cut_off_reader_holds_a_writer_off_until_its_lease_ended() {
    use crate::harness::proxy::{ProxyMode, TcpProxy};

    let env = Env::start().await;
    let proxy = TcpProxy::start(env.server.addr()).await;
    let cut = nlock::LockManager::connect(&proxy.url(), env.config().build().unwrap())
        .await
        .unwrap();
    let writer = env.manager(env.config()).await;
    let reading = cut.rw_lock("cache").try_read().await.unwrap();
    let lease = reading.lease().clone();
    let watch = crate::fixture::watch_last_held(lease.clone());
    let pending = {
        let writer = writer.clone();
        actix::spawn(async move { writer.rw_lock("cache").timeout(PATIENCE * 2).write().await })
    };
    proxy.set_mode(ProxyMode::Blackhole);
    let w = pending
        .await
        .unwrap()
        .expect("the writer, after the reader's lease");
    let granted = tokio::time::Instant::now();
    assert!(watch.await.unwrap() < granted, "a writer with a reader");
    assert!(w.token() > lease.token());
    drop(reading);
}
