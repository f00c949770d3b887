//! `nlock elect` against a real nats-server: one command at a time across candidates, a
//! take-over after a SIGKILLed leader, hand-overs when the command exits.

mod support;

use std::process::{Child, Stdio};

use support::{eventually, output, wait_exit, Lines, Scene, Server};

const KEY: &str = "jobs.leader";

/// A command that logs "start ID TOKEN PID", runs until SIGTERM, then logs "stop ID TOKEN PID".
/// Killed outright (SIGKILL) it logs nothing more.
fn looping(log: &std::path::Path) -> String {
    format!(
        "echo start $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; \
         trap 'echo stop $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; exit 0' TERM; \
         while :; do sleep 0.05; done",
        log.display()
    )
}

/// `nlock --ttl TTL elect --id ID KEY -- sh -c SCRIPT`, its standard error read line by
/// line, returned once it campaigns.
fn candidate(scene: &Scene, server: &Server, ttl: &str, id: &str, script: &str) -> Lines {
    let mut cmd = scene.nlock(server);
    cmd.args(["--ttl", ttl, "elect", "--id", id])
        .args([KEY, "--", "sh", "-c", script]);
    let lines = Lines::spawn_stderr(&mut cmd);
    lines.next_containing("campaigning");
    lines
}

fn log_lines(scene: &Scene) -> Vec<String> {
    std::fs::read_to_string(scene.path("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until the log has a line starting with `prefix`, and returns its fields.
fn wait_line(scene: &Scene, prefix: &str) -> Vec<String> {
    eventually(&format!("the log has {prefix:?}"), || {
        log_lines(scene)
            .into_iter()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.split(' ').map(str::to_owned).collect())
    })
}

/// Who leads, as `nlock who --json` reports it: the lock's description, or None when free.
fn who(scene: &Scene, server: &Server, ttl: &str) -> Option<String> {
    let out = output(
        scene
            .nlock(server)
            .args(["--ttl", ttl, "--json", "who", KEY]),
    );
    match out.code {
        Some(0) => {
            let held: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
            Some(held.to_string())
        }
        Some(6) => None,
        other => panic!("who: {other:?}: {}", out.stderr),
    }
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) with plain integers.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// Checks that no two commands ever ran at once: each start comes after the stop (or the
/// observed death, "dead ID") of the one before.
fn assert_one_at_a_time(lines: &[String]) {
    let mut running: Option<&str> = None;
    for line in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[0] {
            "start" => {
                assert!(running.is_none(), "two commands at once: {lines:#?}");
                running = Some(fields[1]);
            }
            "stop" | "dead" => {
                assert_eq!(running, Some(fields[1]), "{lines:#?}");
                running = None;
            }
            other => panic!("unexpected line {other:?}"),
        }
    }
}

#[test]
fn two_elects_run_one_command_and_the_second_takes_over_when_the_first_is_killed() {
    let server = Server::start();
    let scene = Scene::new();
    let script = looping(&scene.path("log"));
    let mut a = candidate(&scene, &server, "2s", "a", &script);
    let started_a = wait_line(&scene, "start a ");
    let b = candidate(&scene, &server, "2s", "b", &script);
    let leader = who(&scene, &server, "2s").expect("a leads");
    assert!(leader.contains("\\\"id\\\":\\\"a\\\""), "{leader}");

    // A SIGKILLed nlock cannot stop its command: the death signal set at spawn does.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let pid_a = &started_a[3];
    eventually("a's command is gone", || gone(pid_a).then_some(()));
    // Written by the test once a's command is seen gone; b's start must come after it.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(scene.path("log"))
        .unwrap();
    std::io::Write::write_all(&mut log, b"dead a\n").unwrap();

    // b takes over once the key expires (TTL 2 s), with a later term.
    let started_b = wait_line(&scene, "start b ");
    let (token_a, token_b): (u64, u64) =
        (started_a[2].parse().unwrap(), started_b[2].parse().unwrap());
    assert!(token_b > token_a, "{token_a} then {token_b}");
    let leader = who(&scene, &server, "2s").expect("b leads");
    assert!(leader.contains("\\\"id\\\":\\\"b\\\""), "{leader}");

    // SIGTERM to nlock: the command is stopped, the term released, nlock exits 0.
    let mut b = b;
    sigterm(&b.child);
    assert_eq!(wait_exit(&mut b.child).code(), Some(0));
    wait_line(&scene, "stop b ");
    assert_eq!(who(&scene, &server, "2s"), None, "released");
    let lines = log_lines(&scene);
    assert_one_at_a_time(&lines);
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

#[test]
fn resign_on_exit_hands_over_at_once_and_exits_with_the_commands_code() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    // a's command runs until its standard input closes, then exits with 3.
    let script_a = format!(
        "echo start $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; read line || true; \
         echo stop $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; exit 3",
        log.display()
    );
    let mut cmd = scene.nlock(&server);
    // A TTL longer than the tests' patience: b can only take over if a hands over.
    cmd.args(["--ttl", "60s", "elect", "--id", "a", "--resign-on-exit"])
        .args([KEY, "--", "sh", "-c", &script_a])
        .stdin(Stdio::piped());
    let mut a = Lines::spawn_stderr(&mut cmd);
    wait_line(&scene, "start a ");
    let mut b = candidate(&scene, &server, "60s", "b", &looping(&log));

    drop(a.child.stdin.take());
    assert_eq!(wait_exit(&mut a.child).code(), Some(3));
    wait_line(&scene, "start b ");
    sigterm(&b.child);
    assert_eq!(wait_exit(&mut b.child).code(), Some(0));
    let lines = log_lines(&scene);
    assert_one_at_a_time(&lines);
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

#[test]
fn a_command_that_exits_runs_again_in_a_new_term() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    let script = format!(
        "echo start $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; \
         echo stop $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}",
        log.display()
    );
    let mut a = candidate(&scene, &server, "2s", "a", &script);
    let lines = eventually("the command ran three times", || {
        let lines = log_lines(&scene);
        (lines.len() >= 6).then_some(lines)
    });
    sigterm(&a.child);
    assert_eq!(wait_exit(&mut a.child).code(), Some(0));
    let lines = &lines[..6];
    assert_one_at_a_time(lines);
    let tokens: Vec<u64> = lines
        .iter()
        .step_by(2)
        .map(|l| l.split(' ').nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "a term each: {tokens:?}"
    );
}

#[test]
fn a_command_that_exits_at_once_is_rerun_after_doubling_back_offs() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    let script = format!("echo ran $NLOCK_TOKEN >> {}", log.display());
    let mut a = candidate(&scene, &server, "2s", "a", &script);
    // Each quick exit names the back-off before the next run, doubling from 1s: the command
    // has run once per back-off said, not again and again meanwhile.
    for (runs, delay) in [(1, "1s"), (2, "2s"), (3, "4s")] {
        let line = a.next_containing("back-off");
        assert!(
            line.contains(&format!("campaigning again in {delay}")),
            "{line}"
        );
        assert_eq!(log_lines(&scene).len(), runs, "{:#?}", log_lines(&scene));
    }
    sigterm(&a.child);
    assert_eq!(wait_exit(&mut a.child).code(), Some(0));
    // The elect help tells of it.
    let help = output(scene.bare().args(["elect", "--help"]));
    assert!(help.stdout.contains("backs off"), "{}", help.stdout);
}

