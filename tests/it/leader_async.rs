//! Roles as async functions (`manager.elector(key, options).run(..)`): the same rules as
//! actor roles, on real servers. A role's future is dropped at the end of its term unless it
//! asked for `term.ending()`, in which case it winds down, up to `stop_timeout`, with its
//! term kept; restarted after a return or a panic while the term lasts, never after; and no
//! role ever runs (or acts) while another does, over resigns, step-downs, foreign deletes,
//! a lease run out behind a cut connection, and shutdowns.
//!
//! Every role writes into the one [`Book`] of `leader.rs`: its start when made, an act on
//! every tick, its stop when it returns or is dropped (a guard's `Drop`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures::StreamExt;
use nlock::{Elector, ElectorOptions, ElectorStatus, LeaderChangeKind, LockManager, Term};

use crate::fixture::{Env, PATIENCE};
use crate::harness::{must_eventually, ProxyMode, TcpProxy};
use crate::leader::{options, Book, Poke, What, KEY};

/// How a test role ends its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Never asks for `term.ending()`: it ticks until it is dropped.
    Dropped,
    /// Asks for `term.ending()`, then winds down: held by the book's stop gate, or 100 ms
    /// when the book lingers, then returns.
    WindsDown,
    /// Asks for `term.ending()`, then waits for a clean-up on a blocking thread that holds a
    /// [`Resource`] until the test frees it.
    BlockingCleanUp,
}

/// Something a role's blocking clean-up holds: a flag and the gate that lets it go.
#[derive(Clone, Default)]
struct Resource {
    /// (held by a clean-up, the test let it go)
    state: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl Resource {
    /// Held until [`Resource::free`]; blocks the calling thread.
    fn hold_until_freed(&self) {
        let (lock, freed) = &*self.state;
        let mut state = lock.lock().unwrap();
        state.0 = true;
        while !state.1 {
            state = freed.wait(state).unwrap();
        }
        state.0 = false;
    }

    fn is_held(&self) -> bool {
        self.state.0.lock().unwrap().0
    }

    fn free(&self) {
        let (lock, freed) = &*self.state;
        lock.lock().unwrap().1 = true;
        freed.notify_all();
    }
}

/// Frees its resources when dropped, also when a test fails: a blocking clean-up left
/// waiting would keep the test's runtime from shutting down.
struct FreeOnDrop(Vec<Resource>);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        for r in &self.0 {
            // A poisoned lock (a panic while held) is freed all the same.
            let (lock, freed) = &*r.state;
            match lock.lock() {
                Ok(mut s) => s.1 = true,
                Err(p) => p.into_inner().1 = true,
            }
            freed.notify_all();
        }
    }
}

/// One run of a role as the book sees it: the start when made, the stop when dropped (at a
/// return, a panic's unwinding, or when the elector drops the future).
struct Run {
    who: String,
    token: u64,
    book: Book,
}

impl Run {
    fn start(who: &str, token: u64, book: &Book) -> Run {
        book.record(who, token, What::Start);
        Run {
            who: who.to_owned(),
            token,
            book: book.clone(),
        }
    }

    fn act(&self) {
        self.book.record(&self.who, self.token, What::Act);
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.book.record(&self.who, self.token, What::Stop);
        if self.book.panics_when_stopped() && !std::thread::panicking() {
            panic!("test role panics while it is dropped");
        }
    }
}

fn elect_async(
    m: &LockManager,
    who: &str,
    options: ElectorOptions,
    book: &Book,
    style: Style,
    resource: &Resource,
) -> Elector {
    let (who, book, resource) = (who.to_owned(), book.clone(), resource.clone());
    m.elector(KEY, options)
        .run(move |term| role(who.clone(), term, book.clone(), style, resource.clone()))
        .unwrap()
}

async fn role(who: String, term: Term, book: Book, style: Style, resource: Resource) {
    let (tx, mut pokes) = tokio::sync::mpsc::unbounded_channel();
    book.add_poker(&who, tx);
    let run = Run::start(&who, term.token(), &book);
    let mut ending: Pin<Box<dyn Future<Output = ()>>> = match style {
        Style::Dropped => Box::pin(std::future::pending()),
        Style::WindsDown | Style::BlockingCleanUp => Box::pin(term.ending()),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            () = &mut ending => break,
            Some(poke) = pokes.recv() => match poke {
                Poke::Boom => panic!("test role panics"),
                Poke::Quit => return,
                Poke::Unhealthy => term.step_down(),
            },
            _ = tick.tick() => run.act(),
        }
    }
    // The term is ending; it is kept until this returns.
    run.act();
    if style == Style::BlockingCleanUp {
        let cleanup = tokio::task::spawn_blocking(move || resource.hold_until_freed());
        let _ = cleanup.await;
    } else if *book.stop_gate().borrow() {
        let mut gate = book.stop_gate();
        let _ = gate.wait_for(|held| !*held).await;
    } else if book.lingers() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.act();
}

