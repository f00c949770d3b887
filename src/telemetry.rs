//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`, on by
//! default): every name, label and recording of nlock is here; the rest of the crate calls
//! the one-line functions below. The application chooses the exporter (Prometheus, StatsD,
//! ...) by installing a `metrics` recorder, before it starts a [`LockManager`]; with none
//! installed a recording only finds that out. Without the feature every function is empty.
//!
//! Every metric has the label `bucket` (the lock bucket's name); the names follow the
//! Prometheus conventions (`_total` for counters, `_seconds` for durations). README.md,
//! "Metrics", lists them with their meaning.
//!
//! ```no_run
//! // At start, before the LockManager: e.g. metrics-exporter-prometheus's recorder.
//! # fn install_a_recorder() {}
//! install_a_recorder();
//! nlock::telemetry::describe(); // HELP texts and units, for exporters that show them
//! ```
//!
//! A leaf: it imports nothing of nlock but the error types (`LockError`, `LossReason`).
//!
//! [`LockManager`]: crate::LockManager

use std::time::{Duration, Instant};

use crate::error::{LockError, LossReason};

/// Histogram: how long `acquire()` and `try_acquire()` took, by `mode` (`wait`, `try`) and
/// `outcome` (`granted`, `busy`, `timeout`, `error`).
pub const ACQUIRE_DURATION: &str = "nlock_acquire_duration_seconds";
/// Histogram: how long an `acquire()` that had to wait (behind a request of this process or
/// a holder) waited, by `outcome` (`granted`, `withdrawn`, `error`).
pub const WAIT_DURATION: &str = "nlock_wait_duration_seconds";
/// Counter: tenures begun in this process (locks granted, electors' terms included).
pub const GRANTS: &str = "nlock_grants_total";
/// Counter: `try_acquire()` answered `Busy` (held, or in the restart grace).
pub const BUSY: &str = "nlock_busy_total";
/// Counter: `acquire()` answered `AcquireTimedOut`.
pub const ACQUIRE_TIMEOUTS: &str = "nlock_acquire_timeouts_total";
/// Counter: grants to an `acquire()` that had waited: the key passed from another tenure
/// (of this process or another) to this request.
pub const HANDOFFS: &str = "nlock_handoffs_total";
/// Counter: refreshes of a held lock that the server confirmed.
pub const REFRESHES: &str = "nlock_refreshes_total";
/// Counter: refresh attempts without a confirmation (no answer, unavailable), retried until
/// the lease deadline decides.
pub const REFRESH_FAILURES: &str = "nlock_refresh_failures_total";
/// Counter: tenures that ended lost, by `reason` ([`loss_reason`]).
pub const LOSSES: &str = "nlock_losses_total";
/// Counter: lock writes whose outcome was unknown (no answer), by `op` (`write`, `delete`).
pub const UNKNOWN_OUTCOMES: &str = "nlock_unknown_outcomes_total";
/// Gauge: locks held in this process (from the grant until the tenure's end).
pub const LOCKS_HELD: &str = "nlock_locks_held";
/// Gauge: `acquire()` requests of this process not answered yet (queued or contending).
pub const WAITERS: &str = "nlock_waiters";
/// Gauge: JetStream consumers nlock has open on the bucket (change streams).
pub const CONSUMERS_OPEN: &str = "nlock_consumers_open";
/// Counter: terms begun by this process's electors, by `election` (the election's key).
pub const LEADER_TERMS: &str = "nlock_leader_terms_total";
/// Counter: this process's electors starting or stopping to lead, by `election`.
pub const LEADERSHIP_CHANGES: &str = "nlock_leadership_changes_total";

/// The `reason` label of [`LOSSES`]: the variant's name in snake case.
pub fn loss_reason(reason: &LossReason) -> &'static str {
    match reason {
        LossReason::Deleted => "deleted",
        LossReason::Taken { .. } => "taken",
        LossReason::Expired => "expired",
        LossReason::Shutdown => "shutdown",
        LossReason::ReleaseUnconfirmed => "release_unconfirmed",
    }
}

/// Registers each metric's unit and description with the installed recorder (Prometheus's
/// `# HELP` lines). Call it after installing the recorder; without one it does nothing.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_histogram!(
            ACQUIRE_DURATION,
            Unit::Seconds,
            "Time acquire/try_acquire took"
        );
        describe_histogram!(
            WAIT_DURATION,
            Unit::Seconds,
            "Time an acquire waited for a key"
        );
        describe_counter!(GRANTS, "Tenures begun (locks granted)");
        describe_counter!(BUSY, "try_acquire answered Busy");
        describe_counter!(ACQUIRE_TIMEOUTS, "acquire answered AcquireTimedOut");
        describe_counter!(HANDOFFS, "Grants to an acquire that had waited");
        describe_counter!(REFRESHES, "Confirmed refreshes of held locks");
        describe_counter!(REFRESH_FAILURES, "Refresh attempts without a confirmation");
        describe_counter!(LOSSES, "Tenures ended lost, by reason");
        describe_counter!(UNKNOWN_OUTCOMES, "Lock writes whose outcome was unknown");
        describe_gauge!(LOCKS_HELD, "Locks held in this process");
        describe_gauge!(WAITERS, "acquire requests not answered yet");
        describe_gauge!(CONSUMERS_OPEN, "JetStream consumers open on the bucket");
        describe_counter!(LEADER_TERMS, "Terms begun by this process's electors");
        describe_counter!(LEADERSHIP_CHANGES, "Electors starting or stopping to lead");
    }
}

/// Which verb an acquire was.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verb {
    Wait,
    Try,
}

