//! How `nlock` connects, through the library's `ConnectSettings`: TLS with a client
//! certificate, nkeys and creds files, given by flags, `NATS_*` variables or a `nats` CLI
//! context (flags over variables over the context), and a bad setting named (the flag, the
//! variable, or the context's field) before any connection is tried.

mod support;

use std::path::Path;
use std::process::Command;

use support::auth::{nkey_user, operator_with_creds, Pki};
use support::{eventually, output, Out, Scene, Server};

/// `nlock run --quiet KEY -- true` with `cmd`'s connection settings: exits 0 only when it
/// connected, took the lock and released it.
fn run_true(cmd: &mut Command) -> Out {
    output(cmd.args(["run", "--quiet", "jobs.connect", "--", "true"]))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes the context `name` into the scene's nats configuration.
fn context(scene: &Scene, name: &str, body: serde_json::Value) {
    let dir = scene.nats_config().join("context");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), body.to_string()).unwrap();
}

/// A loopback URL nothing listens on: bound, then closed again.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    url
}

#[test]
fn tls_and_an_nkey_by_flags_variables_or_a_context() {
    let scene = Scene::new();
    let pki = Pki::new(scene.dir.path());
    let seed = scene.path("user.nk");
    let config = format!("{}{}", pki.server_config(), nkey_user(&seed));
    let server = Server::start_with_config(Some(&config));
    let tls = [
        "--tlsca",
        s(&pki.ca),
        "--tlscert",
        s(&pki.client_cert),
        "--tlskey",
        s(&pki.client_key),
    ];

    // Flags.
    let out = run_true(scene.nlock(&server).args(tls).args(["--nkey", s(&seed)]));
    assert_eq!(out.code, Some(0), "flags: {}", out.stderr);
    // The server checks both: without the nkey, or without the client certificate, no
    // connection (exit 1, not a usage error: these settings are fine, the server says no).
    let out = run_true(scene.nlock(&server).args(tls));
    assert_eq!(out.code, Some(1), "no nkey: {}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    let ca_only = ["--tlsca", s(&pki.ca), "--nkey", s(&seed)];
    let out = run_true(scene.nlock(&server).args(ca_only));
    assert_eq!(out.code, Some(1), "no client certificate: {}", out.stderr);

    // The `nats` CLI's variables.
    let by_env = |cmd: &mut Command| {
        cmd.env("NATS_URL", &server.url)
            .env("NATS_CA", &pki.ca)
            .env("NATS_CERT", &pki.client_cert)
            .env("NATS_KEY", &pki.client_key)
            .env("NATS_NKEY", &seed);
    };
    let mut cmd = scene.bare();
    by_env(&mut cmd);
    let out = run_true(&mut cmd);
    assert_eq!(out.code, Some(0), "variables: {}", out.stderr);

    // A context, its paths under `~/` as `nats context save` may write them.
    context(
        &scene,
        "secure",
        serde_json::json!({
            "url": server.url, "nkey": "~/user.nk", "ca": s(&pki.ca),
            "cert": s(&pki.client_cert), "key": s(&pki.client_key),
        }),
    );
    let out = run_true(scene.bare().args(["--context", "secure"]));
    assert_eq!(out.code, Some(0), "--context: {}", out.stderr);
    std::fs::write(scene.nats_config().join("context.txt"), "secure\n").unwrap();
    let out = run_true(&mut scene.bare());
    assert_eq!(out.code, Some(0), "selected context: {}", out.stderr);

    // A variable beats the context's value, and a flag beats the variable.
    let missing = scene.path("missing.nk");
    let out = run_true(scene.bare().env("NATS_NKEY", &missing));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot use NATS_NKEY"),
        "{}",
        out.stderr
    );
    let out = run_true(
        scene
            .bare()
            .env("NATS_NKEY", &missing)
            .args(["--nkey", s(&seed)]),
    );
    assert_eq!(out.code, Some(0), "--nkey over NATS_NKEY: {}", out.stderr);
}