#[actix::test]
async fn an_async_role_that_returns_or_panics_is_restarted_while_the_term_lasts_and_never_after() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let book = Book::default();
    let none = Resource::default();
    let elector = elect_async(&m, "a", options("a"), &book, Style::Dropped, &none);
    let (_, token) = book.next_term(0).await;

    book.poke("a", Poke::Boom);
    must_eventually(PATIENCE, "restarted after a panic", || async {
        book.starts().len() == 2
    })
    .await;
    book.poke("a", Poke::Quit);
    must_eventually(PATIENCE, "restarted after returning", || async {
        book.starts().len() == 3 && book.running().is_some()
    })
    .await;
    assert!(book.starts().iter().all(|s| s.token == token));
    assert_eq!(elector.status(), ElectorStatus::Leading { token });

    // At the end of the term the role panics while it is dropped: it is not restarted, and
    // the term is released.
    book.set_panic_when_stopped(true);
    elector.shutdown().await;
    assert_eq!(elector.status(), ElectorStatus::Stopped);
    assert_eq!(book.running(), None, "{:?}", book.entries());
    assert_eq!(book.starts().len(), 3);
    assert_eq!(m.leader(KEY).await.unwrap(), None, "released");
    book.check();
}

/// Roles that never look at the end of their term: each is dropped when its term ends, so
/// none acts while the next leader's role runs, whatever ended the term.
#[actix::test]
async fn an_async_role_is_dropped_at_the_end_of_its_term_before_any_other_role_starts() {
    let env = Env::start().await;
    let book = Book::default();
    let none = Resource::default();
    let config = env.config().retry_interval(Duration::from_millis(100));
    let proxy = TcpProxy::start(env.server.addr()).await;
    let mc = LockManager::connect(&proxy.url(), config.clone().build().unwrap())
        .await
        .unwrap();
    // c, behind the proxy, leads first.
    let _c = elect_async(&mc, "c", options("c"), &book, Style::Dropped, &none);
    let (_, mut token) = book.next_term(0).await;
    let ma = env.manager(config.clone()).await;
    let mb = env.manager(config.clone()).await;
    let a = elect_async(&ma, "a", options("a"), &book, Style::Dropped, &none);
    let b = elect_async(&mb, "b", options("b"), &book, Style::Dropped, &none);
    let by = |who: &str| if who == "a" { &a } else { &b };

    // 1. c's connection is cut off for longer than the TTL: its lease runs out.
    proxy.set_mode(ProxyMode::Blackhole);
    let (who, t) = book.next_term(token).await;
    assert_ne!(who, "c");
    token = t;
    proxy.set_mode(ProxyMode::Pass);
    // 2. a resign, 3. a step-down the role asks for, 4. a foreign delete.
    by(&who).resign(Duration::from_millis(500)).await;
    let (who, t) = book.next_term(token).await;
    token = t;
    book.poke(&who, Poke::Unhealthy);
    let (_, t) = book.next_term(token).await;
    token = t;
    env.kv().await.delete(KEY).await.unwrap();
    let (who, t) = book.next_term(token).await;
    token = t;
    // 5. The leader's manager shuts down.
    let manager = match who.as_str() {
        "a" => &ma,
        "b" => &mb,
        _ => &mc,
    };
    manager.shutdown().await;
    book.next_term(token).await;
    book.check();
    let stops = book
        .entries()
        .iter()
        .filter(|e| e.what == What::Stop)
        .count();
    assert!(
        stops >= 5,
        "each ended term's role stopped: {:?}",
        book.entries()
    );
}

