//! Leadership: electors with supervised roles, handoffs, faults, and observers.
//!
//! Roles in this process (actors here, async functions in `leader_async.rs`) write their
//! starts, acts and stops into one [`Book`], on one monotonic clock; `Book::check` asserts
//! that no two role runs overlap, that a role acts only inside its own run, and that terms'
//! tokens strictly increase.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix::WeakAddr;
use futures::StreamExt;
use nlock::{
    ElectorOptions, ElectorStatus, LeaderChange, LeaderChangeKind, LeaderChanges, LockManager, Term,
};

use crate::fixture::{Env, PATIENCE};
use crate::harness::child::ChildClient;
use crate::harness::{must_eventually, now_us, ProxyMode, TcpProxy};

pub(crate) const KEY: &str = "svc.leader";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    Start,
    /// The role did its work (a tick): only inside its own run.
    Act,
    Stop,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) who: String,
    pub(crate) token: u64,
    pub(crate) what: What,
    pub(crate) at: Instant,
    /// The same moment on the wall clock, to compare with server timestamps.
    pub(crate) wall: std::time::SystemTime,
}

/// A candidate's name and its role's address.
pub(crate) type RoleAddr = (String, WeakAddr<Recorder>);

/// A candidate's name and how to poke its async role.
pub(crate) type Poker = (String, tokio::sync::mpsc::UnboundedSender<Poke>);

/// Starts and stops of every role in this process, and the latest role of each candidate.
#[derive(Clone, Default)]
pub(crate) struct Book {
    entries: Arc<Mutex<Vec<Entry>>>,
    roles: Arc<Mutex<Vec<RoleAddr>>>,
    /// Make roles panic in `stopped()`, to show a role is never restarted after its term.
    panic_when_stopped: Arc<AtomicBool>,
    /// Make roles take 100 ms to stop (finishing their work), so that a term released before
    /// its role stopped would show as an overlap.
    linger: Arc<AtomicBool>,
    /// While true, a role told to stop keeps running until it turns false (a role that is
    /// slow to stop, for as long as a test wants).
    hold_stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// How to reach the async roles (`leader_async.rs`): the latest of each candidate.
    pokes: Arc<Mutex<Vec<Poker>>>,
}

impl Book {
    /// Roles told to stop keep running from now until [`Book::let_stop`].
    pub(crate) fn hold_stop(&self) {
        self.hold_stop.send_replace(true);
    }

    /// Roles held in their stop (and later ones) stop now.
    pub(crate) fn let_stop(&self) {
        self.hold_stop.send_replace(false);
    }

    /// Writes one entry, now.
    pub(crate) fn record(&self, who: &str, token: u64, what: What) {
        self.entries.lock().unwrap().push(Entry {
            who: who.to_owned(),
            token,
            what,
            at: Instant::now(),
            wall: std::time::SystemTime::now(),
        });
    }

    /// Whether roles told to stop are held in their stop now, and the gate that opens.
    pub(crate) fn stop_gate(&self) -> tokio::sync::watch::Receiver<bool> {
        self.hold_stop.subscribe()
    }

    pub(crate) fn lingers(&self) -> bool {
        self.linger.load(Ordering::SeqCst)
    }

    pub(crate) fn set_linger(&self, on: bool) {
        self.linger.store(on, Ordering::SeqCst);
    }

    pub(crate) fn panics_when_stopped(&self) -> bool {
        self.panic_when_stopped.load(Ordering::SeqCst)
    }

    pub(crate) fn set_panic_when_stopped(&self, on: bool) {
        self.panic_when_stopped.store(on, Ordering::SeqCst);
    }

    /// Registers an async role of `who` (the latest one is poked).
    pub(crate) fn add_poker(&self, who: &str, tx: tokio::sync::mpsc::UnboundedSender<Poke>) {
        self.pokes.lock().unwrap().push((who.to_owned(), tx));
    }

