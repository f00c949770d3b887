//! Buckets made by others, and sharing keys with Go nlock.
//!
//! Go nlock is played here by its algorithm written with raw async-nats:
//! its bucket is what nats.go's `CreateOrUpdateKeyValue` sends for its settings, a lock value
//! is a random id, acquire is `kv.create`, keep-alive is `kv.update` with the expected
//! revision every TTL/3, release is `kv.delete_expect_revision`, and a failed acquire is
//! retried every 250 ms plus jitter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use nlock::{BucketLayout, ConfigError, LockError, LockOptions, LossReason};
use rand::Rng;

use crate::fixture::{Env, PATIENCE};
use crate::harness::must_eventually;

/// The stream nats.go's `CreateOrUpdateKeyValue` sends for Go nlock's settings (bucket,
/// description, TTL, replicas 1, history 1, memory storage): no per-message TTL, no limit
/// markers, no first sequence.
fn go_stream_config(bucket: &str, ttl: Duration) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some("Go nlock locks".into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_bytes: -1,
        max_age: ttl,
        max_message_size: -1,
        storage: stream::StorageType::Memory,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        duplicate_window: ttl.min(Duration::from_secs(120)),
        max_messages: -1,
        max_consumers: -1,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Go nlock's start-up: `CreateOrUpdateStream` of its bucket (an update, and a create when
/// the stream does not exist). Built by hand because `create_or_update_key_value` first reads
/// the account info, which async-nats 0.51 cannot parse on 2.9.
async fn go_start_up(
    env: &Env,
    ttl: Duration,
) -> Result<stream::Info, jetstream::context::CreateStreamError> {
    let js = jetstream::new(env.raw().await);
    js.create_or_update_stream(go_stream_config(&env.bucket, ttl))
        .await
}

/// The bucket's stream config as the server reports it now.
async fn bucket_config(env: &Env) -> stream::Config {
    let js = jetstream::new(env.raw().await);
    let mut s = js.get_stream(format!("KV_{}", env.bucket)).await.unwrap();
    s.info().await.unwrap().config.clone()
}

/// Collects what `tracing` writes on this thread while the guard lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// Captures warnings of this thread (the actix test's) until the guard is dropped.
    fn warnings() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        (
            captured.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    fn lines_with(&self, text: &str) -> usize {
        let out = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        out.lines().filter(|l| l.contains(text)).count()
    }
}

#[actix::test]
async fn a_go_bucket_is_used_as_it_is_with_one_warning() {
    let env = Env::start().await;
    go_start_up(&env, Duration::from_secs(3)).await.unwrap();
    let before = bucket_config(&env).await;

    let (log, guard) = Captured::warnings();
    let m = env.manager(env.config()).await;
    let m2 = env.manager(env.config()).await;
    drop(guard);
    // One warning per manager start, and only where the server could do better.
    let warned = log.lines_with("the lock bucket has no per-message TTL and limit markers");
    assert_eq!(warned, if env.modern() { 2 } else { 0 });

    for m in [&m, &m2] {
        assert!(!m.capabilities().per_lock_ttl);
        assert!(!m.capabilities().expiry_events);
    }
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    assert_eq!(
        m2.try_acquire("k").await.unwrap_err().kind(),
        nlock::AcquireErrorKind::Busy
    );
    lock.release().await.unwrap();
    let with_ttl = LockOptions::default().ttl(Duration::from_secs(2));
    let err = m
        .lock("j")
        .options(with_ttl)
        .timeout(PATIENCE)
        .acquire()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nlock::AcquireErrorKind::Unsupported);

    // Nothing about the bucket was changed: Go nlock can still start on it.
    let after = bucket_config(&env).await;
    assert_eq!(
        (
            after.allow_message_ttl,
            after.subject_delete_marker_ttl,
            after.max_age
        ),
        (
            before.allow_message_ttl,
            before.subject_delete_marker_ttl,
            before.max_age
        )
    );
    assert!(!after.allow_message_ttl);
    go_start_up(&env, Duration::from_secs(3)).await.unwrap();
}

