//! How a candidate campaigns, and the record it stores in the lock value.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, LockError};
use crate::limits::MAX_DESCRIPTION;
use crate::lock::requests::LockOptions;

/// The default [`ElectorOptions::lock_delay`].
///
/// ```
/// let options = nlock::ElectorOptions::new("node-a");
/// assert_eq!(options.lock_delay, nlock::config::DEFAULT_LOCK_DELAY);
/// ```
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(1);

/// How an [`Elector`](super::Elector) campaigns and leads.
///
/// ```
/// use std::time::Duration;
/// let options = nlock::ElectorOptions::new("node-a")
///     .metadata(serde_json::json!({"zone": "eu-1", "version": "1.4.2"}))
///     .lock_delay(Duration::from_millis(500));
/// assert_eq!(options.identity, "node-a");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ElectorOptions {
    /// Who this candidate is, as observers see it ([`Leader::identity`](super::Leader)).
    pub identity: String,
    /// Caller metadata shown to observers with the identity (an address to reach the leader,
    /// a version). Identity and metadata together, as JSON, must fit the lock value's
    /// description: [`MAX_DESCRIPTION`] bytes.
    pub metadata: serde_json::Value,
    /// How long a new term waits before its role starts when the previous term of the key
    /// ended uncleanly: deleted or purged by someone other than its holder (also purged
    /// through the stream API, which leaves no marker: on a bucket with limit markers a key
    /// emptied without one did not expire). Both leaders
    /// learn of such a delete at the same moment; the wait gives the old one time to stop
    /// its role (it does so within milliseconds while its process runs). Not waited after a
    /// release (the old role stopped before its delete was sent) nor after an expiry (the old
    /// holder's local deadline came before the server's, so its role was stopped, or, if its
    /// process was paused, its lease reads as not held when it wakes).
    pub lock_delay: Duration,
    /// The first wait before campaigning again after a failed attempt or a lost term; it
    /// doubles on each failure up to [`max_backoff`](ElectorOptions::max_backoff). Up to
    /// half of it again is added at random (jitter), so candidates do not retry in step.
    pub backoff: Duration,
    /// The longest wait between failed attempts.
    pub max_backoff: Duration,
    /// How long to wait for a role to stop at the end of a term. Meanwhile the term is kept
    /// refreshed (unless it was lost) and released only once the role has stopped. A role
    /// that takes longer is logged, and its term is no longer refreshed (never released): it
    /// expires at its lease deadline. An async role is dropped then; an actor role is left
    /// running, and this candidate waits for it before it campaigns again, unless it is shut
    /// down (a shutdown waits no longer than this). Only a role that winds down by itself
    /// (an actor whose `stopping()` keeps it running, an async role that asked for
    /// [`Term::ending`](super::Term::ending)) takes any of it.
    pub stop_timeout: Duration,
    /// A TTL for the election key instead of the bucket's (see
    /// [`LockOptions::ttl`]).
    pub ttl: Option<Duration>,
}

impl ElectorOptions {
    /// Options for a candidate named `identity`, with the defaults: no metadata, a lock
    /// delay of [`DEFAULT_LOCK_DELAY`], backoff 100 ms doubling to 5 s, a stop timeout of
    /// 5 s, and the bucket's TTL.
    ///
    /// ```
    /// let options = nlock::ElectorOptions::new("node-a");
    /// assert_eq!(options.lock_delay, nlock::config::DEFAULT_LOCK_DELAY);
    /// ```
    pub fn new(identity: impl Into<String>) -> ElectorOptions {
        ElectorOptions {
            identity: identity.into(),
            metadata: serde_json::Value::Null,
            lock_delay: DEFAULT_LOCK_DELAY,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(5),
            ttl: None,
        }
    }

    /// Caller metadata shown to observers.
    #[must_use]
    ///
    /// ```
    /// let options = nlock::ElectorOptions::new("node-a")
    ///     .metadata(serde_json::json!({"url": "http://10.0.0.7:8080"}));
    /// assert_eq!(options.metadata["url"], "http://10.0.0.7:8080");
    /// ```
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The wait after an unclean end; see [`ElectorOptions::lock_delay`] (the field).
    #[must_use]
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = nlock::ElectorOptions::new("node-a").lock_delay(Duration::from_secs(3));
    /// assert_eq!(options.lock_delay, Duration::from_secs(3));
    /// ```
    pub fn lock_delay(mut self, delay: Duration) -> Self {
        self.lock_delay = delay;
        self
    }

    /// The first and the longest wait between attempts.
    #[must_use]
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = nlock::ElectorOptions::new("node-a")
    ///     .backoff(Duration::from_millis(200), Duration::from_secs(10));
    /// assert_eq!(options.max_backoff, Duration::from_secs(10));
    /// ```
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// How long to wait for a role to stop at the end of a term; see the field.
    #[must_use]
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = nlock::ElectorOptions::new("node-a").stop_timeout(Duration::from_secs(30));
    /// assert_eq!(options.stop_timeout, Duration::from_secs(30));
    /// ```
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// A TTL for the election key instead of the bucket's.
    #[must_use]
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = nlock::ElectorOptions::new("node-a").ttl(Duration::from_secs(5));
    /// assert_eq!(options.ttl, Some(Duration::from_secs(5)));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The lock options a campaign acquires with: the candidate record as the description.
    pub(crate) fn lock_options(&self) -> Result<LockOptions, LockError> {
        let record = CandidateRecord {
            leader: Candidate {
                id: self.identity.clone(),
                meta: self.metadata.clone(),
            },
        };
        let description = serde_json::to_string(&record).unwrap_or_default();
        if description.len() > MAX_DESCRIPTION {
            return Err(ConfigError::DescriptionTooLong(description.len()).into());
        }
        let mut options = LockOptions::default().description(description);
        if let Some(ttl) = self.ttl {
            options = options.ttl(ttl);
        }
        Ok(options)
    }
}

/// The description an elector writes: `{"leader":{"id":..,"meta":..}}`. The `leader` wrapper
/// tells a candidate's lock from any other lock that has a description.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CandidateRecord {
    pub(crate) leader: Candidate,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Candidate {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) meta: serde_json::Value,
}

impl CandidateRecord {
    /// Reads a lock description; `None` when it is not a candidate record.
    pub(crate) fn decode(description: &str) -> Option<CandidateRecord> {
        serde_json::from_str(description).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_is_bounded() {
        let options = ElectorOptions::new("node-a").metadata(serde_json::json!({"zone": "z"}));
        let lock = options.lock_options().unwrap();
        let record = CandidateRecord::decode(lock.description.as_deref().unwrap()).unwrap();
        assert_eq!(record.leader.id, "node-a");
        assert_eq!(record.leader.meta["zone"], "z");
        assert!(CandidateRecord::decode("compacting segment 42").is_none());

        let big = ElectorOptions::new("x".repeat(MAX_DESCRIPTION));
        let err = big.lock_options().unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::InvalidConfig);
    }
}
