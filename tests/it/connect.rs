//! Connecting the NATS way: server lists, credentials in the URL and in options, tokens,
//! nkeys, TLS with client certificates, the `nats` CLI's environment, JetStream domains, and
//! servers without JetStream.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nlock::async_nats::ConnectOptions;
use nlock::{Config, ErrorKind, LockError, LockManager};

use crate::fixture::Env;
use crate::harness::{NatsServer, ProbeAuth};

/// Proves a manager works end to end: takes a lock and releases it.
async fn works(m: &LockManager) {
    let lock = m.try_acquire("k").await.expect("lock taken");
    lock.release().await.expect("lock released");
}

/// A loopback address nothing listens on: bound, then closed again.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("nats://127.0.0.1:{port}")
}

/// An env whose server requires `auth` (config text) and is probed with `probe`.
async fn env_with_auth(config: String, probe: ProbeAuth) -> Env {
    Env::start_with(NatsServer::builder().config(config).probe_auth(probe)).await
}

async fn connect(env: &Env, servers: &str) -> Result<LockManager, LockError> {
    LockManager::connect(servers, env.config().build().unwrap())
        .await
        .map_err(LockError::from)
}

async fn connect_with(
    env: &Env,
    options: ConnectOptions,
    servers: &str,
) -> Result<LockManager, LockError> {
    LockManager::connect_with(options, servers, env.config().build().unwrap())
        .await
        .map_err(LockError::from)
}

#[actix::test]
async fn a_server_list_with_a_dead_first_address_connects() {
    let env = Env::start().await;
    let list = format!("{}, {}", dead_url(), env.server.url());
    works(&connect(&env, &list).await.unwrap()).await;
    // In the given order, so that the dead address is surely tried first.
    let in_order = ConnectOptions::new().retain_servers_order();
    works(&connect_with(&env, in_order, &list).await.unwrap()).await;
}

#[actix::test]
async fn a_failed_connection_names_the_servers_tried_without_credentials() {
    let (one, two) = (dead_url(), dead_url());
    let list = format!("{one},{}", two.replace("nats://", "nats://user:s3cret@"));
    let config = Config::builder().build().unwrap();
    let Err(err) = LockManager::connect(&list, config).await else {
        panic!("connected, but no server listens")
    };
    assert_eq!(err.kind(), nlock::ConnectErrorKind::Unavailable);
    let text = err.to_string();
    assert!(text.contains(&format!("{one}, {two}")), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    // Typed: the source says which servers.
    let LockError::Unavailable { source } = err.lock_error() else {
        panic!("{err:?}")
    };
    let failed = source
        .downcast_ref::<nlock::ConnectFailed>()
        .expect("a ConnectFailed source");
    assert_eq!(failed.servers, [one, two]);
}

#[actix::test]
async fn without_create_bucket_a_missing_bucket_is_an_error_and_stays_missing() {
    let env = Env::start().await;
    let observer = || env.config().create_bucket(false).build().unwrap();
    for _ in 0..2 {
        let Err(err) = LockManager::connect(&env.server.url(), observer()).await else {
            panic!("started on a bucket that does not exist")
        };
        assert_eq!(err.kind(), nlock::ConnectErrorKind::InvalidConfig);
        assert!(
            matches!(
                err.lock_error(),
                LockError::InvalidConfig(nlock::ConfigError::BucketNotFound { bucket })
                    if *bucket == env.bucket
            ),
            "{err:?}"
        );
    }
    // A manager that may create it does; the observer then starts and reads it.
    let holder = env.manager(env.config()).await;
    let lock = holder.try_acquire("k").await.unwrap();
    let reader = LockManager::connect(&env.server.url(), observer())
        .await
        .unwrap();
    assert_eq!(
        reader.holder("k").await.unwrap().unwrap().token,
        lock.token()
    );
    lock.release().await.unwrap();
}

#[actix::test]
async fn user_and_password_in_the_url_or_in_options() {
    // '@', ':' and '/' in a password are percent-encoded in a URL.
    let (user, pass) = ("locker", "p@ss:w/rd");
    let env = env_with_auth(
        format!("authorization {{ user: \"{user}\", password: \"{pass}\" }}"),
        ProbeAuth::UserPassword(user.into(), pass.into()),
    )
    .await;
    let port = env.server.port();
    let url = format!("nats://{user}:p%40ss%3Aw%2Frd@127.0.0.1:{port}");
    works(&connect(&env, &url).await.unwrap()).await;
    // The same credentials on every address of a list are fine.
    let list = format!("{url},{url}");
    works(&connect(&env, &list).await.unwrap()).await;

    let options = ConnectOptions::with_user_and_password(user.into(), pass.into());
    let plain = env.server.url();
    works(&connect_with(&env, options, &plain).await.unwrap()).await;

    // The credentials are really checked: none, or a wrong password, is refused.
    let err = connect(&env, &plain).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let wrong = format!("nats://{user}:nope@127.0.0.1:{port}");
    let err = connect(&env, &wrong).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        !err.to_string().contains("nope"),
        "no password in errors: {err}"
    );
}