    /// Sends the latest async role of `who` a poke.
    pub(crate) fn poke(&self, who: &str, poke: Poke) {
        let pokes = self.pokes.lock().unwrap();
        let (_, tx) = pokes.iter().rev().find(|(w, _)| w == who).unwrap();
        tx.send(poke).expect("role running");
    }

    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    pub(crate) fn starts(&self) -> Vec<Entry> {
        let e = self.entries();
        e.into_iter().filter(|e| e.what == What::Start).collect()
    }

    /// The candidate whose role runs now, and its token.
    pub(crate) fn running(&self) -> Option<(String, u64)> {
        let mut running = None;
        for e in self.entries() {
            running = match e.what {
                What::Start => Some((e.who, e.token)),
                What::Act => running,
                What::Stop => None,
            };
        }
        running
    }

    /// Waits until a role of a term with a token above `above` has started; returns who and
    /// token (of the first such start).
    pub(crate) async fn next_term(&self, above: u64) -> (String, u64) {
        let newer = || {
            let starts = self.starts();
            let s = starts.into_iter().find(|s| s.token > above)?;
            Some((s.who, s.token))
        };
        must_eventually(PATIENCE, "a role of a new term starts", || async {
            newer().is_some()
        })
        .await;
        newer().unwrap()
    }

    /// The role of `who`, to send it messages.
    pub(crate) fn role(&self, who: &str) -> Addr<Recorder> {
        let roles = self.roles.lock().unwrap();
        let (_, addr) = roles.iter().rev().find(|(w, _)| w == who).unwrap();
        addr.upgrade().expect("role running")
    }

    /// No two role runs overlap (a start only when nothing runs), and a new term's token is
    /// above every earlier one (a restart within a term keeps its token and candidate).
    pub(crate) fn check(&self) {
        let mut running: Option<&Entry> = None;
        let mut last: Option<(String, u64)> = None;
        let entries = self.entries();
        for e in &entries {
            match e.what {
                What::Start => {
                    assert!(
                        running.is_none(),
                        "{e:?} while {running:?} runs: {entries:#?}"
                    );
                    if let Some((who, token)) = &last {
                        let same_term = *token == e.token && *who == e.who;
                        assert!(same_term || e.token > *token, "token order: {entries:#?}");
                    }
                    last = Some((e.who.clone(), e.token));
                    running = Some(e);
                }
                What::Act => {
                    let r = running.unwrap_or_else(|| panic!("{e:?} outside a run: {entries:#?}"));
                    let own = (&r.who, r.token) == (&e.who, e.token);
                    assert!(own, "{e:?} inside {r:?}'s run: {entries:#?}");
                }
                What::Stop => {
                    let r = running.take().expect("a stop follows a start");
                    assert_eq!((&r.who, r.token), (&e.who, e.token));
                }
            }
        }
    }
}

/// A role that records itself; `Boom` makes it panic, `Quit` stops it, `Unhealthy` asks its
/// candidate to step down.
pub(crate) struct Recorder {
    who: String,
    term: Term,
    book: Book,
    /// Whether a stop was already put off once (see `Book::linger`).
    lingered: bool,
}

impl Recorder {
    fn record(&self, what: What) {
        self.book.entries.lock().unwrap().push(Entry {
            who: self.who.clone(),
            token: self.term.token(),
            what,
            at: Instant::now(),
            wall: std::time::SystemTime::now(),
        });
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = (self.who.clone(), ctx.address().downgrade());
        self.book.roles.lock().unwrap().push(me);
        self.record(What::Start);
    }
    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if *self.book.hold_stop.borrow() {
            let mut gate = self.book.hold_stop.subscribe();
            let opened = async move {
                let _ = gate.wait_for(|held| !*held).await;
            };
            // Stopping again once the gate opens goes through this method again, and passes.
            ctx.spawn(opened.into_actor(self).map(|_, _, ctx| ctx.stop()));
            return Running::Continue;
        }
        if self.book.linger.load(Ordering::SeqCst) && !self.lingered {
            self.lingered = true;
            ctx.run_later(Duration::from_millis(100), |_, ctx| ctx.stop());
            return Running::Continue;
        }
        Running::Stop
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.record(What::Stop);
        if self.book.panic_when_stopped.load(Ordering::SeqCst) {
            panic!("test role panics in stopped()");
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum Poke {
    Boom,
    Quit,
    Unhealthy,
}

impl Handler<Poke> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Poke, ctx: &mut Context<Self>) {
        match msg {
            Poke::Boom => panic!("test role panics"),
            Poke::Quit => ctx.stop(),
            Poke::Unhealthy => self.term.step_down(),
        }
    }
}

