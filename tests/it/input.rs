//! Bad input: each row gets its typed error, and nothing is written.

use std::time::Duration;

use nlock::{ConfigError, LockError, LockManager, LockOptions};

use crate::fixture::{Env, PATIENCE};

#[actix::test]
async fn bad_keys_are_rejected_before_anything_is_written() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let before = env.stream_messages().await;
    for key in ["", ".a", "a.", "a..b", "a b", "a*", "a>", "_kv.x"] {
        let err = m.acquire(key, Some(PATIENCE)).await.unwrap_err();
        assert_eq!(err.kind(), nlock::AcquireErrorKind::InvalidKey, "{key:?}");
        let err = m.try_acquire(key).await.unwrap_err();
        assert_eq!(err.kind(), nlock::AcquireErrorKind::InvalidKey, "{key:?}");
    }
    assert_eq!(env.stream_messages().await, before);
    assert_eq!(before, Some(0));
}

#[actix::test]
async fn bad_per_lock_options_are_rejected_before_anything_is_written() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let ttl = |d| LockOptions::default().ttl(d);
    let cases = [
        (ttl(Duration::ZERO), nlock::AcquireErrorKind::InvalidConfig),
        (
            ttl(Duration::from_millis(500)),
            nlock::AcquireErrorKind::InvalidConfig,
        ),
        (
            ttl(Duration::from_millis(1500)),
            nlock::AcquireErrorKind::InvalidConfig,
        ),
        (
            LockOptions::default().description("x".repeat(nlock::limits::MAX_DESCRIPTION + 1)),
            nlock::AcquireErrorKind::InvalidConfig,
        ),
    ];
    for (opts, kind) in cases {
        let err = m
            .lock("k")
            .options(opts.clone())
            .timeout(PATIENCE)
            .acquire()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{opts:?}");
    }
    assert_eq!(env.stream_messages().await, Some(0));
}

#[actix::test]
async fn per_lock_ttl_on_an_old_server_is_unsupported() {
    let env = Env::start().await;
    let m = env.manager(env.config()).await;
    let opts = LockOptions::default().ttl(Duration::from_secs(2));
    let result = m.lock("k").options(opts).timeout(PATIENCE).acquire().await;
    if env.modern() {
        assert!(result.is_ok());
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), nlock::AcquireErrorKind::Unsupported);
        assert_eq!(env.stream_messages().await, Some(0));
    }
}

#[actix::test]
async fn a_bucket_with_other_settings_is_refused_and_left_alone() {
    let env = Env::start().await;
    let _first = env.manager(env.config().ttl(Duration::from_secs(3))).await;
    let config = env.config().ttl(Duration::from_secs(10)).build().unwrap();
    let err = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap_err();
    match err.into_lock_error() {
        LockError::InvalidConfig(ConfigError::BucketMismatch { setting, .. }) => {
            assert_eq!(setting, "ttl (max_age)")
        }
        other => panic!("expected BucketMismatch, got {other:?}"),
    }
    let js = async_nats::jetstream::new(env.raw().await);
    let mut stream = js.get_stream(format!("KV_{}", env.bucket)).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.max_age,
        Duration::from_secs(3)
    );

    let config = env.config().storage(nlock::Storage::File).build().unwrap();
    let err = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap_err();
    assert!(matches!(
        err.lock_error(),
        LockError::InvalidConfig(ConfigError::BucketMismatch {
            setting: "storage",
            ..
        })
    ));
}

#[actix::test]
async fn replicas_above_the_cluster_size_are_refused() {
    let env = Env::start().await;
    let config = env.config().replicas(3).build().unwrap();
    let err = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap_err();
    match err.lock_error() {
        LockError::BucketRejected { bucket, .. } => assert_eq!(*bucket, env.bucket),
        other => panic!("expected BucketRejected, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("refused to create the lock bucket"),
        "{err}"
    );
    assert_eq!(env.stream_messages().await, None, "no bucket was created");
}

#[actix::test]
async fn a_per_lock_ttl_the_bucket_would_cut_short_is_refused() {
    let env = Env::start().await;
    // Bucket TTL 3 s; request timeout 1.5 s.
    let m = env
        .manager(env.config().request_timeout(Duration::from_millis(1500)))
        .await;
    let with_ttl = |s| LockOptions::default().ttl(Duration::from_secs(s));
    match m
        .lock("k")
        .options(with_ttl(4))
        .timeout(PATIENCE)
        .acquire()
        .await
        .unwrap_err()
        .into_lock_error()
    {
        LockError::InvalidConfig(ConfigError::LockTtlAboveBucketTtl { ttl, bucket_ttl }) => {
            assert_eq!(
                (ttl, bucket_ttl),
                (Duration::from_secs(4), Duration::from_secs(3))
            );
        }
        other => panic!("expected LockTtlAboveBucketTtl, got {other:?}"),
    }
    let err = m
        .lock("k")
        .options(with_ttl(1))
        .timeout(PATIENCE)
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.lock_error(),
            LockError::InvalidConfig(ConfigError::LockTtlNotAboveRequestTimeout { .. })
        ),
        "{err:?}"
    );
    // It names a TTL that would work: the smallest whole second above 1.5 s.
    assert!(err.to_string().contains("at least 2s"), "{err}");
    assert_eq!(env.stream_messages().await, Some(0));
}

#[actix::test]
async fn the_longest_bucket_name_and_description_build_is_accepted_by_the_server() {
    // The bounds `build()` checks are the server's: at the limit, the bucket is created.
    let env = Env::start().await;
    let bucket = format!(
        "{}_{}",
        env.bucket,
        "b".repeat(nlock::limits::MAX_BUCKET_LEN)
    )[..nlock::limits::MAX_BUCKET_LEN]
        .to_owned();
    let config = env
        .config()
        .bucket(bucket.clone())
        .description("d".repeat(nlock::limits::MAX_BUCKET_DESCRIPTION))
        .build()
        .unwrap();
    let m = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap();
    m.try_acquire("k").await.unwrap().release().await.unwrap();
    // One byte more of either is refused before anything is sent.
    let longer = env.config().bucket(format!("{bucket}b")).build();
    assert!(matches!(longer, Err(ConfigError::BucketNameTooLong(253))));
    let longer = env
        .config()
        .description("d".repeat(nlock::limits::MAX_BUCKET_DESCRIPTION + 1))
        .build();
    assert!(matches!(
        longer,
        Err(ConfigError::BucketDescriptionTooLong(_))
    ));
}

#[actix::test]
async fn a_one_second_ttl_works_with_the_default_request_timeout() {
    // The README's minimum TTL, with every other option left at its default.
    let env = Env::start().await;
    let config = nlock::Config::builder()
        .bucket(env.bucket.clone())
        .ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(config.request_timeout(), Duration::from_millis(500));
    let m = LockManager::connect(&env.server.url(), config)
        .await
        .unwrap();
    let lock = m.acquire("k", Some(PATIENCE)).await.unwrap();
    // Held across several refreshes (every 333 ms) without being lost.
    let first = lock.token();
    crate::harness::must_eventually(PATIENCE, "two refreshes confirmed", || async {
        env.kv().await.entry("k").await.unwrap().unwrap().revision > first + 1
    })
    .await;
    lock.release().await.unwrap();
}