#[actix::test]
async fn a_token_in_the_url_or_in_options() {
    let token = "s3cr3t-t0ken";
    let env = env_with_auth(
        format!("authorization {{ token: \"{token}\" }}"),
        ProbeAuth::Token(token.into()),
    )
    .await;
    let port = env.server.port();
    works(
        &connect(&env, &format!("nats://{token}@127.0.0.1:{port}"))
            .await
            .unwrap(),
    )
    .await;
    let options = ConnectOptions::with_token(token.into());
    works(
        &connect_with(&env, options, &env.server.url())
            .await
            .unwrap(),
    )
    .await;
    let err = connect(&env, &format!("nats://wrong@127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[actix::test]
async fn an_nkey() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let env = env_with_auth(
        format!(
            "authorization {{ users: [ {{ nkey: \"{}\" }} ] }}",
            user.public_key()
        ),
        ProbeAuth::Nkey(seed.clone()),
    )
    .await;
    let options = ConnectOptions::with_nkey(seed);
    works(
        &connect_with(&env, options, &env.server.url())
            .await
            .unwrap(),
    )
    .await;
    // Another key is refused.
    let other = nkeys::KeyPair::new_user().seed().unwrap();
    let err = connect_with(&env, ConnectOptions::with_nkey(other), &env.server.url())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nlock test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "nlock");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        vec!["nlock-client".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server_cert),
        server_key: write("server-key.pem", server_key),
        client_cert: write("client.pem", client_cert),
        client_key: write("client-key.pem", client_key),
    }
}

/// A server that requires TLS and verifies client certificates against the test CA.
async fn tls_env(pki: &Pki) -> Env {
    let config = format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n}}\n",
        pki.server_cert, pki.server_key, pki.ca
    );
    let probe = ProbeAuth::Tls {
        ca: pki.ca.clone(),
        client: Some((pki.client_cert.clone(), pki.client_key.clone())),
    };
    env_with_auth(config, probe).await
}

#[actix::test]
async fn tls_with_a_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let env = tls_env(&pki).await;
    let options = ConnectOptions::new()
        .add_root_certificates(pki.ca.clone())
        .add_client_certificate(pki.client_cert.clone(), pki.client_key.clone());
    works(
        &connect_with(&env, options, &env.server.url())
            .await
            .unwrap(),
    )
    .await;
    // The server really verifies the client: without its certificate, no connection.
    let no_cert = ConnectOptions::new().add_root_certificates(pki.ca.clone());
    let err = connect_with(&env, no_cert, &env.server.url())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// The variables `from_env` reads; the child gets none of the parent's.
const NATS_VARS: [&str; 9] = [
    "NATS_URL",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_TOKEN",
    "NATS_CREDS",
    "NATS_NKEY",
    "NATS_CA",
    "NATS_CERT",
    "NATS_KEY",
];

/// Runs [`from_env_child`] in a child process of this test binary with `vars` as its only
/// NATS environment: the environment is process-wide, and setting it here would race with
/// the other tests' threads. `expect_setting` is the setting the child must report as
/// unusable, or `None` when it must connect and take a lock.
async fn from_env_in_child(env: &Env, vars: &[(&str, String)], expect_setting: Option<&str>) {
    in_child("connect::from_env_child", env, vars, expect_setting).await
}