pub(crate) fn options(who: &str) -> ElectorOptions {
    ElectorOptions::new(who)
        .metadata(serde_json::json!({"who": who}))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
}

pub(crate) fn elect(
    m: &LockManager,
    who: &str,
    options: ElectorOptions,
    book: &Book,
) -> nlock::Elector {
    let (who, book) = (who.to_owned(), book.clone());
    m.elector(KEY, options)
        .actor(move |term| Recorder {
            who: who.clone(),
            term,
            book: book.clone(),
            lingered: false,
        })
        .unwrap()
}

/// Follows `changes` from now on, on a task of its own (a stream's consumer opens on its first
/// poll, and a change missed before that is not replayed).
fn follow(mut changes: LeaderChanges) -> tokio::sync::mpsc::UnboundedReceiver<LeaderChange> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    actix::spawn(async move {
        while let Some(c) = changes.next().await {
            if tx.send(c).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next_change(
    changes: &mut tokio::sync::mpsc::UnboundedReceiver<LeaderChange>,
) -> LeaderChange {
    tokio::time::timeout(PATIENCE, changes.recv())
        .await
        .expect("a change within PATIENCE")
        .expect("the stream does not end")
}

/// `seen` is `expected`, except that an end may show as `Ended`: the key keeps one message,
/// so when the next term's first write lands before an observer reads the end's marker (a
/// release, a delete), the observer sees only that the term ended. Everything else, the
/// elections, who, tokens and order, must match exactly.
fn assert_changes(
    seen: &[(LeaderChangeKind, String, u64)],
    expected: &[(LeaderChangeKind, String, u64)],
) {
    let same = seen.len() == expected.len()
        && seen.iter().zip(expected).all(|(s, e)| {
            let kind_ok =
                s.0 == e.0 || (s.0 == LeaderChangeKind::Ended && e.0 != LeaderChangeKind::Elected);
            kind_ok && s.1 == e.1 && s.2 == e.2
        });
    assert!(same, "seen {seen:?}, expected {expected:?}");
}

/// (kind, identity, token) of a change.
fn summary(c: &LeaderChange) -> (LeaderChangeKind, String, u64) {
    let l = c.leader.as_ref().expect("the change names a leader");
    (c.kind, l.identity.clone(), l.token)
}

#[actix::test]
async fn a_role_that_panics_is_restarted_while_the_term_lasts_and_never_after() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let book = Book::default();
    let elector = elect(&m, "a", options("a"), &book);
    let (_, token) = book.next_term(0).await;

    book.role("a").do_send(Poke::Boom);
    must_eventually(PATIENCE, "restarted after a panic", || async {
        book.starts().len() == 2
    })
    .await;
    book.role("a").do_send(Poke::Quit);
    must_eventually(PATIENCE, "restarted after stopping itself", || async {
        book.starts().len() == 3 && book.running().is_some()
    })
    .await;
    assert!(book.starts().iter().all(|s| s.token == token));

    // At the end of the term the role panics while stopping: it is not restarted.
    book.panic_when_stopped.store(true, Ordering::SeqCst);
    elector.shutdown().await;
    assert_eq!(elector.status(), ElectorStatus::Stopped);
    assert_eq!(book.running(), None);
    assert_eq!(book.starts().len(), 3);
    assert_eq!(m.leader(KEY).await.unwrap(), None, "released");
    book.check();
}

#[actix::test]
async fn a_lost_term_stops_its_role_for_good_and_the_next_term_starts_a_fresh_one() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let book = Book::default();
    let _elector = elect(&m, "a", options("a").lock_delay(Duration::ZERO), &book);
    let (_, first) = book.next_term(0).await;
    book.panic_when_stopped.store(true, Ordering::SeqCst);
    env.kv().await.delete(KEY).await.unwrap();
    let (_, second) = book.next_term(first).await;
    // One run of the first term (stopped, panicking, never restarted), then the second.
    let tokens: Vec<u64> = book.starts().iter().map(|s| s.token).collect();
    assert_eq!(tokens, [first, second]);
    book.check();
}

#[actix::test]
async fn resign_hands_over_at_once_without_lock_delay_or_ttl() {
    let env = Env::start().await;
    // A TTL and a lock-delay longer than PATIENCE: a handoff that waited for either fails.
    let config = env.config().ttl(Duration::from_secs(30));
    let slow = |who: &str| options(who).lock_delay(Duration::from_secs(60));
    let book = Book::default();
    book.linger.store(true, Ordering::SeqCst);
    let observer = env.manager(config.clone()).await;
    let mut changes = follow(observer.leader_changes(KEY).await.unwrap());
    let ms = [
        env.manager(config.clone()).await,
        env.manager(config.clone()).await,
        env.manager(config.clone()).await,
    ];
    let electors: Vec<_> = ["a", "b", "c"]
        .iter()
        .zip(&ms)
        .map(|(who, m)| (who.to_string(), elect(m, who, slow(who), &book)))
        .collect();
    let (first, t1) = book.next_term(0).await;
    let find = |who: &str| &electors.iter().find(|(w, _)| w == who).unwrap().1;

    find(&first).resign(Duration::from_secs(60)).await;
    let (second, t2) = book.next_term(t1).await;
    assert_ne!(first, second);
    // The role asks to step down: the third candidate leads next.
    book.role(&second).do_send(Poke::Unhealthy);
    let (third, _) = book.next_term(t2).await;
    assert!(third != first && third != second);
    book.check();

    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(summary(&next_change(&mut changes).await));
    }
    use LeaderChangeKind::*;
    let starts = book.starts();
    assert_changes(
        &seen,
        &[
            (Elected, first.clone(), t1),
            (Resigned, first, t1),
            (Elected, second.clone(), t2),
            (Resigned, second, t2),
            (Elected, third, starts[2].token),
        ],
    );
}