#[test]
fn ls_and_who_show_a_leader_by_its_identity_and_metadata() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    let mut a = candidate(&scene, &server, "2s", "cand-a", &looping(&log));
    let start = wait_line(&scene, "start cand-a ");
    let pid = a.child.id();
    let readable = format!("leader cand-a pid={pid} (pid {pid} on ");
    let ls = output(scene.nlock(&server).args(["--ttl", "2s", "ls"]));
    assert_eq!(ls.code, Some(0), "{}", ls.stderr);
    assert!(ls.stdout.contains(&readable), "{}", ls.stdout);
    assert!(!ls.stdout.contains('{'), "raw JSON: {}", ls.stdout);
    let who = output(scene.nlock(&server).args(["--ttl", "2s", "who", KEY]));
    assert_eq!(who.code, Some(0), "{}", who.stderr);
    assert!(
        who.stdout
            .starts_with(&format!("{KEY} is held by {readable}")),
        "{}",
        who.stdout
    );
    assert!(
        who.stdout.contains(&format!("token {}", start[2])),
        "{}",
        who.stdout
    );
    // With --json the candidate is a field of its own.
    let ls = output(scene.nlock(&server).args(["--ttl", "2s", "--json", "ls"]));
    let rows: serde_json::Value = serde_json::from_str(ls.stdout.trim()).unwrap();
    assert_eq!(rows[0]["leader"]["id"], "cand-a", "{rows}");
    assert_eq!(rows[0]["leader"]["meta"]["pid"], pid, "{rows}");
    sigterm(&a.child);
    assert_eq!(wait_exit(&mut a.child).code(), Some(0));
}