/// Runs the ignored test `child` in a child process, as [`from_env_in_child`] describes.
async fn in_child(child: &str, env: &Env, vars: &[(&str, String)], expect_setting: Option<&str>) {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        child,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for name in NATS_VARS
        .iter()
        .chain(&["NATS_CONTEXT", "XDG_CONFIG_HOME", "NLOCK_TEST_FLAG_URL"])
    {
        cmd.env_remove(name);
    }
    cmd.envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("NLOCK_TEST_BUCKET", &env.bucket)
        .env(
            "NLOCK_TEST_EXPECT_SETTING",
            expect_setting.unwrap_or_default(),
        );
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child with {vars:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The config of a child process: the parent's bucket on the parent's fresh server.
fn child_config() -> Config {
    let bucket = std::env::var("NLOCK_TEST_BUCKET").expect("NLOCK_TEST_BUCKET set by parent");
    Config::builder()
        .bucket(bucket)
        .ttl(Duration::from_secs(3))
        // The parent test's own fresh server.
        .restart_grace(false)
        .build()
        .unwrap()
}

/// Checks a child's outcome against `NLOCK_TEST_EXPECT_SETTING`: empty, it must have
/// connected (and takes a lock); `unavailable`, the server must have refused it; else the
/// setting named as unusable.
async fn child_outcome(result: Result<LockManager, LockError>) {
    let expect = std::env::var("NLOCK_TEST_EXPECT_SETTING").unwrap_or_default();
    match result {
        Ok(m) if expect.is_empty() => works(&m).await,
        Err(e) if expect == "unavailable" => assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}"),
        Err(LockError::InvalidConnectSetting { setting, .. }) if !expect.is_empty() => {
            assert_eq!(setting, expect)
        }
        Ok(_) => panic!("connected, but expected {expect} to be refused"),
        Err(e) => panic!("expected {expect:?}, got {e:?}"),
    }
}

#[actix::test]
#[ignore = "run by the from_env tests in a child process with its own environment"]
async fn from_env_child() {
    child_outcome(
        LockManager::from_env(child_config())
            .await
            .map_err(LockError::from),
    )
    .await
}

#[actix::test]
#[ignore = "run by the nats CLI settings test in a child process with its own environment"]
async fn nats_cli_child() {
    // A flag, as a command line would set it, over the variables over the context.
    let mut flags = nlock::ConnectSettings::new();
    if let Ok(url) = std::env::var("NLOCK_TEST_FLAG_URL") {
        flags = flags.servers(url);
    }
    let result = match nlock::ConnectSettings::from_nats_cli(None) {
        Ok(nats_cli) => flags.or(nats_cli).connect(child_config()).await,
        Err(e) => Err(e),
    };
    child_outcome(result.map_err(LockError::from)).await
}

#[actix::test]
async fn nats_cli_settings_layer_flags_over_variables_over_the_selected_context() {
    let env = env_with_auth(
        "authorization { token: \"t0k\" }".into(),
        ProbeAuth::Token("t0k".into()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let nats = dir.path().join("nats");
    std::fs::create_dir_all(nats.join("context")).unwrap();
    let save = |name: &str, body: serde_json::Value| {
        let path = nats.join("context").join(format!("{name}.json"));
        std::fs::write(path, body.to_string()).unwrap();
    };
    let select = |name: &str| std::fs::write(nats.join("context.txt"), name).unwrap();
    let xdg = ("XDG_CONFIG_HOME", dir.path().to_str().unwrap().to_owned());
    let run = |vars: Vec<(&'static str, String)>, expect: Option<&'static str>| {
        let mut all = vec![xdg.clone()];
        all.extend(vars);
        let env = &env;
        async move { in_child("connect::nats_cli_child", env, &all, expect).await }
    };
    let real = env.server.url();

    // The selected context alone: its server and token.
    save("good", serde_json::json!({ "url": real, "token": "t0k" }));
    select("good");
    run(vec![], None).await;
    // A variable overrides the context's value: a wrong NATS_TOKEN is refused by the server.
    run(vec![("NATS_TOKEN", "wrong".into())], Some("unavailable")).await;
    // ... and a right one over a wrong context token connects.
    save(
        "badtoken",
        serde_json::json!({ "url": real, "token": "wrong" }),
    );
    select("badtoken");
    run(vec![("NATS_TOKEN", "t0k".into())], None).await;
    // Servers: the flag over NATS_URL over the context's url (both dead).
    save(
        "deadurl",
        serde_json::json!({ "url": dead_url(), "token": "t0k" }),
    );
    select("deadurl");
    run(vec![("NATS_URL", dead_url())], Some("unavailable")).await;
    run(vec![("NATS_URL", real.clone())], None).await;
    run(
        vec![
            ("NATS_URL", dead_url()),
            ("NLOCK_TEST_FLAG_URL", real.clone()),
        ],
        None,
    )
    .await;
    // NATS_CONTEXT picks another context than the selected one.
    run(vec![("NATS_CONTEXT", "good".into())], None).await;
    // A bad setting in the context is named by its field and context, before connecting.
    save(
        "missing",
        serde_json::json!({ "url": real, "creds": "/nonexistent/u.creds" }),
    );
    run(
        vec![("NATS_CONTEXT", "missing".into())],
        Some("creds in context \"missing\""),
    )
    .await;
}

#[actix::test]
async fn settings_connect_with_an_nkey_file_or_tls_files_or_a_context_file() {
    // An nkey seed file, checked and read by the settings.
    let dir = tempfile::tempdir().unwrap();
    let key = nkeys::KeyPair::new_user();
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, key.seed().unwrap()).unwrap();
    let env = env_with_auth(
        format!(
            "authorization {{ users: [ {{ nkey: \"{}\" }} ] }}",
            key.public_key()
        ),
        ProbeAuth::Nkey(key.seed().unwrap()),
    )
    .await;
    let settings = nlock::ConnectSettings::new()
        .servers(env.server.url())
        .nkey_file(&seed_file)
        .name("nlock-test");
    works(
        &settings
            .connect(env.config().build().unwrap())
            .await
            .unwrap(),
    )
    .await;
    // Without it the server refuses: the key really was presented.
    let bare = nlock::ConnectSettings::new().servers(env.server.url());
    let err = bare
        .connect(env.config().build().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::ConnectErrorKind::Unavailable, "{err}");

    // TLS files, with a client certificate.
    let pki = make_pki(dir.path());
    let env = tls_env(&pki).await;
    let settings = nlock::ConnectSettings::new()
        .servers(env.server.url())
        .tls_ca(&pki.ca)
        .tls_cert(&pki.client_cert)
        .tls_key(&pki.client_key);
    works(
        &settings
            .connect(env.config().build().unwrap())
            .await
            .unwrap(),
    )
    .await;
    // The same from a context file anywhere.
    let file = dir.path().join("tls-context.json");
    let body = serde_json::json!({
        "url": env.server.url(), "ca": pki.ca, "cert": pki.client_cert, "key": pki.client_key,
    });
    std::fs::write(&file, body.to_string()).unwrap();
    let settings = nlock::ConnectSettings::from_context_file(&file).unwrap();
    assert_eq!(settings.context(), Some("tls-context"));
    works(
        &settings
            .connect(env.config().build().unwrap())
            .await
            .unwrap(),
    )
    .await;
}

#[actix::test]
async fn from_env_reads_the_nats_cli_variables() {
    // User and password, with a dead first address in NATS_URL.
    let env = env_with_auth(
        "authorization { user: \"u\", password: \"p\" }".into(),
        ProbeAuth::UserPassword("u".into(), "p".into()),
    )
    .await;
    let list = format!("{},{}", dead_url(), env.server.url());
    let user = [
        ("NATS_URL", list.clone()),
        ("NATS_USER", "u".into()),
        ("NATS_PASSWORD", "p".into()),
    ];
    from_env_in_child(&env, &user, None).await;
    // A password without a user is named before connecting.
    let env_pw = [("NATS_URL", list.clone()), ("NATS_PASSWORD", "p".into())];
    from_env_in_child(&env, &env_pw, Some("NATS_PASSWORD")).await;

    // A token.
    let env = env_with_auth(
        "authorization { token: \"t0k\" }".into(),
        ProbeAuth::Token("t0k".into()),
    )
    .await;
    let vars = [("NATS_URL", env.server.url()), ("NATS_TOKEN", "t0k".into())];
    from_env_in_child(&env, &vars, None).await;

    // An nkey seed file.
    let dir = tempfile::tempdir().unwrap();
    let key = nkeys::KeyPair::new_user();
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, key.seed().unwrap()).unwrap();
    let env = env_with_auth(
        format!(
            "authorization {{ users: [ {{ nkey: \"{}\" }} ] }}",
            key.public_key()
        ),
        ProbeAuth::Nkey(key.seed().unwrap()),
    )
    .await;
    let nkey = |path: &Path| {
        [
            ("NATS_URL", env.server.url()),
            ("NATS_NKEY", path.to_str().unwrap().to_owned()),
        ]
    };
    from_env_in_child(&env, &nkey(&seed_file), None).await;
    from_env_in_child(
        &env,
        &nkey(&dir.path().join("missing.nk")),
        Some("NATS_NKEY"),
    )
    .await;
    let missing_creds = [
        ("NATS_URL", env.server.url()),
        ("NATS_CREDS", "/nonexistent/user.creds".to_owned()),
    ];
    from_env_in_child(&env, &missing_creds, Some("NATS_CREDS")).await;

    // TLS files.
    let pki = make_pki(dir.path());
    let env = tls_env(&pki).await;
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let mut tls = vec![
        ("NATS_URL", env.server.url()),
        ("NATS_CA", path(&pki.ca)),
        ("NATS_CERT", path(&pki.client_cert)),
        ("NATS_KEY", path(&pki.client_key)),
    ];
    from_env_in_child(&env, &tls, None).await;
    tls.pop();
    // A certificate without its key names the variable set.
    from_env_in_child(&env, &tls, Some("NATS_CERT")).await;
}

#[actix::test]
async fn a_server_without_jetstream_is_named_as_such() {
    let env = Env::start_with(NatsServer::builder().jetstream(false)).await;
    let err = connect(&env, &env.server.url()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JetStreamNotEnabled, "{err}");
    assert!(
        err.to_string()
            .contains("JetStream is not enabled on this server (start it with -js)"),
        "{err}"
    );
}

#[actix::test]
async fn no_jetstream_api_answering_is_named_as_such() {
    // The server has JetStream, but nothing answers in the domain asked for: its INFO says
    // yes and the API gives no responders.
    let env = Env::start().await;
    let config = env.config().jetstream_domain("nowhere").build().unwrap();
    let err = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap_err();
    match err.into_lock_error() {
        LockError::JetStreamNotEnabled { api_prefix } => {
            assert_eq!(api_prefix, "$JS.nowhere.API")
        }
        other => panic!("expected JetStreamNotEnabled, got {other:?}"),
    }

    // An account without JetStream on a server with it.
    // (Its JetStream API never answers account A, so the harness waits for the port only.)
    let server = NatsServer::builder()
        .config("accounts { A: { users: [ { user: a, password: a } ] } }")
        .wait_for_jetstream(false);
    let env = Env::start_with(server).await;
    let url = format!("nats://a:a@127.0.0.1:{}", env.server.port());
    let err = connect(&env, &url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JetStreamNotEnabled, "{err}");
}

#[actix::test]
async fn a_jetstream_domain_or_api_prefix_is_used() {
    let env = Env::start_with(NatsServer::builder().config("jetstream { domain: hub }")).await;
    let by_domain = env.config().jetstream_domain("hub").build().unwrap();
    let m = LockManager::connect(&env.server.url(), by_domain)
        .await
        .unwrap();
    works(&m).await;
    let by_prefix = env
        .config()
        .jetstream_api_prefix("$JS.hub.API")
        .build()
        .unwrap();
    let m = LockManager::connect(&env.server.url(), by_prefix)
        .await
        .unwrap();
    works(&m).await;
}

/// A signed NATS JWT (`ed25519-nkey`): `claims` (`nats` part) about `subject`, issued by
/// `issuer`. Only what the server checks: the signature, issuer, subject and type.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "jti": format!("{subject}{now}"),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = issuer.sign(body.as_bytes()).unwrap();
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A server in operator mode with one JetStream-enabled account (and the system account it
/// needs), and a creds file for a user
/// of that account.
async fn creds_env(dir: &Path) -> (Env, PathBuf) {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    // JetStream in operator mode needs a system account.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({ "type": "account", "version": 2 }),
    );
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({ "type": "operator", "version": 2 }),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "locks",
        serde_json::json!({ "type": "account", "version": 2, "limits": unlimited }),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "locker",
        serde_json::json!({
            "type": "user", "version": 2, "pub": {}, "sub": {},
            "subs": -1, "data": -1, "payload": -1,
        }),
    );
    let creds = dir.join("user.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    let config = format!(
        "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: {system_jwt}\n  {}: {account_jwt}\n}}\n",
        account.public_key(),
        sys = system.public_key(),
    );
    let env = env_with_auth(config, ProbeAuth::CredsFile(creds.clone())).await;
    (env, creds)
}

#[actix::test]
async fn a_creds_file_in_options_from_env_or_in_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (env, creds) = creds_env(dir.path()).await;
    let options = ConnectOptions::with_credentials_file(&creds).await.unwrap();
    works(
        &connect_with(&env, options, &env.server.url())
            .await
            .unwrap(),
    )
    .await;
    let vars = [
        ("NATS_URL", env.server.url()),
        ("NATS_CREDS", creds.to_str().unwrap().to_owned()),
    ];
    from_env_in_child(&env, &vars, None).await;
    let settings = nlock::ConnectSettings::new()
        .servers(env.server.url())
        .creds_file(&creds);
    works(
        &settings
            .connect(env.config().build().unwrap())
            .await
            .unwrap(),
    )
    .await;
    // Without them the server refuses the connection.
    let err = connect(&env, &env.server.url()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}
