//! Opening the lock bucket: creating it, or checking and adopting (and on request upgrading)
//! an existing one; re-creating it when a memory-storage server lost it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, ErrorCode};

use super::layout::{bucket_stream_config, check_matches, first_sequence};
use super::{unavailable, Capabilities, Denials, Store};
use crate::error::{ConfigError, LockError};
use crate::settings::{Config, JetStreamApi};
use crate::telemetry::Meter;

/// How long one answer of [`Store::bucket_missing`] is reused: short against a lease, long
/// against a burst of refreshes that all met "no responders" at once.
const MISSING_CHECK_REUSE: Duration = Duration::from_millis(250);

/// `(major, minor)` of a server version string like `2.15.1` or `v2.9.10-beta`.
pub(super) fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// The first JetStream request of a manager failed. No responders means no JetStream API at
/// `api_prefix` (a server whose INFO claims JetStream but whose account has none reachable,
/// or a domain that does not exist), as do the server's own "not enabled" answers; anything
/// else is the server being unreachable for now.
fn open_failed(e: jetstream::context::GetStreamError, api_prefix: String) -> LockError {
    use std::error::Error as _;
    let not_enabled = match e.kind() {
        jetstream::context::GetStreamErrorKind::JetStream(j) => matches!(
            j.error_code(),
            ErrorCode::JETSTREAM_NOT_ENABLED | ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT
        ),
        jetstream::context::GetStreamErrorKind::Request => e
            .source()
            .and_then(|s| s.downcast_ref::<jetstream::context::RequestError>())
            .is_some_and(|r| r.kind() == jetstream::context::RequestErrorKind::NoResponders),
        _ => false,
    };
    if not_enabled {
        LockError::JetStreamNotEnabled { api_prefix }
    } else {
        unavailable(e)
    }
}

/// The JetStream API prefix `config` asks for.
fn api_prefix_of(config: &Config) -> String {
    match &config.jetstream_api {
        None => "$JS.API".to_owned(),
        Some(JetStreamApi::Domain(domain)) => format!("$JS.{domain}.API"),
        Some(JetStreamApi::Prefix(prefix)) => prefix.clone(),
    }
}

impl Store {
    /// Connects to the bucket: creates it, or accepts an existing one whose settings match.
    /// A request the server refuses for want of permission (`denials`) ends the opening at
    /// once with [`LockError::PermissionDenied`]; a refused purge is the restart grace's
    /// business (see `grace.rs`) and does not end it.
    pub(crate) async fn open(
        client: async_nats::Client,
        config: &Config,
        denials: Denials,
    ) -> Result<Store, LockError> {
        let api = format!("{}.", api_prefix_of(config));
        let stream = bucket_stream_config(config, false).name;
        let purge = format!("{api}STREAM.PURGE.{stream}");
        let ours = |s: &str| {
            s.starts_with(&api) && s != purge && s.split('.').any(|token| token == stream)
        };
        denials
            .clone()
            .refused(ours, Store::open_unguarded(client, config, denials))
            .await
            .unwrap_or_else(|subject| Err(LockError::PermissionDenied { subject }))
    }

    async fn open_unguarded(
        client: async_nats::Client,
        config: &Config,
        denials: Denials,
    ) -> Result<Store, LockError> {
        let info = client.server_info();
        let version = info.version;
        let modern = major_minor(&version) >= (2, 11);
        let api_prefix = api_prefix_of(config);
        // The INFO of a server without -js says so: no need to wait for a request to find
        // out. Only when it counts: a domain or prefix may reach JetStream elsewhere (a leaf
        // node's hub), and a client still connecting has no INFO yet (empty server id).
        if config.jetstream_api.is_none() && !info.server_id.is_empty() && !info.jetstream {
            return Err(LockError::JetStreamNotEnabled { api_prefix });
        }
        // The request timeout bounds every JetStream request and publish ack; past it an
        // outcome is "unknown" and the caller's own deadline decides what happens next.
        let statistics = client.statistics();
        let js = jetstream::ContextBuilder::new()
            .api_prefix(api_prefix.clone())
            .timeout(config.request_timeout)
            .build(client);
        let mut wanted = bucket_stream_config(config, modern);
        let kv = match js.get_stream(&wanted.name).await {
            Ok(stream) => {
                adopt_bucket(&js, config, &wanted, stream.cached_info().config.clone()).await?;
                js.get_key_value(&config.bucket)
                    .await
                    .map_err(unavailable)?
            }
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(js_err)
                    if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    if !config.create_bucket {
                        return Err(ConfigError::BucketNotFound {
                            bucket: config.bucket.clone(),
                        }
                        .into());
                    }
                    create_bucket(&js, config, wanted.clone()).await?
                }
                _ => return Err(open_failed(e, api_prefix)),
            },
        };
        if config.upgrade_bucket && !modern {
            tracing::info!(
                bucket = %config.bucket,
                server = %version,
                "upgrade_bucket: the server has no per-message TTL or limit markers (2.11+); \
                 the bucket is left as it is"
            );
        }
        let cfg = &kv.stream.cached_info().config;
        // A bucket lost and re-created (memory storage on a restart) gets the layout it was
        // used with, so that it keeps matching these capabilities, and Go nlock processes
        // sharing it.
        wanted.allow_message_ttl = cfg.allow_message_ttl;
        wanted.subject_delete_marker_ttl = cfg.subject_delete_marker_ttl;
        let caps = Capabilities {
            server_version: version,
            per_lock_ttl: modern && cfg.allow_message_ttl,
            expiry_events: modern && cfg.subject_delete_marker_ttl.is_some(),
            restart_grace: config.restart_grace.then(|| {
                cfg.max_age
                    .max(config.ttl)
                    .saturating_add(config.max_clock_skew)
            }),
        };
        let max_age = cfg.max_age;
        let store = Store {
            js,
            kv,
            subject_prefix: format!("$KV.{}.", config.bucket),
            meter: Arc::new(Meter::new(&config.bucket)),
            caps,
            wanted,
            missing_check: Arc::default(),
            request_timeout: config.request_timeout,
            max_age,
            statistics,
            grace: Default::default(),
            restart_grace: config.restart_grace,
            grace_ttl: config.ttl,
            clock_skew: config.max_clock_skew,
            create_bucket: config.create_bucket,
            denials,
            api_prefix,
        };
        store.first_grace_check().await;
        Ok(store)
    }
}