#[actix::test]
async fn after_a_foreign_delete_the_old_role_stops_before_the_new_one_starts() {
    let env = Env::start().await;
    let book = Book::default();
    let ms = [
        env.manager(env.config()).await,
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    ];
    let _electors: Vec<_> = ["a", "b", "c"]
        .iter()
        .zip(&ms)
        .map(|(who, m)| elect(m, who, options(who), &book))
        .collect();
    let mut token = 0;
    for _ in 0..3 {
        let (_, t) = book.next_term(token).await;
        token = t;
        env.kv().await.delete(KEY).await.unwrap();
    }
    book.next_term(token).await;
    book.check();
    let stops = book
        .entries()
        .iter()
        .filter(|e| e.what == What::Stop)
        .count();
    assert_eq!(stops, 3, "each deleted term's role stopped");
}

#[actix::test]
async fn no_overlap_and_increasing_tokens_over_cut_resign_delete_and_shutdown() {
    let env = Env::start().await;
    let book = Book::default();
    let config = env.config().retry_interval(Duration::from_millis(100));
    let proxy = TcpProxy::start(env.server.addr()).await;
    let mc = LockManager::connect(&proxy.url(), config.clone().build().unwrap())
        .await
        .unwrap();
    // c, behind the proxy, leads first.
    let _c = elect(&mc, "c", options("c"), &book);
    let (_, mut token) = book.next_term(0).await;
    let ma = env.manager(config.clone()).await;
    let mb = env.manager(config.clone()).await;
    let a = elect(&ma, "a", options("a"), &book);
    let b = elect(&mb, "b", options("b"), &book);

    // 1. c's connection is cut off for longer than the TTL: its lease runs out.
    proxy.set_mode(ProxyMode::Blackhole);
    let (who, t) = book.next_term(token).await;
    assert_ne!(who, "c");
    token = t;
    proxy.set_mode(ProxyMode::Pass);
    // 2. resign, 3. a foreign delete, 4. the leader's manager shuts down.
    let by = |who: &str| if who == "a" { &a } else { &b };
    by(&who).resign(Duration::from_millis(500)).await;
    let (_, t) = book.next_term(token).await;
    token = t;
    env.kv().await.delete(KEY).await.unwrap();
    let (who, t) = book.next_term(token).await;
    token = t;
    let manager = match who.as_str() {
        "a" => &ma,
        "b" => &mb,
        _ => &mc,
    };
    manager.shutdown().await;
    book.next_term(token).await;
    book.check();
    assert!(book.starts().len() >= 5);
}

