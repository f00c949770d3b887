//! What the manager checks of a request before anything is sent: its key, its TTL and
//! description, what the server supports, and that the manager still runs.

use super::LockManagerActor;
use crate::error::{ConfigError, Feature, LockError};
use crate::key::validate_key;
use crate::limits::MAX_DESCRIPTION;
use crate::lock::requests::LockOptions;
use crate::settings::validate_ttl;

impl LockManagerActor {
    /// Checks a request before anything is sent: key, TTL, description, server support.
    pub(super) fn validate(&self, key: &str, options: &LockOptions) -> Result<(), LockError> {
        // A permit's or a read-write lock member's key is nlock's own; the name in it is the
        // caller's.
        match options.internal_key {
            true => crate::key::validate_held_key(key)?,
            false => validate_key(key)?,
        }
        if let Some(ttl) = options.ttl {
            validate_ttl(ttl)?;
            // The bucket's max_age removes a message whatever its own TTL says: a longer
            // per-lock TTL would let the server free the key under a holder that thinks
            // it still holds it.
            if ttl > self.config.ttl {
                return Err(ConfigError::LockTtlAboveBucketTtl {
                    ttl,
                    bucket_ttl: self.config.ttl,
                }
                .into());
            }
            // A lease shorter than one request could be over before its grant is answered.
            if ttl <= self.config.request_timeout {
                return Err(ConfigError::LockTtlNotAboveRequestTimeout {
                    ttl,
                    request_timeout: self.config.request_timeout,
                }
                .into());
            }
            let caps = self.store.capabilities();
            if !caps.per_lock_ttl {
                return Err(LockError::Unsupported {
                    feature: Feature::PerLockTtl,
                    server_version: caps.server_version.clone(),
                });
            }
        }
        if let Some(d) = &options.description {
            if d.len() > MAX_DESCRIPTION {
                return Err(ConfigError::DescriptionTooLong(d.len()).into());
            }
        }
        if self.shutting_down {
            return Err(LockError::ManagerGone);
        }
        Ok(())
    }
}