#[actix::test]
async fn a_go_bucket_with_other_safety_settings_is_still_refused() {
    let env = Env::start().await;
    go_start_up(&env, Duration::from_secs(5)).await.unwrap();
    let config = env.config().upgrade_bucket(true).build().unwrap();
    let err = nlock::LockManager::connect(&env.server.url(), config)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.lock_error(),
            LockError::InvalidConfig(ConfigError::BucketMismatch {
                setting: "ttl (max_age)",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!bucket_config(&env).await.allow_message_ttl, "not upgraded");
}

/// Whether `key` has no live value (expired, deleted or never written).
async fn gone(kv: &kv::Store, key: &str) -> bool {
    match kv.entry(key).await {
        Ok(None) => true,
        Ok(Some(e)) => e.operation != kv::Operation::Put,
        Err(_) => false,
    }
}

#[actix::test]
async fn an_upgrade_happens_only_when_asked_and_keys_still_expire_after_it() {
    let env = Env::start().await;
    let ttl = Duration::from_secs(3);
    go_start_up(&env, ttl).await.unwrap();
    let kv = env.kv().await;
    // A Go holder that crashed before the upgrade: its key must still expire after it.
    kv.create("before", "go-before".into()).await.unwrap();

    let m = env.manager(env.config().upgrade_bucket(true)).await;
    let cfg = bucket_config(&env).await;
    if !env.modern() {
        // Nothing to upgrade to: the bucket is left alone and used as 2.9 servers use it.
        assert!(!m.capabilities().per_lock_ttl && !m.capabilities().expiry_events);
        assert!(!cfg.allow_message_ttl);
        return;
    }
    assert!(m.capabilities().per_lock_ttl && m.capabilities().expiry_events);
    assert!(cfg.allow_message_ttl);
    assert_eq!(cfg.subject_delete_marker_ttl, Some(ttl));
    assert_eq!((cfg.max_age, cfg.max_messages_per_subject), (ttl, 1));
    // Go nlock cannot start on it any more (the README says so).
    assert!(go_start_up(&env, ttl).await.is_err());

    // Keys written after the upgrade expire too: a Go-style key (max_age only) and one with
    // its own TTL (nats-server#6920 stopped such keys expiring after a marker-TTL change).
    let kv = env.kv().await;
    kv.create("after", "go-after".into()).await.unwrap();
    let js = jetstream::new(env.raw().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
    headers.insert(async_nats::header::NATS_MESSAGE_TTL, "1s");
    let subject = format!("$KV.{}.own-ttl", env.bucket);
    js.publish_with_headers(subject, headers, "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A waiter with a 10-minute fallback poll: only an expiry marker can hand it the key.
    let waiter = env
        .manager(env.config().retry_interval(Duration::from_secs(600)))
        .await;
    assert!(waiter.capabilities().expiry_events);
    let got = waiter.acquire("after", Some(PATIENCE)).await.unwrap();
    got.release().await.unwrap();
    for key in ["before", "after", "own-ttl"] {
        must_eventually(PATIENCE, &format!("{key} expires"), || gone(&kv, key)).await;
    }
    // A lock with a per-lock TTL shorter than the bucket's, held and refreshed across it.
    let opts = LockOptions::default().ttl(Duration::from_secs(2));
    let lock = m
        .lock("short")
        .options(opts)
        .timeout(PATIENCE)
        .acquire()
        .await
        .unwrap();
    let token = lock.token();
    let before = kv.entry("short").await.unwrap().unwrap().revision;
    must_eventually(PATIENCE, "a refresh", || async {
        kv.entry("short")
            .await
            .unwrap()
            .is_some_and(|e| e.revision > before)
    })
    .await;
    assert!(lock.is_held());
    assert_eq!(lock.token(), token);
}

#[actix::test]
async fn go_start_up_against_each_layout_nlock_creates() {
    let env = Env::start().await;
    let ttl = Duration::from_secs(3);
    // The default layout, created by nlock.
    let full = env.manager(env.config()).await;
    let lock = full.acquire("k", Some(PATIENCE)).await.unwrap();
    let result = go_start_up(&env, ttl).await;
    if env.modern() {
        // Per-message TTL cannot be turned off again: Go nlock fails at start-up.
        let err = result.unwrap_err();
        let jetstream::context::CreateStreamErrorKind::JetStream(js_err) = err.kind() else {
            panic!("expected a JetStream error, got {err:?}");
        };
        assert_eq!(js_err.error_code().0, 10052, "{js_err}");
        assert!(js_err
            .to_string()
            .contains("message TTL status can not be disabled"));
    } else {
        // Before 2.11 the default layout is Go's.
        result.unwrap();
    }
    assert!(lock.is_held());
    lock.release().await.unwrap();
    full.shutdown().await;

    // The Go-compatible layout, created by nlock with its first sequence at the clock.
    let env = Env::start().await;
    let config = env.config().bucket_layout(BucketLayout::GoCompatible);
    let m = env.manager(config.clone()).await;
    assert!(!m.capabilities().per_lock_ttl && !m.capabilities().expiry_events);
    let first = m.acquire("k", Some(PATIENCE)).await.unwrap();
    let first_seq = bucket_config(&env).await.first_sequence;
    if env.modern() {
        assert!(first_seq.is_some_and(|s| s > 1), "{first_seq:?}");
    }
    // Go nlock's start-up update succeeds. It has no first sequence, and the server drops
    // ours from the config; that changes nothing, since a first sequence only acts when a
    // stream is created: revisions go on from where they were.
    go_start_up(&env, ttl).await.unwrap();
    assert!(first.is_held());
    let after = bucket_config(&env).await;
    assert!(after.first_sequence.is_none() || after.first_sequence == first_seq);
    let first_token = first.token();
    first.release().await.unwrap();
    let second = m.acquire("k", Some(PATIENCE)).await.unwrap();
    assert!(second.token() > first_token);
    second.release().await.unwrap();
    // An nlock process starting after it still accepts the bucket, with no warning; with
    // this layout there is nothing to upgrade to, so `upgrade_bucket` changes nothing.
    let (log, guard) = Captured::warnings();
    let again = env.manager(config.upgrade_bucket(true)).await;
    drop(guard);
    assert_eq!(log.lines_with("the lock bucket has no"), 0);
    assert!(!bucket_config(&env).await.allow_message_ttl);
    again
        .try_acquire("k")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();

    // A Go-compatible manager refuses a bucket Go nlock could not start on.
    if env.modern() {
        let env = Env::start().await;
        let _full = env.manager(env.config()).await;
        let config = env
            .config()
            .bucket_layout(BucketLayout::GoCompatible)
            .build()
            .unwrap();
        let err = nlock::LockManager::connect(&env.server.url(), config)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.lock_error(),
                LockError::InvalidConfig(ConfigError::BucketMismatch { setting, .. })
                    if setting.starts_with("per-message TTL")
            ),
            "{err:?}"
        );
    }
}

#[actix::test]
async fn go_start_up_with_another_ttl_changes_the_bucket_behind_nlock() {
    // Not something nlock can prevent: Go nlock updates the bucket to its own settings. The
    // README tells both sides to use the same TTL; a later nlock start notices the change.
    let env = Env::start().await;
    let _m = env
        .manager(env.config().bucket_layout(BucketLayout::GoCompatible))
        .await;
    go_start_up(&env, Duration::from_secs(10)).await.unwrap();
    assert_eq!(bucket_config(&env).await.max_age, Duration::from_secs(10));
    let config = env
        .config()
        .bucket_layout(BucketLayout::GoCompatible)
        .build()
        .unwrap();
    let err = nlock::LockManager::connect(&env.server.url(), config)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.lock_error(),
            LockError::InvalidConfig(ConfigError::BucketMismatch {
                setting: "ttl (max_age)",
                ..
            })
        ),
        "{err:?}"
    );
}

