//! What a lock bucket's stream looks like for a config and a server, and whether an existing
//! one matches it.

use async_nats::jetstream;

use crate::error::{ConfigError, LockError};
use crate::settings::{BucketLayout, Config, Storage};

/// The stream behind a lock bucket, as NATS KV lays it out (ADR-8), with history 1 and
/// `max_age` = TTL. Built here rather than by `create_key_value`, because that first queries
/// the account, and async-nats 0.51 cannot parse the account info of servers before 2.10.
///
/// With [`BucketLayout::GoCompatible`] (or a server before 2.11) it is the stream Go nlock's
/// `CreateOrUpdateKeyValue` makes, but for the first sequence. Go nlock's start-up update of
/// the bucket succeeds all the same and drops it from the config, which changes nothing: a
/// first sequence only acts when a stream is created (`tests/it/go_interop.rs` checks).
pub(super) fn bucket_stream_config(config: &Config, modern: bool) -> jetstream::stream::Config {
    let full = modern && config.bucket_layout == BucketLayout::Full;
    jetstream::stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: 1,
        max_age: config.ttl,
        storage: match config.storage {
            Storage::Memory => jetstream::stream::StorageType::Memory,
            Storage::File => jetstream::stream::StorageType::File,
        },
        num_replicas: config.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        // Per-message TTL and limit markers (2.11+). A marker lives as long as a lock would:
        // long enough for any poller to see it.
        allow_message_ttl: full,
        subject_delete_marker_ttl: full.then_some(config.ttl),
        first_sequence: first_sequence(),
        ..Default::default()
    }
}

/// The first revision of a new bucket: this host's clock in microseconds since the epoch.
///
/// Revisions are fencing tokens, and a bucket that is lost (memory storage on a restart) and
/// created again would otherwise count from 1 again: old holders' revisions would point into
/// the new bucket, and tokens would go backwards. Starting at the clock keeps every revision
/// of a re-created bucket above those of the lost one, as long as the lost one made fewer
/// writes than microseconds passed since it was created (and clocks agree to within that).
pub(super) fn first_sequence() -> Option<u64> {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    (micros > 0).then_some(micros)
}

/// What an existing bucket lacks of the layout asked for, among the settings whose lack is
/// safe: without them nlock works as on a server before 2.11.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Missing {
    message_ttl: bool,
    limit_markers: bool,
}

impl Missing {
    /// The missing features in words, or `None` when nothing is missing.
    pub(super) fn describe(self) -> Option<&'static str> {
        match (self.message_ttl, self.limit_markers) {
            (true, true) => Some("per-message TTL and limit markers"),
            (true, false) => Some("per-message TTL"),
            (false, true) => Some("limit markers"),
            (false, false) => None,
        }
    }
}