#[actix::test]
async fn a_blip_shorter_than_the_lease_does_not_restart_the_role() {
    let env = Env::start().await;
    let book = Book::default();
    let proxy = TcpProxy::start(env.server.addr()).await;
    let m = LockManager::connect(&proxy.url(), env.config().build().unwrap())
        .await
        .unwrap();
    let elector = elect(&m, "a", options("a"), &book);
    let (_, token) = book.next_term(0).await;
    let observer = env.manager(env.config()).await;
    let before = observer.holder(KEY).await.unwrap().unwrap().revision;

    // One second of silence (TTL 3 s, refreshes every second), then the connection is cut.
    proxy.set_mode(ProxyMode::Blackhole);
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set_mode(ProxyMode::Pass);
    proxy.cut();
    must_eventually(PATIENCE, "a refresh after the blip", || async {
        let now = observer.holder(KEY).await.unwrap();
        now.is_some_and(|h| h.token == token && h.revision > before + 1)
    })
    .await;
    assert_eq!(book.starts().len(), 1, "{:?}", book.entries());
    assert_eq!(book.running(), Some(("a".into(), token)));
    assert_eq!(elector.status(), ElectorStatus::Leading { token });
}

#[actix::test]
async fn a_paused_leaders_role_sees_it_is_not_held_when_it_resumes() {
    let env = Env::start().await;
    let mut child = ChildClient::start(&env.server.url(), &env.bucket, 3, 100).await;
    child.send(&format!("elect {KEY} child")).await;
    let started = child.expect("role-start").await;
    let old = started["token"].as_u64().unwrap();
    let book = Book::default();
    let m = env
        .manager(env.config().retry_interval(Duration::from_millis(100)))
        .await;
    let _a = elect(&m, "a", options("a"), &book);

    child.pause();
    let (_, token) = book.next_term(old).await;
    let resumed_at = now_us();
    child.resume();
    let stop = child.expect("role-stop").await;
    assert_eq!(stop["token"].as_u64(), Some(old));
    let late: Vec<_> = child
        .pending("tick")
        .into_iter()
        .filter(|t| t["t_us"].as_u64().unwrap() > resumed_at)
        .collect();
    assert!(late.iter().all(|t| t["held"] == false), "{late:?}");
    assert_eq!(book.running(), Some(("a".into(), token)));
}

#[actix::test]
async fn a_killed_leader_is_replaced_after_its_ttl_and_observers_see_the_expiry() {
    let env = Env::start().await;
    let observer = env.manager(env.config()).await;
    let mut changes = follow(observer.leader_changes(KEY).await.unwrap());
    let mut child = ChildClient::start(&env.server.url(), &env.bucket, 3, 100).await;
    child.send(&format!("elect {KEY} child")).await;
    let old = child.expect("role-start").await["token"].as_u64().unwrap();
    let book = Book::default();
    let m = env
        .manager(env.config().retry_interval(Duration::from_millis(100)))
        .await;
    let _a = elect(&m, "a", options("a"), &book);
    child.kill().await;
    let (_, token) = book.next_term(old).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(summary(&next_change(&mut changes).await));
    }
    use LeaderChangeKind::*;
    assert_changes(
        &seen,
        &[
            (Elected, "child".into(), old),
            (Expired, "child".into(), old),
            (Elected, "a".into(), token),
        ],
    );
}