#[actix::test]
async fn busy_and_taken_name_a_foreign_holder() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let kv = env.kv().await;

    kv.create("k", "go-3f2a9c".into()).await.unwrap();
    let err = m.try_acquire("k").await.unwrap_err();
    match err.lock_error() {
        LockError::Busy {
            holder: Some(h), ..
        } => {
            assert!(h.foreign);
            assert_eq!(h.owner, "go-3f2a9c");
        }
        other => panic!("expected Busy with a holder, got {other:?}"),
    }
    assert!(
        err.to_string().contains(r#"foreign holder "go-3f2a9c""#),
        "{err}"
    );

    // Taken behind the holder's back by a foreign writer: the loss names it.
    let lock = m.acquire("t", Some(PATIENCE)).await.unwrap();
    kv.put("t", "intruder".into()).await.unwrap();
    let lost = tokio::time::timeout(PATIENCE, lock.lost()).await.unwrap();
    match lost.reason {
        LossReason::Taken { holder: Some(h) } => {
            assert!(h.foreign);
            assert_eq!(h.owner, "intruder");
        }
        other => panic!("expected Taken by a foreign holder, got {other:?}"),
    }
}

/// Who holds a key, as the holders themselves see it: each enters after its acquire succeeded
/// and leaves before it sends its release. Overlaps are recorded, not panicked on, so that a
/// task's failure cannot be lost in a join.
#[derive(Default)]
struct Register {
    holder: Mutex<Option<String>>,
    violations: Mutex<Vec<String>>,
    grants: Mutex<Vec<String>>,
    /// Confirmed keep-alives: (Go, nlock).
    keep_alives: Mutex<(usize, usize)>,
}