/// A role that winds down (it asked for `term.ending()`) keeps its term, refreshed, for as
/// long as it takes within `stop_timeout`: longer than the TTL (3 s) here, over a resign, a
/// step-down and a shutdown; the next leader's role starts only after it returned.
#[actix::test]
async fn an_async_role_winding_down_keeps_its_term_until_it_returned() {
    let env = Env::start().await;
    let config = env.config();
    let book = Book::default();
    let none = Resource::default();
    let ms = [
        env.manager(config.clone()).await,
        env.manager(config.clone()).await,
        env.manager(config.clone()).await,
    ];
    let slow = |who: &str| options(who).stop_timeout(Duration::from_secs(60));
    let electors: Vec<_> = ["a", "b", "c"]
        .iter()
        .zip(&ms)
        .map(|(who, m)| {
            let e = elect_async(m, who, slow(who), &book, Style::WindsDown, &none);
            (who.to_string(), e)
        })
        .collect();
    let find = |who: &str| electors.iter().find(|(w, _)| w == who).unwrap().1.clone();
    // Longer than the TTL: a term released or left to run out meanwhile shows as an overlap.
    let held = Duration::from_secs(4);
    book.hold_stop();
    let (first, t1) = book.next_term(0).await;

    // 1. A resign.
    let e = find(&first);
    let resign = actix::spawn(async move { e.resign(Duration::from_secs(60)).await });
    must_eventually(
        PATIENCE,
        "the resigning candidate no longer leads",
        || async { !find(&first).is_leader() },
    )
    .await;
    tokio::time::sleep(held).await; // the fault: a wind-down that takes this long
    assert_eq!(
        book.running(),
        Some((first.clone(), t1)),
        "{:?}",
        book.entries()
    );
    assert_eq!(
        env.manager(config.clone())
            .await
            .leader(KEY)
            .await
            .unwrap()
            .unwrap()
            .token,
        t1
    );
    book.let_stop();
    let (second, t2) = book.next_term(t1).await;
    resign.await.unwrap();

    // 2. A step-down the role asks for.
    book.hold_stop();
    book.poke(&second, Poke::Unhealthy);
    tokio::time::sleep(held).await;
    assert_eq!(
        book.running(),
        Some((second.clone(), t2)),
        "{:?}",
        book.entries()
    );
    book.let_stop();
    let (third, t3) = book.next_term(t2).await;

    // 3. The manager's shutdown (not the elector's): it stops the elector first.
    book.hold_stop();
    let m = ms[["a", "b", "c"].iter().position(|w| *w == third).unwrap()].clone();
    let shutdown = actix::spawn(async move { m.shutdown().await });
    tokio::time::sleep(held).await;
    assert_eq!(
        book.running(),
        Some((third.clone(), t3)),
        "{:?}",
        book.entries()
    );
    book.let_stop();
    book.next_term(t3).await;
    shutdown.await.unwrap();
    book.check();
    // Each wound down: an act after its term ended, inside its own run.
    for (who, token) in [(first, t1), (second, t2), (third, t3)] {
        let acts = book
            .entries()
            .iter()
            .filter(|e| e.what == What::Act && e.who == who && e.token == token)
            .count();
        assert!(acts >= 2, "{who} {token}: {:?}", book.entries());
    }
}