impl Store {
    /// Whether the server says the bucket's stream does not exist. Only that answer counts:
    /// a timeout or a leaderless cluster is not "missing".
    pub(crate) async fn bucket_missing(&self) -> bool {
        let recent = self
            .missing_check
            .lock()
            .ok()
            .and_then(|c| *c)
            .filter(|(at, _)| at.elapsed() < MISSING_CHECK_REUSE);
        if let Some((_, missing)) = recent {
            return missing;
        }
        let missing = match self.js.get_stream(&self.wanted.name).await {
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND
            ),
        };
        if let Ok(mut c) = self.missing_check.lock() {
            *c = Some((std::time::Instant::now(), missing));
        }
        missing
    }

    /// Re-creates the bucket if it is missing (after a memory-storage server restart), with
    /// the settings it was opened with and a first sequence above every revision the lost
    /// bucket can have used. Returns whether the bucket exists again.
    /// Never for a manager that may not create the bucket.
    pub(crate) async fn recreate_if_missing(&self) -> bool {
        if !self.create_bucket || !self.bucket_missing().await {
            return false;
        }
        let mut wanted = self.wanted.clone();
        wanted.first_sequence = first_sequence();
        let created = self.js.create_stream(wanted).await;
        if let Ok(mut c) = self.missing_check.lock() {
            *c = None;
        }
        tracing::warn!(
            bucket = %self.wanted.name,
            ok = created.is_ok(),
            "the lock bucket was missing (a memory-storage server restart?); re-created it"
        );
        created.is_ok()
    }
}

async fn create_bucket(
    js: &jetstream::Context,
    config: &Config,
    wanted: jetstream::stream::Config,
) -> Result<kv::Store, LockError> {
    let bucket = &config.bucket;
    match js.create_stream(wanted.clone()).await {
        Ok(_) => js.get_key_value(bucket).await.map_err(unavailable),
        Err(e) => {
            // Two managers may race to create the bucket; the loser re-reads and compares.
            if let Ok(stream) = js.get_stream(&wanted.name).await {
                adopt_bucket(js, config, &wanted, stream.cached_info().config.clone()).await?;
                return js.get_key_value(bucket).await.map_err(unavailable);
            }
            Err(bucket_rejected(bucket, e))
        }
    }
}

/// Accepts an existing bucket whose safety settings match `wanted`. One that lacks
/// per-message TTL or limit markers (made by a server before 2.11, or by Go nlock) is used
/// without them, with one warning, or upgraded when the config asks for it.
async fn adopt_bucket(
    js: &jetstream::Context,
    config: &Config,
    wanted: &jetstream::stream::Config,
    found: jetstream::stream::Config,
) -> Result<(), LockError> {
    let missing = check_matches(&config.bucket, wanted, &found)?;
    let Some(what) = missing.describe() else {
        return Ok(());
    };
    if !config.upgrade_bucket {
        tracing::warn!(
            bucket = %config.bucket,
            missing = what,
            "the lock bucket has no {what} (made by a nats-server before 2.11 or by Go nlock): \
             no per-lock TTL, and waiters notice an expired lock only at their next fallback \
             poll. To upgrade it, start one manager with `upgrade_bucket(true)` once no Go \
             nlock process uses the bucket (Go nlock cannot start on an upgraded one)"
        );
        return Ok(());
    }
    // Everything else as found, so only these two settings change. The server refuses to
    // turn per-message TTL off again, so this cannot be undone.
    let mut upgraded = found;
    upgraded.allow_message_ttl = true;
    upgraded.subject_delete_marker_ttl = upgraded
        .subject_delete_marker_ttl
        .or(wanted.subject_delete_marker_ttl);
    js.update_stream(&upgraded)
        .await
        .map_err(|e| bucket_rejected(&config.bucket, e))?;
    tracing::info!(
        bucket = %config.bucket,
        added = what,
        "upgraded the lock bucket (upgrade_bucket); Go nlock can no longer start on it"
    );
    Ok(())
}

/// A bucket the server refused to create (too many replicas for the cluster, for one) is a
/// configuration problem; anything else means the server could not be asked.
fn bucket_rejected(bucket: &str, e: jetstream::context::CreateStreamError) -> LockError {
    match e.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(j) => LockError::BucketRejected {
            bucket: bucket.to_owned(),
            code: j.error_code().0,
            description: j.to_string(),
        },
        _ => unavailable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_versions() {
        assert_eq!(major_minor("2.15.1"), (2, 15));
        assert_eq!(major_minor("2.9.10"), (2, 9));
        assert_eq!(major_minor("v2.11.0-RC.1"), (2, 11));
        assert!(major_minor("2.9.10") < (2, 11));
        assert_eq!(major_minor("garbage"), (0, 0));
    }
}