impl Register {
    /// Records `who` as the holder; returns whether this is its side's first grant (Go
    /// clients' ids start with `go-`).
    fn enter(&self, who: &str) -> bool {
        let mut h = self.holder.lock().unwrap();
        if let Some(other) = h.as_ref() {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{who} entered while {other} held"));
        }
        *h = Some(who.to_owned());
        let mut grants = self.grants.lock().unwrap();
        let go = who.starts_with("go-");
        let first = !grants.iter().any(|g| g.starts_with("go-") == go);
        grants.push(who.to_owned());
        first
    }

    fn exit(&self, who: &str) {
        let mut h = self.holder.lock().unwrap();
        if h.as_deref() != Some(who) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{who} left while the register showed {h:?}"));
        }
        *h = None;
    }

    fn problem(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

/// How long a holder keeps a lock: longer than TTL/3 for each side's first grant of a key, so
/// that keep-alives run on both sides, then mostly a few milliseconds and sometimes long again.
fn hold_time(ttl: Duration, first: bool) -> Duration {
    let mut rng = rand::rng();
    if first || rng.random_ratio(1, 20) {
        ttl / 3 + Duration::from_millis(300)
    } else {
        Duration::from_millis(rng.random_range(1..20))
    }
}

/// One Go nlock client on its own connection, contending for `key` until `until`.
async fn go_client(
    env_url: String,
    bucket: String,
    key: &'static str,
    ttl: Duration,
    register: Arc<Register>,
    until: tokio::time::Instant,
) {
    let client = async_nats::connect(env_url).await.unwrap();
    let kv = jetstream::new(client).get_key_value(&bucket).await.unwrap();
    let id = format!("go-{:016x}", rand::random::<u64>());
    let value = Bytes::from(id.clone());
    while tokio::time::Instant::now() < until {
        let mut rev = match kv.create(key, value.clone()).await {
            Ok(rev) => rev,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let jitter = rand::rng().random_range(0..=25);
                tokio::time::sleep(Duration::from_millis(250 + jitter)).await;
                continue;
            }
            Err(e) => {
                register.problem(format!("{id}: create failed: {e}"));
                return;
            }
        };
        let first = register.enter(&id);
        // Keep alive every TTL/3 with the expected revision, as Go nlock does.
        let end = tokio::time::Instant::now() + hold_time(ttl, first);
        let mut next_keep_alive = tokio::time::Instant::now() + ttl / 3;
        while next_keep_alive < end {
            tokio::time::sleep_until(next_keep_alive).await;
            match kv.update(key, value.clone(), rev).await {
                Ok(r) => {
                    rev = r;
                    register.keep_alives.lock().unwrap().0 += 1;
                }
                Err(e) => register.problem(format!("{id}: keep-alive failed: {e}")),
            }
            next_keep_alive += ttl / 3;
        }
        tokio::time::sleep_until(end).await;
        register.exit(&id);
        if let Err(e) = kv.delete_expect_revision(key, Some(rev)).await {
            register.problem(format!("{id}: release failed: {e}"));
        }
        // Go services do other work between locks.
        let pause = rand::rng().random_range(0..50);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// One nlock task on manager `m`, contending for `key` until `until`.
async fn nlock_client(
    m: nlock::LockManager,
    who: String,
    key: &'static str,
    ttl: Duration,
    register: Arc<Register>,
    until: tokio::time::Instant,
) {
    while tokio::time::Instant::now() < until {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let lock = match m.acquire(key, Some(left)).await {
            Ok(lock) => lock,
            Err(e) if e.kind() == nlock::AcquireErrorKind::AcquireTimedOut => return,
            Err(e) => {
                register.problem(format!("{who}: acquire failed: {e}"));
                return;
            }
        };
        let first = register.enter(&who);
        tokio::select! {
            _ = tokio::time::sleep(hold_time(ttl, first)) => {}
            lost = lock.lost() => register.problem(format!("{who}: lost {key}: {}", lost.reason)),
        }
        // A refresh (keep-alive) moved the revision past the token.
        if lock.state().await.is_ok_and(|s| s.revision > s.token) {
            register.keep_alives.lock().unwrap().1 += 1;
        }
        register.exit(&who);
        if let Err(e) = lock.release().await {
            register.problem(format!("{who}: release failed: {e}"));
        }
        // Other work between locks; long enough that the key is sometimes free when a Go
        // client polls, which nlock's waiters (woken by the delete marker) would never allow.
        let pause = rand::rng().random_range(0..300);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

#[actix::test]
async fn go_clients_and_nlock_managers_share_keys_safely() {
    let env = Env::start().await;
    let ttl = Duration::from_secs(3);
    // Go started first and made the bucket; nlock joins it in its Go-compatible layout.
    go_start_up(&env, ttl).await.unwrap();
    let config = env.config().bucket_layout(BucketLayout::GoCompatible);
    let managers = [env.manager(config.clone()).await, env.manager(config).await];
    let keys: [&'static str; 2] = ["shared.a", "shared.b"];
    let registers: Vec<Arc<Register>> = keys.iter().map(|_| Arc::default()).collect();
    // A few seconds of contention, with a long hold on each side and key.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for (key, register) in keys.iter().zip(&registers) {
        for _ in 0..3 {
            tasks.push(actix::spawn(go_client(
                env.server.url(),
                env.bucket.clone(),
                key,
                ttl,
                register.clone(),
                until,
            )));
        }
        for (i, m) in managers.iter().enumerate() {
            tasks.push(actix::spawn(nlock_client(
                m.clone(),
                format!("nlock-{i}"),
                key,
                ttl,
                register.clone(),
                until,
            )));
        }
    }
    // Bounded: the tasks stop contending at `until`; a hold and a release take at most a few
    // seconds more.
    tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(tasks))
        .await
        .expect("the clients finish");
    for (key, register) in keys.iter().zip(&registers) {
        let violations = register.violations.lock().unwrap();
        assert!(violations.is_empty(), "{key}: {violations:#?}");
        let grants = register.grants.lock().unwrap();
        let go = grants.iter().filter(|g| g.starts_with("go-")).count();
        let nl = grants.len() - go;
        let (go_ka, nl_ka) = *register.keep_alives.lock().unwrap();
        println!(
            "measured: {key}: {go} Go grants, {nl} nlock grants; \
             {go_ka} Go keep-alives, {nl_ka} nlock tenures refreshed"
        );
        assert!(
            go > 0 && nl > 0,
            "{key}: both sides held it ({go} Go, {nl} nlock)"
        );
        assert!(
            go_ka > 0 && nl_ka > 0,
            "{key}: both sides kept a lock alive"
        );
    }
}