/// A role whose clean-up (on a blocking thread, holding a resource) outlasts `stop_timeout`:
/// its future is dropped then, and its term is neither released nor deleted but left to
/// expire, since the clean-up still runs; over a resign and a manager's shutdown, which both
/// return. The next leader starts only after the expiry.
#[actix::test]
async fn an_async_role_past_stop_timeout_is_dropped_and_its_term_expires_unreleased() {
    let env = Env::start().await;
    let config = env.config();
    let book = Book::default();
    let observer = env.manager(config.clone()).await;
    let mut changes = observer.leader_changes(KEY).await.unwrap();
    let (ma, mb) = (
        env.manager(config.clone()).await,
        env.manager(config.clone()).await,
    );
    let stop_timeout = Duration::from_millis(300);
    let (ra, rb) = (Resource::default(), Resource::default());
    let _free = FreeOnDrop(vec![ra.clone(), rb.clone()]);
    let quick = |who: &str| options(who).stop_timeout(stop_timeout);
    let a = elect_async(&ma, "a", quick("a"), &book, Style::BlockingCleanUp, &ra);
    let (_, t1) = book.next_term(0).await;
    let _b = elect_async(&mb, "b", quick("b"), &book, Style::BlockingCleanUp, &rb);

    // 1. a resigns: its clean-up never ends by itself. The resign returns after stop_timeout
    //    and the role's future is gone, though its clean-up still holds the resource.
    tokio::time::timeout(PATIENCE, a.resign(Duration::from_secs(60)))
        .await
        .expect("the resign returns although the clean-up goes on");
    assert_eq!(
        book.running(),
        None,
        "the future was dropped: {:?}",
        book.entries()
    );
    assert!(ra.is_held(), "the clean-up still runs");
    let (who, t2) = book.next_term(t1).await;
    assert_eq!(who, "b");

    // 2. b's manager shuts down: the same, and the shutdown returns.
    tokio::time::timeout(PATIENCE, mb.shutdown())
        .await
        .expect("the manager's shutdown returns although the clean-up goes on");
    assert_eq!(book.running(), None, "{:?}", book.entries());
    assert!(rb.is_held(), "the clean-up still runs");
    // Nobody else campaigns (a stands aside): the term expires, unreleased. With limit
    // markers (2.11+) observers see each expiry; before, a's end shows only when b's term
    // replaces it (`Ended`), and b's, with nobody writing after it, not at all: its key is
    // just gone at the server, and no release marker was written.
    let mut kinds = Vec::new();
    let expected = if env.modern() { 4 } else { 3 };
    while kinds.len() < expected {
        let c = tokio::time::timeout(PATIENCE, changes.next())
            .await
            .expect("a change")
            .expect("the stream goes on");
        let l = c.leader.clone().unwrap();
        kinds.push((c.kind, l.identity.clone(), l.token));
    }
    let end_of_a = if env.modern() {
        LeaderChangeKind::Expired
    } else {
        LeaderChangeKind::Ended
    };
    let mut want = vec![
        (LeaderChangeKind::Elected, "a".to_owned(), t1),
        (end_of_a, "a".to_owned(), t1),
        (LeaderChangeKind::Elected, "b".to_owned(), t2),
    ];
    if env.modern() {
        want.push((LeaderChangeKind::Expired, "b".to_owned(), t2));
    } else {
        must_eventually(PATIENCE, "b's term expires at the server", || async {
            observer.leader(KEY).await.unwrap().is_none()
        })
        .await;
        // Had b's term been released, its marker would be a change of the key now.
        let next = tokio::time::timeout(Duration::from_secs(1), changes.next()).await;
        assert!(next.is_err(), "b's term was not released: {next:?}");
    }
    assert_eq!(kinds, want);
    ra.free();
    rb.free();
    book.check();
    // FreeOnDrop frees them again, harmlessly.
}

/// The manager's shutdown while an async role leads and takes 100 ms to wind down: the role
/// has returned before the term is released, so the next leader's role starts after it; and
/// an elector's own shutdown returns only once its role is gone and its term released.
#[actix::test]
async fn shutdown_while_an_async_role_leads_stops_it_before_the_term_is_released() {
    let env = Env::start().await;
    let config = env.config().ttl(Duration::from_secs(30));
    let book = Book::default();
    let none = Resource::default();
    book.set_linger(true);
    let ma = env.manager(config.clone()).await;
    let mb = env.manager(config).await;
    let _a = elect_async(&ma, "a", options("a"), &book, Style::WindsDown, &none);
    let (first, t1) = book.next_term(0).await;
    assert_eq!(first, "a");
    let b = elect_async(&mb, "b", options("b"), &book, Style::WindsDown, &none);
    must_eventually(PATIENCE, "b campaigns", || async {
        crate::fixture::waiting_on(&mb, KEY).await > 0
    })
    .await;
    ma.shutdown().await;
    let (second, _) = book.next_term(t1).await;
    assert_eq!(second, "b");

    b.shutdown().await;
    assert_eq!(book.running(), None, "{:?}", book.entries());
    assert_eq!(mb.leader(KEY).await.unwrap(), None, "released");
    book.check();
}

/// From plain tokio: async roles run on nlock's own actor thread; a handoff and shutdowns
/// work the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_roles_work_from_plain_tokio() {
    let env = Env::start().await;
    let book = Book::default();
    let none = Resource::default();
    book.set_linger(true);
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let a = elect_async(&ma, "a", options("a"), &book, Style::WindsDown, &none);
    let (first, t1) = book.next_term(0).await;
    assert_eq!(first, "a");
    let b = elect_async(&mb, "b", options("b"), &book, Style::Dropped, &none);
    a.resign(Duration::from_secs(60)).await;
    let (second, _) = book.next_term(t1).await;
    assert_eq!(second, "b");
    b.shutdown().await;
    a.shutdown().await;
    assert_eq!(book.running(), None);
    assert_eq!(ma.leader(KEY).await.unwrap(), None);
    book.check();
}