/// Compares the settings that matter for safety, and says which optional features the
/// existing bucket lacks.
pub(super) fn check_matches(
    bucket: &str,
    wanted: &jetstream::stream::Config,
    found: &jetstream::stream::Config,
) -> Result<Missing, LockError> {
    let mismatch = |setting: &'static str, w: String, f: String| {
        Err(LockError::InvalidConfig(ConfigError::BucketMismatch {
            bucket: bucket.to_owned(),
            setting,
            wanted: w,
            found: f,
        }))
    };
    if found.max_age != wanted.max_age {
        return mismatch(
            "ttl (max_age)",
            format!("{:?}", wanted.max_age),
            format!("{:?}", found.max_age),
        );
    }
    if found.max_messages_per_subject != wanted.max_messages_per_subject {
        return mismatch(
            "history",
            wanted.max_messages_per_subject.to_string(),
            found.max_messages_per_subject.to_string(),
        );
    }
    if found.storage != wanted.storage {
        return mismatch(
            "storage",
            format!("{:?}", wanted.storage),
            format!("{:?}", found.storage),
        );
    }
    if found.num_replicas != wanted.num_replicas {
        return mismatch(
            "replicas",
            wanted.num_replicas.to_string(),
            found.num_replicas.to_string(),
        );
    }
    if found.discard != wanted.discard || !found.deny_delete || !found.allow_direct {
        return mismatch(
            "KV layout (discard new, deny delete, direct get)",
            "a NATS KV bucket".into(),
            format!(
                "discard {:?}, deny_delete {}, allow_direct {}",
                found.discard, found.deny_delete, found.allow_direct
            ),
        );
    }
    // Per-message TTL and limit markers only add features, so a bucket without them is
    // used without them. One with them where none are wanted (`BucketLayout::GoCompatible`)
    // is refused: Go nlock's start-up update could not turn per-message TTL off again.
    if found.allow_message_ttl && !wanted.allow_message_ttl {
        return mismatch(
            "per-message TTL (Go nlock cannot start on such a bucket)",
            "false".into(),
            "true".into(),
        );
    }
    let markers = found.subject_delete_marker_ttl;
    if markers.is_some() && wanted.subject_delete_marker_ttl.is_none() {
        return mismatch(
            "limit markers",
            format!("{:?}", wanted.subject_delete_marker_ttl),
            format!("{markers:?}"),
        );
    }
    Ok(Missing {
        message_ttl: wanted.allow_message_ttl && !found.allow_message_ttl,
        limit_markers: wanted.subject_delete_marker_ttl.is_some() && markers.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn layout(layout: BucketLayout, modern: bool) -> jetstream::stream::Config {
        let config = Config::builder().bucket_layout(layout).build().unwrap();
        bucket_stream_config(&config, modern)
    }

    #[test]
    fn a_bucket_without_ttl_and_markers_is_used_without_them() {
        let full = layout(BucketLayout::Full, true);
        let go = layout(BucketLayout::GoCompatible, true);
        assert!(full.allow_message_ttl && full.subject_delete_marker_ttl.is_some());
        assert!(!go.allow_message_ttl && go.subject_delete_marker_ttl.is_none());
        let missing = check_matches("b", &full, &go).unwrap();
        assert_eq!(
            missing.describe(),
            Some("per-message TTL and limit markers")
        );
        let no_markers = jetstream::stream::Config {
            subject_delete_marker_ttl: None,
            ..full.clone()
        };
        let missing = check_matches("b", &full, &no_markers).unwrap();
        assert_eq!(missing.describe(), Some("limit markers"));
        assert_eq!(check_matches("b", &full, &full).unwrap().describe(), None);
        assert_eq!(check_matches("b", &go, &go).unwrap().describe(), None);
        // Before 2.11 both layouts are Go's, and nothing is missing.
        let old = layout(BucketLayout::Full, false);
        assert!(!old.allow_message_ttl && old.subject_delete_marker_ttl.is_none());
        assert_eq!(check_matches("b", &old, &go).unwrap().describe(), None);
    }

    #[test]
    fn safety_settings_and_extra_features_are_still_mismatches() {
        let full = layout(BucketLayout::Full, true);
        let go = layout(BucketLayout::GoCompatible, true);
        let setting = |wanted, found| match check_matches("b", wanted, found) {
            Err(LockError::InvalidConfig(ConfigError::BucketMismatch { setting, .. })) => setting,
            other => panic!("expected a mismatch, got {other:?}"),
        };
        assert!(setting(&go, &full).starts_with("per-message TTL"));
        let other_ttl = jetstream::stream::Config {
            max_age: Duration::from_secs(5),
            ..go.clone()
        };
        assert_eq!(setting(&full, &other_ttl), "ttl (max_age)");
        let history = jetstream::stream::Config {
            max_messages_per_subject: 5,
            ..go.clone()
        };
        assert_eq!(setting(&full, &history), "history");
        let file = jetstream::stream::Config {
            storage: jetstream::stream::StorageType::File,
            ..go.clone()
        };
        assert_eq!(setting(&full, &file), "storage");
    }
}