#[actix::test]
async fn an_observer_in_another_process_sees_every_change_in_order() {
    let env = Env::start().await;
    let mut child = ChildClient::start(&env.server.url(), &env.bucket, 3, 100).await;
    child.send(&format!("observe {KEY}")).await;
    child.expect("observing").await;
    let book = Book::default();
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let a = elect(&ma, "a", options("a"), &book);
    let (first, t1) = book.next_term(0).await;
    let _b = elect(&mb, "b", options("b"), &book);
    // Subscribed as an actor, in this process.
    let probe = ChangeProbe::start();
    let _sub = ma
        .subscribe_leader(KEY, probe.addr.clone().recipient())
        .await
        .unwrap();
    // Its first change is the state when it began following, so it follows from then on.
    let mut told = vec![summary(&probe.next().await)];
    a.resign(Duration::from_secs(60)).await;
    let (second, t2) = book.next_term(t1).await;
    env.kv().await.delete(KEY).await.unwrap();
    let (third, t3) = book.next_term(t2).await;

    use LeaderChangeKind::*;
    let expected = [
        (Elected, first.clone(), t1),
        (Resigned, first, t1),
        (Elected, second.clone(), t2),
        (Deleted, second, t2),
        (Elected, third, t3),
    ];
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let c = child.expect("leader").await;
        let kind = match c["kind"].as_str().unwrap() {
            "Elected" => Elected,
            "Resigned" => Resigned,
            "Deleted" => Deleted,
            "Expired" => Expired,
            "Ended" => Ended,
            other => panic!("{other}"),
        };
        let identity = c["identity"].as_str().unwrap().to_owned();
        seen.push((kind, identity, c["token"].as_u64().unwrap()));
    }
    assert_changes(&seen, &expected);
    while told.len() < expected.len() {
        told.push(summary(&probe.next().await));
    }
    assert_changes(&told, &expected);
    let leader = mb.leader(KEY).await.unwrap().unwrap();
    assert_eq!(leader.token, t3);
    assert_eq!(leader.metadata["who"], leader.identity);
}

/// An actor that forwards every `LeaderChange` it is sent into a channel.
struct ChangeProbe {
    addr: Addr<ChangeActor>,
    rx: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<LeaderChange>>,
}

struct ChangeActor(tokio::sync::mpsc::UnboundedSender<LeaderChange>);

impl Actor for ChangeActor {
    type Context = Context<Self>;
}