/// An acquire or try began at `started` and ended with `result`.
pub(crate) fn acquired<T>(
    bucket: &str,
    verb: Verb,
    started: Instant,
    result: &Result<T, LockError>,
) {
    let outcome = match result {
        Ok(_) => "granted",
        Err(LockError::Busy { .. } | LockError::RestartGrace { .. }) => {
            count(BUSY, bucket, &[]);
            "busy"
        }
        Err(LockError::AcquireTimedOut { .. }) => {
            count(ACQUIRE_TIMEOUTS, bucket, &[]);
            "timeout"
        }
        Err(_) => "error",
    };
    let mode = match verb {
        Verb::Wait => "wait",
        Verb::Try => "try",
    };
    let labels = [("mode", mode), ("outcome", outcome)];
    observe(ACQUIRE_DURATION, bucket, &labels, started.elapsed());
}

/// A tenure began here: a grant, and one more lock held.
pub(crate) fn tenure_began(bucket: &str) {
    count(GRANTS, bucket, &[]);
    add(LOCKS_HELD, bucket, &[], 1.0);
}

/// A tenure's lock actor stopped: one lock fewer held.
pub(crate) fn tenure_ended(bucket: &str) {
    add(LOCKS_HELD, bucket, &[], -1.0);
}

/// A refresh was confirmed.
pub(crate) fn refreshed(bucket: &str) {
    count(REFRESHES, bucket, &[]);
}

/// A refresh attempt got no confirmation and is retried.
pub(crate) fn refresh_failed(bucket: &str) {
    count(REFRESH_FAILURES, bucket, &[]);
}

/// A tenure ended lost (told once per tenure).
pub(crate) fn lost(bucket: &str, reason: &LossReason) {
    count(LOSSES, bucket, &[("reason", loss_reason(reason))]);
}

/// A lock write (`"write"`, `"delete"`) got no answer: its outcome is unknown.
pub(crate) fn unknown_outcome(bucket: &str, op: &'static str) {
    count(UNKNOWN_OUTCOMES, bucket, &[("op", op)]);
}

/// A consumer on `bucket` was opened (+1) or deleted (-1).
pub(crate) fn consumers(bucket: &str, delta: f64) {
    add(CONSUMERS_OPEN, bucket, &[], delta);
}

/// An elector of `election` began a term (`began`), or started or stopped leading.
pub(crate) fn leadership(bucket: &str, election: &str, began: bool) {
    if began {
        count(LEADER_TERMS, bucket, &[("election", election)]);
    }
    count(LEADERSHIP_CHANGES, bucket, &[("election", election)]);
}

/// How a waiting request ended, as its manager saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// Granted; `waited`: its contender waited for another tenure's end first.
    Granted { waited: bool },
    /// Its caller went away (timed out, dropped) or the manager shut down, while it waited.
    Withdrawn,
    /// It failed.
    Failed,
}

/// One `acquire()` at the manager: counted in [`WAITERS`] while it lives, and when it ends,
/// its wait in [`WAIT_DURATION`] (and a grant after a wait in [`HANDOFFS`]). Dropped with
/// the request; one that ends without [`Waiting::end`] (withdrawn while queued) counts as
/// withdrawn.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// Empty for a `try_acquire()`, which never waits: nothing is recorded for it.
    bucket: Option<String>,
    since: Instant,
    /// Queued behind another request of this process when it arrived.
    behind: bool,
    ended: bool,
}

impl Waiting {
    /// A request for `bucket` arrived: `waits` is `None` for a `try_acquire()`, else whether
    /// another request of this process was ahead of it.
    pub(crate) fn new(bucket: &str, waits: Option<bool>) -> Self {
        let bucket = waits.map(|_| bucket.to_owned());
        if let Some(b) = &bucket {
            add(WAITERS, b, &[], 1.0);
        }
        Waiting {
            bucket,
            since: Instant::now(),
            behind: waits == Some(true),
            ended: false,
        }
    }

    /// The request ended as `end` says.
    pub(crate) fn end(&mut self, end: WaitEnd) {
        let Some(bucket) = self.bucket.as_deref() else {
            return;
        };
        self.ended = true;
        let outcome = match end {
            WaitEnd::Granted { waited } if waited || self.behind => {
                count(HANDOFFS, bucket, &[]);
                "granted"
            }
            // Granted at once: no wait to record.
            WaitEnd::Granted { .. } => return,
            WaitEnd::Withdrawn => "withdrawn",
            WaitEnd::Failed => "error",
        };
        observe(
            WAIT_DURATION,
            bucket,
            &[("outcome", outcome)],
            self.since.elapsed(),
        );
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(bucket) = self.bucket.take() {
            add(WAITERS, &bucket, &[], -1.0);
            if !self.ended && self.behind {
                let labels = [("outcome", "withdrawn")];
                observe(WAIT_DURATION, &bucket, &labels, self.since.elapsed());
            }
        }
    }
}

/// The labels of one recording: `bucket` first, then `extra`.
#[cfg(feature = "metrics")]
fn labels(bucket: &str, extra: &[(&'static str, &str)]) -> Vec<metrics::Label> {
    let mut labels = Vec::with_capacity(1 + extra.len());
    labels.push(metrics::Label::new("bucket", bucket.to_owned()));
    labels.extend(
        extra
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, (*v).to_owned())),
    );
    labels
}

fn count(name: &'static str, bucket: &str, extra: &[(&'static str, &str)]) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name, labels(bucket, extra)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, bucket, extra);
}

fn add(name: &'static str, bucket: &str, extra: &[(&'static str, &str)], delta: f64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(name, labels(bucket, extra)).increment(delta);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, bucket, extra, delta);
}

fn observe(name: &'static str, bucket: &str, extra: &[(&'static str, &str)], took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(name, labels(bucket, extra)).record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (name, bucket, extra, took);
}
