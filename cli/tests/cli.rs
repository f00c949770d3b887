//! The `nlock` binary against real nats-server processes.

mod support;

use std::process::{Child, Stdio};

use support::{output, wait_exit, Lines, Scene, Server};

/// Starts `nlock run KEY -- sh` holding the lock until its standard input closes; returns the
/// process and the fencing token the command was given.
fn hold(scene: &Scene, server: &Server, key: &str, extra: &[&str]) -> (Child, u64) {
    let marker = format!("token-{key}-{}", std::process::id());
    let _ = std::fs::remove_file(scene.path(&marker));
    let child = scene
        .nlock(server)
        .arg("run")
        .args(extra)
        .arg(key)
        .args(["--", "sh", "-c"])
        .arg(format!("echo $NLOCK_TOKEN > {marker}; read line || true"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let token = scene.wait_file(&marker).trim().parse().unwrap();
    (child, token)
}

/// Ends a [`hold`]: closes the command's input and waits for nlock to release and exit.
fn let_go(mut child: Child) -> Option<i32> {
    drop(child.stdin.take());
    wait_exit(&mut child).code()
}

/// Creates the bucket (with the bucket flags `flags`) as only `run` and `elect` do: a run of
/// `true` under a lock.
fn make_bucket(scene: &Scene, server: &Server, flags: &[&str]) {
    let out = output(scene.nlock(server).args(flags).args([
        "run",
        "--quiet",
        "make.bucket",
        "--",
        "true",
    ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON: {text:?}: {e}"))
}

#[test]
fn runs_on_one_key_never_overlap() {
    let server = Server::start();
    let scene = Scene::new();
    let log = scene.path("log");
    let runs: Vec<Child> = (0..3)
        .map(|_| {
            scene
                .nlock(&server)
                .args(["run", "--quiet", "jobs.exclusive", "--", "sh", "-c"])
                .arg(format!(
                    "echo start $NLOCK_KEY $NLOCK_TOKEN >> {0}; sleep 0.2; \
                     echo stop $NLOCK_KEY $NLOCK_TOKEN >> {0}",
                    log.display()
                ))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut run in runs {
        assert_eq!(wait_exit(&mut run).code(), Some(0));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    let mut tokens = Vec::new();
    for pair in lines.chunks(2) {
        let start: Vec<&str> = pair[0].split(' ').collect();
        let stop: Vec<&str> = pair[1].split(' ').collect();
        assert_eq!(start[..2], ["start", "jobs.exclusive"], "{text}");
        assert_eq!(stop[..2], ["stop", "jobs.exclusive"], "{text}");
        assert_eq!(
            start[2], stop[2],
            "a start and a stop of different tenures: {text}"
        );
        tokens.push(start[2].parse::<u64>().unwrap());
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[test]
fn no_wait_and_timeout_on_a_held_lock_do_not_run_the_command() {
    let server = Server::start();
    let scene = Scene::new();
    let (holder, _) = hold(&scene, &server, "jobs.busy", &[]);

    let busy =
        output(
            scene
                .nlock(&server)
                .args(["run", "--no-wait", "jobs.busy", "--", "touch", "ran"]),
        );
    assert_eq!(busy.code, Some(3), "{}", busy.stderr);
    assert!(busy.stderr.contains("is held by"), "{}", busy.stderr);
    let late = output(scene.nlock(&server).args([
        "run",
        "--timeout",
        "300ms",
        "jobs.busy",
        "--",
        "touch",
        "ran",
    ]));
    assert_eq!(late.code, Some(4), "{}", late.stderr);
    // Not a terminal: the waiting display is plain lines, or nothing if it gave up first.
    assert!(!late.stderr.contains('\r'), "{}", late.stderr);
    assert!(!scene.path("ran").exists());

    assert_eq!(let_go(holder), Some(0));
    let free =
        output(
            scene
                .nlock(&server)
                .args(["run", "--no-wait", "jobs.busy", "--", "touch", "ran"]),
        );
    assert_eq!(free.code, Some(0), "{}", free.stderr);
    assert!(scene.path("ran").exists());
}

#[test]
fn the_commands_exit_code_passes_through_and_the_lock_is_released() {
    let server = Server::start();
    let scene = Scene::new();
    let run = |args: &[&str]| {
        output(
            scene
                .nlock(&server)
                .args(["run", "jobs.code", "--"])
                .args(args),
        )
    };
    assert_eq!(run(&["sh", "-c", "exit 42"]).code, Some(42));
    assert_eq!(run(&["true"]).code, Some(0));
    // Killed by a signal: 128 + its number, as a shell reports it.
    assert_eq!(run(&["sh", "-c", "kill -KILL $$"]).code, Some(128 + 9));
    let missing = run(&["/nonexistent/nlock-test-command"]);
    assert_eq!(missing.code, Some(127), "{}", missing.stderr);
    assert!(missing.stderr.contains("cannot run"), "{}", missing.stderr);
    // Every run released its lock.
    let who = output(scene.nlock(&server).args(["who", "jobs.code"]));
    assert_eq!(who.code, Some(6), "{}", who.stderr);
}

#[test]
fn a_lost_lock_stops_the_command_with_the_loss_exit_code() {
    let server = Server::start();
    let scene = Scene::new();
    // A command that exits on SIGTERM.
    let mut polite = scene
        .nlock(&server)
        .args(["run", "--grace", "10s", "jobs.lost", "--", "sh", "-c"])
        .arg("trap 'echo stopped > stopped; exit 0' TERM; echo up > up; while :; do sleep 0.05; done")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    scene.wait_file("up");
    let broke = output(
        scene
            .nlock(&server)
            .args(["release", "--force", "--yes", "jobs.lost"]),
    );
    assert_eq!(broke.code, Some(0), "{}", broke.stderr);
    assert_eq!(wait_exit(&mut polite).code(), Some(5));
    assert_eq!(scene.wait_file("stopped").trim(), "stopped");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut polite.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("lost jobs.lost"), "{stderr}");
    assert!(stderr.contains("deleted"), "{stderr}");

    // A command that ignores SIGTERM gets SIGKILL after the grace period.
    let mut stubborn = scene
        .nlock(&server)
        .args(["run", "--grace", "200ms", "jobs.lost", "--", "sh", "-c"])
        .arg("trap '' TERM; echo up > up2; exec sleep 600")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    scene.wait_file("up2");
    let broke = output(
        scene
            .nlock(&server)
            .args(["release", "--force", "--yes", "jobs.lost"]),
    );
    assert_eq!(broke.code, Some(0), "{}", broke.stderr);
    assert_eq!(wait_exit(&mut stubborn).code(), Some(5));
}

#[test]
fn release_force_checks_the_token_and_asks_first() {
    let server = Server::start();
    let scene = Scene::new();
    make_bucket(&scene, &server, &[]);
    let free = output(
        scene
            .nlock(&server)
            .args(["release", "--force", "--yes", "jobs.r"]),
    );
    assert_eq!(free.code, Some(6), "{}", free.stderr);

    let (holder, token) = hold(&scene, &server, "jobs.r", &[]);
    let wrong = output(scene.nlock(&server).args([
        "release",
        "--force",
        "--yes",
        "jobs.r",
        "--token",
        &(token + 1).to_string(),
    ]));
    assert_eq!(wrong.code, Some(7), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("nothing was deleted"),
        "{}",
        wrong.stderr
    );
    // Not confirmed (standard input is not a terminal, no --yes): nothing is broken.
    let unasked = output(scene.nlock(&server).args(["release", "--force", "jobs.r"]));
    assert_eq!(unasked.code, Some(2), "{}", unasked.stderr);
    assert!(unasked.stderr.contains("--yes"), "{}", unasked.stderr);
    let who = output(scene.nlock(&server).args(["who", "--json", "jobs.r"]));
    assert_eq!(json(&who.stdout)["token"], token);

    let right = output(scene.nlock(&server).args([
        "release",
        "--force",
        "--yes",
        "--json",
        "jobs.r",
        "--token",
        &token.to_string(),
    ]));
    assert_eq!(right.code, Some(0), "{}", right.stderr);
    assert_eq!(json(&right.stdout)["token"], token);
    assert_eq!(let_go(holder), Some(5));
}

#[test]
fn ls_who_and_watch_show_what_happened() {
    let server = Server::start();
    let scene = Scene::new();
    // The watcher starts with each key's last change: one on jobs.ready, to know it is live
    // before anything it must see happens.
    let ready = output(
        scene
            .nlock(&server)
            .args(["run", "jobs.ready", "--", "true"]),
    );
    assert_eq!(ready.code, Some(0), "{}", ready.stderr);
    let watch = Lines::spawn(scene.nlock(&server).args(["--json", "watch", "jobs.>"]));
    watch.next_json(|e| e["key"] == "jobs.ready" && e["kind"] == "released");

    let (holder, token) = hold(&scene, &server, "jobs.a", &["--description", "nightly"]);
    // Text unless --json, in a pipe too: a table and a sentence a person (or grep) reads.
    let ls = output(scene.nlock(&server).arg("ls"));
    assert_eq!(ls.code, Some(0), "{}", ls.stderr);
    let lines: Vec<&str> = ls.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ls.stdout);
    assert!(lines[0].starts_with("KEY"), "{}", ls.stdout);
    assert!(lines[1].starts_with("jobs.a "), "{}", ls.stdout);
    assert!(lines[1].contains(&token.to_string()), "{}", ls.stdout);
    assert!(lines[1].contains("\"nightly\""), "{}", ls.stdout);
    let who = output(scene.nlock(&server).args(["who", "jobs.a"]));
    assert_eq!(who.code, Some(0), "{}", who.stderr);
    assert!(
        who.stdout.starts_with("jobs.a is held by "),
        "{}",
        who.stdout
    );
    assert!(
        who.stdout.contains(&format!("token {token}")),
        "{}",
        who.stdout
    );
    let ls = output(scene.nlock(&server).args(["--json", "ls"]));
    assert_eq!(ls.code, Some(0), "{}", ls.stderr);
    let rows = json(&ls.stdout);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["key"], "jobs.a");
    assert_eq!(rows[0]["token"], token);
    assert_eq!(rows[0]["holder"]["description"], "nightly");
    assert!(rows[0]["expires_in_ms"].as_u64().unwrap() <= 30_000);
    let who = output(scene.nlock(&server).args(["--json", "who", "jobs.a"]));
    assert_eq!(who.code, Some(0), "{}", who.stderr);
    assert_eq!(json(&who.stdout)["token"], token);

    assert_eq!(let_go(holder), Some(0));
    let who = output(scene.nlock(&server).args(["--json", "who", "jobs.a"]));
    assert_eq!(who.code, Some(6));
    assert_eq!(json(&who.stdout), serde_json::Value::Null);
    let ls = output(scene.nlock(&server).args(["--json", "ls"]));
    assert_eq!(json(&ls.stdout), serde_json::json!([]));

    // A second tenure, broken by an operator.
    let (holder, second) = hold(&scene, &server, "jobs.a", &[]);
    let broke = output(
        scene
            .nlock(&server)
            .args(["release", "--force", "--yes", "jobs.a"]),
    );
    assert_eq!(broke.code, Some(0), "{}", broke.stderr);
    assert_eq!(let_go(holder), Some(5));

    // The watcher saw it all, in order, one JSON line each.
    let event = |kind: &str| {
        let kind = kind.to_owned();
        watch.next_json(move |e| e["key"] == "jobs.a" && e["kind"] == kind.as_str())
    };
    assert_eq!(event("acquired")["token"], token);
    assert_eq!(event("released")["token"], token);
    assert_eq!(event("acquired")["token"], second);
    assert_eq!(event("deleted")["token"], second);
}

#[test]
fn context_picks_the_server() {
    let one = Server::start();
    let two = Server::start();
    let scene = Scene::new();
    make_bucket(&scene, &two, &[]);
    let contexts = scene.nats_config().join("context");
    std::fs::create_dir_all(&contexts).unwrap();
    for (name, server) in [("one", &one), ("two", &two)] {
        let body = serde_json::json!({ "description": "test", "url": server.url });
        std::fs::write(contexts.join(format!("{name}.json")), body.to_string()).unwrap();
    }
    let (holder, _) = hold(&scene, &one, "jobs.ctx", &[]);
    let who = |args: &[&str]| {
        output(scene.bare().args(args).args(["who", "jobs.ctx"]))
            .code
            .unwrap()
    };
    assert_eq!(who(&["--context", "one"]), 0);
    assert_eq!(who(&["--context", "two"]), 6);
    // The selected context, as `nats context select` leaves it.
    std::fs::write(scene.nats_config().join("context.txt"), "one\n").unwrap();
    assert_eq!(who(&[]), 0);
    std::fs::write(scene.nats_config().join("context.txt"), "two").unwrap();
    assert_eq!(who(&[]), 6);
    // A flag beats the context, and so does NATS_URL.
    assert_eq!(who(&["--server", &one.url]), 0);
    let by_env = output(
        scene
            .bare()
            .env("NATS_URL", &one.url)
            .args(["who", "jobs.ctx"]),
    );
    assert_eq!(by_env.code, Some(0), "{}", by_env.stderr);
    // A context that does not exist is a usage error naming it.
    let missing = output(scene.bare().args(["--context", "three", "ls"]));
    assert_eq!(missing.code, Some(2));
    assert!(missing.stderr.contains("three"), "{}", missing.stderr);
    let info = output(scene.bare().args(["--context", "two", "--json", "info"]));
    assert_eq!(json(&info.stdout)["context"], "two");
    assert_eq!(let_go(holder), Some(0));
}

#[test]
fn a_command_without_dashdash_gets_a_tip_showing_where_it_goes() {
    let scene = Scene::new();
    for sub in ["run", "elect"] {
        let out = output(scene.bare().args([sub, "jobs.a", "echo", "hi"]));
        assert_eq!(out.code, Some(2), "{sub}: {}", out.stderr);
        assert!(
            out.stderr.contains("unexpected argument 'echo'"),
            "{sub}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!(
                "put `--` before the command: nlock {sub} KEY -- echo"
            )),
            "{sub}: {}",
            out.stderr
        );
    }
    // A bad flag is not a forgotten `--`: no such tip.
    let out = output(
        scene
            .bare()
            .args(["run", "--bogus", "jobs.a", "--", "true"]),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(!out.stderr.contains("put `--`"), "{}", out.stderr);
}

#[test]
fn a_server_that_does_not_answer_is_named_in_the_error() {
    let scene = Scene::new();
    // A loopback port nothing listens on: bound, then closed again.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let out = output(scene.bare().args(["--server", &url, "ls"]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("cannot connect to {url}")),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_flags_and_bad_keys_are_usage_errors() {
    let scene = Scene::new();
    // No server is needed to refuse these: nothing is connected.
    let cases: &[(&[&str], &str)] = &[
        (&["run", "bad key", "--", "true"], "invalid lock key"),
        (&["run", "a..b", "--", "true"], "invalid lock key"),
        (&["who", "_kv.x"], "reserved"),
        (&["run", "jobs.a"], "required"),
        (&["run", "jobs.a", "true"], "unexpected argument"),
        (
            &["run", "--timeout", "soon", "jobs.a", "--", "true"],
            "not a duration",
        ),
        (
            &[
                "run",
                "--no-wait",
                "--timeout",
                "1s",
                "jobs.a",
                "--",
                "true",
            ],
            "cannot be used",
        ),
        (&["release", "jobs.a"], "--force"),
        (&["ls", "--bogus"], "--bogus"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&["--server", "nats://a:notaport", "ls"], "server 1"),
        (&["--ttl", "0", "ls"], "TTL"),
        // Durations no deadline can hold are refused when parsed (issue 13 §4).
        (&["--ttl", "18446744073709551615s", "ls"], "invalid value"),
        (
            &["run", "--grace", "9223372037", "jobs.a", "--", "true"],
            "too long",
        ),
        (
            &["run", "--timeout", "999999999999h", "jobs.a", "--", "true"],
            "too long",
        ),
        (
            &["--password", "pw", "ls"],
            "cannot use --password: set without a user",
        ),
        (&["--creds", "/nonexistent/x.creds", "ls"], "--creds"),
    ];
    for (args, says) in cases {
        let out = output(scene.bare().args(*args));
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    // With --json, the error is one JSON object naming its kind.
    let out = output(scene.bare().args(["--json", "who", "bad key"]));
    let err = json(&out.stderr);
    assert_eq!(err["error"], "invalid_key");
    assert_eq!(err["exit_code"], 2);
    // The help documents the exit codes.
    let help = output(scene.bare().arg("--help"));
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("Exit codes"), "{}", help.stdout);
}

#[test]
fn a_bad_filter_is_a_usage_error_and_info_reports_the_server() {
    let server = Server::start();
    let scene = Scene::new();
    for bad in ["a.>.b", "bad filter", "a..*"] {
        let out = output(scene.nlock(&server).args(["watch", bad]));
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("invalid filter {bad:?}")),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("lock key"), "{}", out.stderr);
    }
    make_bucket(&scene, &server, &[]);
    let info = output(scene.nlock(&server).args(["--json", "info"]));
    assert_eq!(info.code, Some(0), "{}", info.stderr);
    let info = json(&info.stdout);
    assert_eq!(info["jetstream"], true);
    assert_eq!(info["bucket"]["name"], "distributed_locks");
    assert!(info["server_version"].as_str().unwrap().starts_with("2."));
    // The tests turn the restart grace off (a fresh server of their own).
    assert!(info["restart_grace_ms"].is_null());
}

#[test]
fn read_only_commands_never_create_the_bucket() {
    let server = Server::start();
    let scene = Scene::new();
    let cases: &[&[&str]] = &[
        &["ls"],
        &["who", "jobs.a"],
        &["watch"],
        &["leader", "jobs.a"],
        &["leader", "--watch", "jobs.a"],
        &["info"],
        &["release", "--force", "--yes", "jobs.a"],
    ];
    for args in cases {
        let out = output(scene.nlock(&server).args(*args));
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("bucket \"distributed_locks\" does not exist; nothing was created"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Typed, for scripts.
    let out = output(scene.nlock(&server).args(["--json", "ls"]));
    assert_eq!(json(&out.stderr)["error"], "invalid_config");
    // Still none after all those: `run` creates it, and then they read it.
    make_bucket(&scene, &server, &[]);
    let ls = output(scene.nlock(&server).args(["--json", "ls"]));
    assert_eq!(ls.code, Some(0), "{}", ls.stderr);
    assert_eq!(json(&ls.stdout), serde_json::json!([]));
}

#[test]
fn info_shows_the_restart_grace_of_a_new_bucket_and_run_waits_it_out() {
    let server = Server::start();
    let scene = Scene::new();
    make_bucket(&scene, &server, &["--ttl", "2s"]);
    let info = output(
        scene
            .nlock(&server)
            .env("NLOCK_NO_RESTART_GRACE", "false")
            .args(["--ttl", "2s", "--json", "info"]),
    );
    assert_eq!(info.code, Some(0), "{}", info.stderr);
    let info = json(&info.stdout);
    // TTL 2 s plus the default 1 s of clock skew.
    assert_eq!(info["restart_grace_ms"], 3000);
    let left = info["restart_grace_remaining_ms"]
        .as_u64()
        .expect("in force");
    assert!(left > 0 && left <= 3000, "{left}");
    // --no-wait is busy while the grace runs (exit 3), and says why.
    let busy = output(
        scene
            .nlock(&server)
            .env("NLOCK_NO_RESTART_GRACE", "false")
            .args([
                "--ttl",
                "2s",
                "run",
                "--no-wait",
                "jobs.grace",
                "--",
                "true",
            ]),
    );
    assert_eq!(busy.code, Some(3), "{}", busy.stderr);
    assert!(busy.stderr.contains("restart grace"), "{}", busy.stderr);
    // A waiting run waits it out.
    let ran = output(
        scene
            .nlock(&server)
            .env("NLOCK_NO_RESTART_GRACE", "false")
            .args([
                "--ttl",
                "2s",
                "run",
                "--timeout",
                "20s",
                "jobs.grace",
                "--",
                "true",
            ]),
    );
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}

#[test]
fn a_waiter_says_who_holds_the_lock_in_plain_lines_and_runs_after_it() {
    let server = Server::start();
    let scene = Scene::new();
    let (holder, token) = hold(&scene, &server, "jobs.wait", &["--description", "backup"]);
    let mut cmd = scene.nlock(&server);
    cmd.args([
        "run",
        "jobs.wait",
        "--",
        "sh",
        "-c",
        "echo $NLOCK_TOKEN > second",
    ]);
    let mut waiter = Lines::spawn_stderr(&mut cmd);
    // Not a terminal: a plain line naming the holder, no spinner.
    let line = waiter.next_containing("waiting for jobs.wait");
    assert!(line.contains("held by pid"), "{line}");
    assert!(line.contains("\"backup\""), "{line}");
    assert!(line.contains(&format!("token {token}")), "{line}");
    assert!(!line.contains('\r'), "{line}");
    assert!(!scene.path("second").exists());
    assert_eq!(let_go(holder), Some(0));
    assert_eq!(wait_exit(&mut waiter.child).code(), Some(0));
    let second: u64 = scene.wait_file("second").trim().parse().unwrap();
    assert!(second > token);
}

#[test]
fn signals_to_nlock_reach_the_command_and_the_lock_is_released() {
    let server = Server::start();
    let scene = Scene::new();
    let mut run = scene
        .nlock(&server)
        .args(["run", "jobs.sig", "--", "sh", "-c"])
        .arg("trap 'exit 9' TERM; echo up > up; while :; do sleep 0.05; done")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    scene.wait_file("up");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The command's own exit code, and the lock released on the way out.
    assert_eq!(wait_exit(&mut run).code(), Some(9));
    let who = output(scene.nlock(&server).args(["who", "jobs.sig"]));
    assert_eq!(who.code, Some(6), "{}", who.stdout);

    // Interrupted while waiting: nothing runs, nothing is left behind.
    let (holder, token) = hold(&scene, &server, "jobs.sig", &[]);
    let mut cmd = scene.nlock(&server);
    cmd.args(["run", "jobs.sig", "--", "touch", "ran"]);
    let mut waiter = Lines::spawn_stderr(&mut cmd);
    waiter.next_containing("waiting for jobs.sig");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &waiter.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(wait_exit(&mut waiter.child).code(), Some(130));
    assert!(!scene.path("ran").exists());
    assert_eq!(let_go(holder), Some(0));
    let ls = output(scene.nlock(&server).args(["--json", "ls"]));
    assert_eq!(json(&ls.stdout), serde_json::json!([]), "token {token}");
}

#[test]
fn info_says_when_the_bucket_needs_an_upgrade_and_does_it() {
    let server = Server::start();
    let scene = Scene::new();
    let info = |args: &[&str]| {
        let out = output(scene.nlock(&server).args(["--json", "info"]).args(args));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        json(&out.stdout)
    };
    // A bucket as Go nlock makes it: no per-message TTL, no limit markers.
    make_bucket(&scene, &server, &["--go-compatible"]);
    let go = info(&["--go-compatible"]);
    assert_eq!(go["bucket"]["layout"], "go-compatible");
    assert_eq!(go["expiry_events"], false);
    assert_eq!(go["needs_upgrade"], false);
    let version = go["server_version"].as_str().unwrap().to_owned();
    let modern = !version.starts_with("2.9.") && !version.starts_with("2.10.");

    let full = info(&[]);
    assert_eq!(full["expiry_events"], false);
    assert_eq!(full["needs_upgrade"], modern, "{version}");
    if modern {
        let upgraded = info(&["--upgrade-bucket"]);
        assert_eq!(upgraded["expiry_events"], true);
        assert_eq!(upgraded["needs_upgrade"], false);
        assert_eq!(info(&[])["needs_upgrade"], false);
    }
}

/// `who KEY`'s exit code: 0 held, 6 free.
fn who_code(scene: &Scene, server: &Server, key: &str) -> Option<i32> {
    let out = output(scene.nlock(server).args(["--ttl", "30s", "who", key]));
    assert!(matches!(out.code, Some(0 | 6)), "{}", out.stderr);
    out.code
}

#[test]
fn a_lock_ttl_frees_a_killed_holders_key_long_before_the_bucket_ttl() {
    let server = Server::start();
    let scene = Scene::new();
    let key = "jobs.short";
    let (mut holder, token) = hold(&scene, &server, key, &["--ttl", "30s", "--lock-ttl", "2s"]);
    let out = output(scene.nlock(&server).args(["--ttl", "30s", "who", key]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("token {token}")),
        "{}",
        out.stdout
    );

    // kill -9: nothing releases the key; only its own 2 s TTL frees it, long before the
    // bucket's 30 s. Bounded well below 30 s, so a lock with the bucket's TTL fails this.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while who_code(&scene, &server, key) != Some(6) {
        assert!(
            std::time::Instant::now() < deadline,
            "{key} still held 15 s after its holder was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(holder.stdin.take());
}

#[test]
fn a_lock_ttl_the_bucket_cannot_give_is_refused_before_anything_runs() {
    let server = Server::start();
    let scene = Scene::new();
    let ran = scene.path("ran");
    let touch = format!("touch {}", ran.display());
    // A Go-compatible bucket has no per-message TTL, even on a 2.11+ server.
    for command in ["run", "elect"] {
        let out = output(scene.nlock(&server).args([
            "--bucket",
            "old_layout",
            "--go-compatible",
            command,
            "--lock-ttl",
            "5s",
            "jobs.a",
            "--",
            "sh",
            "-c",
            &touch,
        ]));
        assert_eq!(out.code, Some(1), "{command}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("per-lock TTL (needs nats-server 2.11+) is not supported")
                && out.stderr.contains(
                    "--lock-ttl needs nats-server 2.11+ and a bucket with per-message TTL"
                ),
            "{command}: {}",
            out.stderr
        );
        // Longer than the bucket's: a usage error.
        let out = output(scene.nlock(&server).args([
            "--ttl",
            "10s",
            command,
            "--lock-ttl",
            "20s",
            "jobs.a",
            "--",
            "sh",
            "-c",
            &touch,
        ]));
        assert_eq!(out.code, Some(2), "{command}: {}", out.stderr);
        assert!(
            out.stderr.contains("longer than the bucket TTL"),
            "{}",
            out.stderr
        );
    }
    assert!(!ran.exists(), "a command ran");
    let help = output(scene.bare().args(["run", "--help"]));
    assert!(
        help.stdout.contains("--lock-ttl") && help.stdout.contains("must match it"),
        "{}",
        help.stdout
    );
}

#[test]
fn watch_says_when_the_connection_drops_and_what_changed_meanwhile() {
    let mut server = Server::start();
    let scene = Scene::new();
    let flags = ["--ttl", "2s", "--storage", "file"];
    let (mut holder, token) = hold(&scene, &server, "jobs.a", &flags);
    let mut cmd = scene.nlock(&server);
    cmd.args(flags).arg("watch");
    let watch = Lines::spawn(&mut cmd);
    let first = watch.next_containing("jobs.a");
    assert!(
        first.contains(&format!("acquired token {token}")),
        "{first}"
    );

    server.stop();
    watch.next_containing("nlock: connection lost; reconnecting");
    // While the server is down its holder dies: nobody releases jobs.a, and by the time the
    // server is back its 2 s TTL has passed (the outage is the fault; 3 s of it).
    holder.kill().unwrap();
    holder.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    server.start_again();
    // "reconnected", and the key's end as the catch-up tells it or as its expiry event does
    // (which can come first).
    let (mut reconnected, mut ended) = (false, None);
    while !reconnected || ended.is_none() {
        let line = watch.next();
        reconnected |= line == "nlock: reconnected";
        if line.contains("jobs.a") {
            assert!(ended.is_none(), "told twice: {ended:?}, then {line}");
            ended = Some(line);
        }
    }
    let ended = ended.unwrap();
    println!("{ended}");
    assert!(
        ended.contains(&format!("jobs.a token {token} ended while disconnected"))
            || ended.contains(&format!("jobs.a expired token {token}")),
        "{ended}"
    );
    drop(holder.stdin.take());
}

#[test]
fn run_with_permits_lets_that_many_commands_run_at_once() {
    let server = Server::start();
    let scene = Scene::new();
    let (first, t1) = hold(&scene, &server, "pool", &["--permits", "2"]);
    // A second holder of the same semaphore runs while the first still does.
    let marker = "second-token";
    let second = scene
        .nlock(&server)
        .args(["run", "--permits", "2", "pool", "--", "sh", "-c"])
        .arg(format!(
            "echo $NLOCK_KEY > second-key; echo $NLOCK_TOKEN > {marker}; read line || true"
        ))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t2: u64 = scene.wait_file(marker).trim().parse().unwrap();
    // The command is told which permit it holds.
    assert!(scene.wait_file("second-key").starts_with("_nlock.s.pool."));
    assert_ne!(t1, t2);
    let ls = output(scene.nlock(&server).args(["ls"]));
    assert_eq!(ls.code, Some(0), "{}", ls.stderr);
    assert_eq!(
        ls.stdout.matches("_nlock.s.pool.").count(),
        2,
        "{}",
        ls.stdout
    );

    let busy = output(scene.nlock(&server).args([
        "run",
        "--no-wait",
        "--permits",
        "2",
        "pool",
        "--",
        "touch",
        "ran",
    ]));
    assert_eq!(busy.code, Some(3), "{}", busy.stderr);
    let other_count = output(scene.nlock(&server).args([
        "run",
        "--no-wait",
        "--permits",
        "3",
        "pool",
        "--",
        "touch",
        "ran",
    ]));
    assert_ne!(other_count.code, Some(0), "{}", other_count.stderr);
    assert!(
        other_count.stderr.contains("permits"),
        "{}",
        other_count.stderr
    );
    assert!(!scene.path("ran").exists());

    assert_eq!(let_go(first), Some(0));
    let free = output(scene.nlock(&server).args([
        "run",
        "--no-wait",
        "--permits",
        "2",
        "pool",
        "--",
        "touch",
        "ran",
    ]));
    assert_eq!(free.code, Some(0), "{}", free.stderr);
    assert!(scene.path("ran").exists());
    assert_eq!(let_go(second), Some(0));
}