impl Handler<LeaderChange> for ChangeActor {
    type Result = ();
    fn handle(&mut self, msg: LeaderChange, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

impl ChangeProbe {
    fn start() -> ChangeProbe {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ChangeProbe {
            addr: ChangeActor(tx).start(),
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    async fn next(&self) -> LeaderChange {
        let mut rx = self.rx.lock().await;
        tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("a change within PATIENCE")
            .expect("probe alive")
    }
}

/// A candidate in its own process takes part: paused past its TTL, then killed. The check is
/// on the wall clock, which every process here shares: in-process roles run from start to
/// stop; the child's role acts from its start to its last tick that saw `is_held()` true (a
/// paused process's role is stopped only after it resumes, but it no longer acts).
#[actix::test]
async fn no_role_acts_while_another_runs_over_a_paused_and_a_killed_leader_process() {
    let env = Env::start().await;
    let mut child = ChildClient::start(&env.server.url(), &env.bucket, 3, 100).await;
    child.send(&format!("elect {KEY} child")).await;
    let mut child_runs = Vec::new(); // (token, start t_us)
    let started = child.expect("role-start").await;
    let first = started["token"].as_u64().unwrap();
    child_runs.push((first, started["t_us"].as_u64().unwrap()));
    let book = Book::default();
    let config = env.config().retry_interval(Duration::from_millis(100));
    let (ma, mb) = (env.manager(config.clone()).await, env.manager(config).await);
    let a = elect(&ma, "a", options("a"), &book);
    let b = elect(&mb, "b", options("b"), &book);

    // 1. The child is paused past its TTL; a or b takes over; the child resumes.
    child.pause();
    let (_, token) = book.next_term(first).await;
    child.resume();
    assert_eq!(
        child.expect("role-stop").await["token"].as_u64(),
        Some(first)
    );
    // 2. a and b resign and stand aside for 3 s: the child leads again.
    a.resign(Duration::from_secs(3)).await;
    b.resign(Duration::from_secs(3)).await;
    let started = child.expect("role-start").await;
    let second = started["token"].as_u64().unwrap();
    assert!(second > token);
    child_runs.push((second, started["t_us"].as_u64().unwrap()));
    // 3. The child is killed while it leads; a or b takes over after its TTL.
    child.kill().await;
    let (_, last) = book.next_term(second).await;
    assert!(last > second);

    // Runs on the wall clock: (start, end, who, token).
    let us = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
    };
    let mut runs = Vec::new();
    let mut open = None;
    for e in book.entries() {
        match e.what {
            What::Start => open = Some((us(e.wall), e.who, e.token)),
            What::Act => {}
            What::Stop => {
                let (start, who, token) = open.take().unwrap();
                runs.push((start, us(e.wall), who, token));
            }
        }
    }
    if let Some((start, who, token)) = open {
        runs.push((start, u64::MAX, who, token));
    }
    child.drain().await;
    let ticks = child.pending("tick");
    for (token, start) in child_runs {
        let acted = ticks
            .iter()
            .filter(|t| t["token"].as_u64() == Some(token) && t["held"] == true)
            .map(|t| t["t_us"].as_u64().unwrap())
            .max()
            .unwrap_or(start);
        runs.push((start, acted, "child".to_owned(), token));
    }
    runs.sort();
    for pair in runs.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlap: {pair:?}");
        let same_term = pair[0].3 == pair[1].3 && pair[0].2 == pair[1].2;
        assert!(same_term || pair[0].3 < pair[1].3, "tokens: {pair:?}");
    }
}

/// From plain tokio, with no actix system of the caller's own: the electors and their roles
/// run on nlock's own actor thread; handoff and shutdown work the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electors_work_from_plain_tokio() {
    let env = Env::start().await;
    let book = Book::default();
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let a = elect(&ma, "a", options("a"), &book);
    let (first, t1) = book.next_term(0).await;
    assert_eq!(first, "a");
    let b = elect(&mb, "b", options("b"), &book);
    a.resign(Duration::from_secs(60)).await;
    let (second, t2) = book.next_term(t1).await;
    assert_eq!(second, "b");
    assert_eq!(mb.leader(KEY).await.unwrap().unwrap().token, t2);
    b.shutdown().await;
    a.shutdown().await;
    assert_eq!(book.running(), None);
    assert_eq!(ma.leader(KEY).await.unwrap(), None);
    book.check();
}

#[actix::test]
async fn manager_shutdown_stops_the_role_before_the_term_is_released() {
    let env = Env::start().await;
    let config = env.config().ttl(Duration::from_secs(30));
    let book = Book::default();
    // Roles take 100 ms to stop: a term released before its role stopped shows as an overlap.
    book.linger.store(true, Ordering::SeqCst);
    let ma = env.manager(config.clone()).await;
    let mb = env.manager(config).await;
    let _a = elect(&ma, "a", options("a"), &book);
    let (first, t1) = book.next_term(0).await;
    assert_eq!(first, "a");
    let _b = elect(&mb, "b", options("b"), &book);
    must_eventually(PATIENCE, "b campaigns", || async {
        crate::fixture::waiting_on(&mb, KEY).await > 0
    })
    .await;
    // Only the manager is shut down, not the elector: the manager stops it first.
    ma.shutdown().await;
    let (second, _) = book.next_term(t1).await;
    assert_eq!(second, "b");
    book.check();
}