#[test]
fn a_command_that_cannot_start_ends_nlock_with_127() {
    let server = Server::start();
    let scene = Scene::new();
    let out = output(
        scene
            .nlock(&server)
            .args(["elect", KEY, "--", "/nonexistent/command"]),
    );
    assert_eq!(out.code, Some(127), "{}", out.stderr);
    assert_eq!(who(&scene, &server, "30s"), None, "released");
}

#[test]
fn the_next_leader_starts_only_after_the_command_has_stopped() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    // a's command takes its time to stop: b must not start meanwhile.
    let slow = format!(
        "echo start $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; \
         trap 'sleep 0.5; echo stop $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; exit 0' TERM; \
         while :; do sleep 0.05; done",
        log.display()
    );
    let mut a = candidate(&scene, &server, "60s", "a", &slow);
    wait_line(&scene, "start a ");
    let mut b = candidate(&scene, &server, "60s", "b", &looping(&log));
    sigterm(&a.child);
    assert_eq!(wait_exit(&mut a.child).code(), Some(0));
    wait_line(&scene, "start b ");
    sigterm(&b.child);
    assert_eq!(wait_exit(&mut b.child).code(), Some(0));
    let lines = log_lines(&scene);
    assert_one_at_a_time(&lines);
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    let stubborn = format!(
        "echo start $NLOCK_LEADER_ID $NLOCK_TOKEN $$ >> {0}; trap '' TERM; \
         while :; do sleep 0.05; done",
        log.display()
    );
    let mut cmd = scene.nlock(&server);
    cmd.args(["--ttl", "60s", "elect", "--id", "a", "--grace", "200ms"])
        .args([KEY, "--", "sh", "-c", &stubborn]);
    let mut a = Lines::spawn_stderr(&mut cmd);
    let started = wait_line(&scene, "start a ");
    sigterm(&a.child);
    a.next_containing("SIGKILL");
    assert_eq!(wait_exit(&mut a.child).code(), Some(0));
    assert!(gone(&started[3]), "the command was killed");
    assert_eq!(who(&scene, &server, "60s"), None, "released");
}

/// A command that ignores SIGTERM and logs "ID TOKEN NANOS" (wall clock) every 50 ms.
fn stubborn_logger(log: &std::path::Path) -> String {
    format!(
        "trap '' TERM; while :; do echo \"$NLOCK_LEADER_ID $NLOCK_TOKEN $(date +%s%N)\" \
         >> {0}; sleep 0.05; done",
        log.display()
    )
}

