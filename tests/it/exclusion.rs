//! Mutual exclusion and fencing tokens under contention, across separate NATS connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fixture::{Env, PATIENCE};

/// The shared in-test register: who is inside the critical section, and every token seen.
#[derive(Default)]
struct Register {
    inside: Option<usize>,
    overlaps: Vec<(usize, usize)>,
    tokens: Vec<u64>,
}

#[actix::test]
async fn eight_contenders_never_overlap_and_tokens_increase() {
    contenders_never_overlap(|_| true).await;
}

/// Managers in the line and managers without it (as nlock before the line, which barges on
/// every release) on one key: the line orders only its own, and exclusion holds for all.
#[actix::test]
async fn contenders_with_and_without_the_line_never_overlap() {
    contenders_never_overlap(|id| id % 2 == 0).await;
}

/// Eight managers, each `ROUNDS` times through a critical section on one key, with the line
/// (`queue`) as `queue(id)` says; no overlap, and tokens increase in grant order.
async fn contenders_never_overlap(queue: impl Fn(usize) -> bool) {
    const CONTENDERS: usize = 8;
    const ROUNDS: usize = 5;
    let env = Env::start().await;
    let register = Arc::new(Mutex::new(Register::default()));
    let mut tasks = Vec::new();
    for id in 0..CONTENDERS {
        let m = env.manager(env.config().queue(queue(id))).await;
        let register = register.clone();
        tasks.push(actix::spawn(async move {
            for _ in 0..ROUNDS {
                let lock = m
                    .acquire("shared", Some(Duration::from_secs(60)))
                    .await
                    .unwrap();
                {
                    let mut r = register.lock().unwrap();
                    if let Some(other) = r.inside {
                        r.overlaps.push((other, id));
                    }
                    r.inside = Some(id);
                    r.tokens.push(lock.token());
                }
                // The work: long enough that a second holder would be caught inside.
                tokio::time::sleep(Duration::from_millis(5)).await;
                register.lock().unwrap().inside = None;
                lock.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = register.lock().unwrap();
    assert!(
        r.overlaps.is_empty(),
        "critical sections overlapped: {:?}",
        r.overlaps
    );
    assert_eq!(r.tokens.len(), CONTENDERS * ROUNDS);
    assert!(
        r.tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens must strictly increase in acquisition order: {:?}",
        r.tokens
    );
}

#[actix::test]
async fn tokens_strictly_increase_across_tenures_and_managers() {
    let env = Env::start().await;
    let a = env.manager(env.config()).await;
    let b = env.manager(env.config()).await;
    let mut last = 0;
    for i in 0..6 {
        let m = if i % 2 == 0 { &a } else { &b };
        let lock = m.acquire("fenced", Some(PATIENCE)).await.unwrap();
        assert!(lock.token() > last, "token {} after {}", lock.token(), last);
        last = lock.token();
        // A refresh changes the revision but never the token.
        lock.refresh().await.unwrap();
        assert_eq!(lock.state().await.unwrap().token, last);
        lock.release().await.unwrap();
    }
}

#[actix::test]
async fn local_waiters_are_served_first_in_first_out() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let first = m.acquire("fifo", Some(PATIENCE)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for id in 0..4 {
        let (m2, order) = (m.clone(), order.clone());
        tasks.push(actix::spawn(async move {
            let lock = m2.acquire("fifo", Some(PATIENCE)).await.unwrap();
            order.lock().unwrap().push(id);
            lock.release().await.unwrap();
        }));
        // Each waiter is queued before the next one is started.
        crate::harness::must_eventually(PATIENCE, "waiter queued", || {
            let m = m.clone();
            async move { m.locks().await.unwrap().waiting == vec![("fifo".into(), id + 1)] }
        })
        .await;
    }
    first.release().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
}