#[test]
fn a_creds_file_by_flag_or_context() {
    let scene = Scene::new();
    let creds = scene.path("user.creds");
    let server = Server::start_with_config(Some(&operator_with_creds(&creds)));
    // The account's JetStream comes up after the ports file: wait until the lock is taken.
    eventually("nlock takes a lock with --creds", || {
        let out = run_true(scene.nlock(&server).args(["--creds", s(&creds)]));
        (out.code == Some(0)).then_some(())
    });
    context(
        &scene,
        "ops",
        serde_json::json!({ "url": server.url, "creds": s(&creds) }),
    );
    let out = run_true(scene.bare().args(["--context", "ops"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Without them the server refuses.
    let out = run_true(&mut scene.nlock(&server));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
}

#[test]
fn a_contexts_jetstream_domain_is_used() {
    let scene = Scene::new();
    let server = Server::start_with_config(Some("jetstream { domain: hub }"));
    context(
        &scene,
        "leaf",
        serde_json::json!({ "url": server.url, "jetstream_domain": "hub" }),
    );
    context(
        &scene,
        "elsewhere",
        serde_json::json!({ "url": server.url, "jetstream_domain": "nowhere" }),
    );
    let out = run_true(scene.bare().args(["--context", "leaf"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Nothing answers in another domain: the domain really is used.
    let out = run_true(scene.bare().args(["--context", "elsewhere"]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("$JS.nowhere.API"), "{}", out.stderr);
}

#[test]
fn a_bad_setting_is_named_before_connecting() {
    let scene = Scene::new();
    // Nothing listens there: had nlock tried to connect, it would exit 1.
    let dead = dead_url();
    let fake_seed = scene.path("fake.nk");
    std::fs::write(&fake_seed, "SUNOTAVALIDSEED\n").unwrap();
    let junk = scene.path("junk");
    std::fs::write(&junk, "junk\n").unwrap();
    let missing = scene.path("missing");
    context(
        &scene,
        "broken",
        serde_json::json!({ "url": dead, "creds": "~/missing.creds" }),
    );
    context(
        &scene,
        "baddomain",
        serde_json::json!({ "url": dead, "jetstream_domain": "a.b" }),
    );
    let flags: &[(&[&str], &str)] = &[
        (&["--nkey", s(&fake_seed)], "cannot use --nkey"),
        (&["--creds", s(&junk)], "cannot use --creds"),
        (&["--tlsca", s(&missing)], "cannot use --tlsca"),
        (&["--tlscert", s(&junk)], "cannot use --tlscert"),
        (&["--context", "nope"], "cannot use --context"),
        (
            &["--context", "broken"],
            "cannot use creds in context \"broken\"",
        ),
        (
            &["--context", "baddomain"],
            "cannot use jetstream_domain in context \"baddomain\"",
        ),
    ];
    for (args, says) in flags {
        let out = output(scene.bare().args(["--server", &dead]).args(*args).arg("ls"));
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    let vars: &[(&str, &str, &str)] = &[
        ("NATS_NKEY", s(&fake_seed), "cannot use NATS_NKEY"),
        ("NATS_CREDS", s(&missing), "cannot use NATS_CREDS"),
        ("NATS_KEY", s(&junk), "cannot use NATS_KEY"),
        ("NATS_CONTEXT", "nope", "cannot use NATS_CONTEXT"),
        ("NATS_URL", "nats://a:notaport", "cannot use NATS_URL"),
    ];
    for (name, value, says) in vars {
        let mut cmd = scene.bare();
        if *name != "NATS_URL" {
            cmd.args(["--server", &dead]);
        }
        let out = output(cmd.env(name, value).arg("ls"));
        assert_eq!(out.code, Some(2), "{name}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{name}: {}", out.stderr);
    }
    // With --json, the kind is the library's.
    let out =
        output(
            scene
                .bare()
                .args(["--json", "--server", &dead, "--nkey", s(&fake_seed), "ls"]),
        );
    let err: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(err["error"], "invalid_connect_setting", "{}", out.stderr);
    assert_eq!(err["exit_code"], 2);
}