/// The log's lines as (id, token, nanos), in the order of their timestamps.
fn stamped(scene: &Scene) -> Vec<(String, u64, u128)> {
    let mut lines: Vec<(String, u64, u128)> = log_lines(scene)
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            // A line cut short by a SIGKILL mid-write is not a whole stamp.
            Some((
                f[0].to_owned(),
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    lines.sort_by_key(|l| l.2);
    lines
}

/// Waits until some term with a token above `above` has logged, and returns its id and token.
fn next_term(scene: &Scene, above: u64) -> (String, u64) {
    eventually(&format!("a term above {above} logs"), || {
        stamped(scene)
            .into_iter()
            .find(|l| l.1 > above)
            .map(|l| (l.0, l.1))
    })
}

/// The terms' lines never interleave: once a term's line follows another term's, the earlier
/// term never logs again. Returns the terms in order.
fn assert_terms_do_not_interleave(lines: &[(String, u64, u128)]) -> Vec<(String, u64)> {
    let mut terms: Vec<(String, u64)> = Vec::new();
    for (id, token, at) in lines {
        let term = (id.clone(), *token);
        if terms.last() == Some(&term) {
            continue;
        }
        assert!(
            !terms.contains(&term),
            "term {term:?} logged at {at} after a later term had started: {terms:?}"
        );
        terms.push(term);
    }
    terms
}

/// Three candidates whose commands ignore SIGTERM and log wall-clock stamps; the leader is
/// force-released, its nlock killed with SIGKILL, its server connection lost past the TTL
/// (the server frozen), and its nlock sent SIGTERM. After each, the next term's command must
/// start only after the old one logged its last line.
#[test]
fn commands_of_different_terms_never_interleave_over_force_release_kill_freeze_and_sigterm() {
    let server = Server::start();
    let scene = Scene::new();
    let script = stubborn_logger(&scene.path("log"));
    let spawn = |id: &str| {
        let mut cmd = scene.nlock(&server);
        cmd.args(["--ttl", "2s", "elect", "--id", id, "--grace", "3s"])
            .args([KEY, "--", "sh", "-c", &script]);
        let lines = Lines::spawn_stderr(&mut cmd);
        lines.next_containing("campaigning");
        // --grace 3s is longer than the kill window the 1 s lock-delay leaves: said.
        lines.next_containing("the command gets 750ms between SIGTERM and SIGKILL");
        (id.to_owned(), lines)
    };
    let mut nlocks: Vec<(String, Lines)> = vec![spawn("a"), spawn("b"), spawn("c")];
    let (_, mut token) = next_term(&scene, 0);

    // 1. An operator breaks the lock: the next term starts after the lock-delay (1 s), while
    // the old command ignores SIGTERM with a --grace of 3 s.
    let out = output(
        scene
            .nlock(&server)
            .args(["--ttl", "2s", "release", "--force", "--yes", KEY]),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    (_, token) = next_term(&scene, token);

    // 2. The leading nlock is killed outright; a new candidate replaces it.
    let (leader, _) = next_term(&scene, token - 1);
    let at = nlocks.iter().position(|(id, _)| *id == leader).unwrap();
    let (_, mut killed) = nlocks.remove(at);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    nlocks.push(spawn("d"));
    (_, token) = next_term(&scene, token);

    // 3. The server is frozen past the TTL: the leader's refreshes fail and its lease runs
    // out; when the server resumes, the key expires and the next term starts at once.
    server.signal(libc::SIGSTOP);
    std::thread::sleep(std::time::Duration::from_secs(4)); // the fault's duration
    server.signal(libc::SIGCONT);
    (_, token) = next_term(&scene, token);

    // 4. SIGTERM to the leading nlock: it keeps the term until its command is killed at
    // --grace, and exits 0.
    let (leader, _) = next_term(&scene, token - 1);
    let at = nlocks.iter().position(|(id, _)| *id == leader).unwrap();
    let (_, mut stopped) = nlocks.remove(at);
    sigterm(&stopped.child);
    assert_eq!(wait_exit(&mut stopped.child).code(), Some(0));
    next_term(&scene, token);

    for (_, n) in &nlocks {
        sigterm(&n.child);
    }
    for (_, n) in &mut nlocks {
        assert_eq!(wait_exit(&mut n.child).code(), Some(0));
    }
    let terms = assert_terms_do_not_interleave(&stamped(&scene));
    assert!(terms.len() >= 5, "{terms:?}");
}

/// A candidate started just after an operator broke the leader's term (`release --force`)
/// waits the lock-delay like the others, so the old command (ignoring SIGTERM, killed within
/// its 750 ms kill window) has stopped first: the new candidate's view of the key may open
/// only after its own first write, and a tenure whose end it never saw counts as unclean.
/// Sixteen rounds, each with a fresh candidate: which comes first is a race.
#[test]
fn a_candidate_started_just_after_a_force_release_still_waits_the_lock_delay() {
    let server = Server::start();
    let scene = Scene::new();
    let script = stubborn_logger(&scene.path("log"));
    let spawn = |id: String| {
        let mut cmd = scene.nlock(&server);
        cmd.args(["--ttl", "2s", "elect", "--id", &id, "--grace", "3s"])
            .args([KEY, "--", "sh", "-c", &script]);
        Lines::spawn_stderr(&mut cmd)
    };
    let mut old = spawn("n0".to_owned());
    let (_, mut token) = next_term(&scene, 0);
    for round in 1..=16 {
        let out = output(
            scene
                .nlock(&server)
                .args(["--ttl", "2s", "release", "--force", "--yes", KEY]),
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let new = spawn(format!("n{round}"));
        (_, token) = next_term(&scene, token);
        // The old candidate (its command killed by now) leaves; the newest may lead on.
        sigterm(&old.child);
        assert_eq!(wait_exit(&mut old.child).code(), Some(0));
        old = new;
    }
    sigterm(&old.child);
    assert_eq!(wait_exit(&mut old.child).code(), Some(0));
    let terms = assert_terms_do_not_interleave(&stamped(&scene));
    assert!(terms.len() >= 17, "{terms:?}");
}

#[test]
fn leader_names_the_candidate_and_watch_shows_the_hand_over() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    // A TTL longer than the tests' patience: b can only take over if a hands over.
    let mut a = candidate(&scene, &server, "60s", "a", &looping(&log));
    wait_line(&scene, "start a ");

    let out = output(scene.nlock(&server).args(["--ttl", "60s", "leader", KEY]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(&format!("{KEY} is led by a pid=")),
        "{}",
        out.stdout
    );
    let out = output(
        scene
            .nlock(&server)
            .args(["--ttl", "60s", "--json", "leader", KEY]),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let led: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(led["identity"], "a", "{led}");
    let token_a = led["token"].as_u64().unwrap();

    let mut cmd = scene.nlock(&server);
    cmd.args(["--ttl", "60s", "leader", "--watch", KEY]);
    let watch = Lines::spawn(&mut cmd);
    let first = watch.next();
    assert!(first.contains(&format!(" {KEY} elected a ")), "{first}");
    assert!(first.ends_with(&format!("token {token_a}")), "{first}");

    let mut b = candidate(&scene, &server, "60s", "b", &looping(&log));
    sigterm(&a.child);
    assert_eq!(wait_exit(&mut a.child).code(), Some(0));
    // The release, or (when b's first write replaced its marker before the watcher read it)
    // the end of a's term seen as b's began.
    let ended = watch.next();
    assert!(
        (ended.contains(&format!(" {KEY} resigned a "))
            || ended.contains(&format!(" {KEY} ended a ")))
            && ended.ends_with(&format!("token {token_a}")),
        "{ended}"
    );
    let elected = watch.next();
    assert!(elected.contains(&format!(" {KEY} elected b ")), "{elected}");

    sigterm(&b.child);
    assert_eq!(wait_exit(&mut b.child).code(), Some(0));
    assert!(watch.next().contains(&format!(" {KEY} resigned b ")));
    let out = output(scene.nlock(&server).args(["--ttl", "60s", "leader", KEY]));
    assert_eq!(out.code, Some(6), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("{KEY} has no leader"));
}

#[test]
fn a_lock_ttl_lets_the_next_candidate_lead_soon_after_a_killed_leader_on_a_long_ttl_bucket() {
    let server = Server::start();
    let scene = Scene::new();
    let script = looping(&scene.path("log"));
    let spawn = |id: &str| {
        let mut cmd = scene.nlock(&server);
        cmd.args(["--ttl", "30s", "elect", "--lock-ttl", "3s", "--id", id])
            .args([KEY, "--", "sh", "-c", &script]);
        let lines = Lines::spawn_stderr(&mut cmd);
        lines.next_containing("campaigning");
        lines
    };
    let mut a = spawn("a");
    wait_line(&scene, "start a ");
    let _b = spawn("b");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // Only the term's own 3 s TTL ends it; the bucket's is 30 s. Bounded well below that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !log_lines(&scene).iter().any(|l| l.starts_with("start b ")) {
        assert!(
            std::time::Instant::now() < deadline,
            "b does not lead 15 s after a was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
