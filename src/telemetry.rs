//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`, on by
//! default): every name, label and recording of nlock is here; the rest of the crate makes
//! one-line calls on a bucket's `Meter`. The application chooses the exporter (Prometheus,
//! StatsD, ...) by installing a `metrics` recorder, before it starts a [`LockManager`]: a
//! manager registers its bucket's series with the recorder installed when it opens the
//! bucket (so that a recording is one atomic operation on a handle, with no label built), and
//! a recorder installed later sees nothing of it. With none installed the handles do nothing.
//! Without the feature every method is empty.
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

use std::sync::Arc;
use std::time::Instant;

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
    LOSS_REASONS[loss_index(reason)]
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
    Wait = 0,
    Try = 1,
}

/// How an acquire ended, as the `outcome` label of [`ACQUIRE_DURATION`].
#[cfg(feature = "metrics")]
const ACQUIRE_OUTCOMES: [&str; 4] = ["granted", "busy", "timeout", "error"];
/// The `outcome` label of [`WAIT_DURATION`].
#[cfg(feature = "metrics")]
const WAIT_OUTCOMES: [&str; 3] = ["granted", "withdrawn", "error"];
/// The `reason` label of [`LOSSES`], in [`loss_index`]'s order.
const LOSS_REASONS: [&str; 5] = [
    "deleted",
    "taken",
    "expired",
    "shutdown",
    "release_unconfirmed",
];

fn loss_index(reason: &LossReason) -> usize {
    match reason {
        LossReason::Deleted => 0,
        LossReason::Taken { .. } => 1,
        LossReason::Expired => 2,
        LossReason::Shutdown => 3,
        LossReason::ReleaseUnconfirmed => 4,
    }
}

/// One bucket's metrics, registered once with the recorder installed when the bucket is
/// opened (so a recording is an atomic operation on a handle: no label is built, no series
/// looked up; with no recorder the handles do nothing). Shared by the bucket's `Store`.
pub(crate) struct Meter {
    bucket: String,
    #[cfg(feature = "metrics")]
    h: Handles,
}

#[cfg(feature = "metrics")]
struct Handles {
    /// By verb, then outcome (`ACQUIRE_OUTCOMES`).
    acquire: [[metrics::Histogram; 4]; 2],
    wait: [metrics::Histogram; 3],
    grants: metrics::Counter,
    busy: metrics::Counter,
    timeouts: metrics::Counter,
    handoffs: metrics::Counter,
    refreshes: metrics::Counter,
    refresh_failures: metrics::Counter,
    losses: [metrics::Counter; 5],
    /// A put, a delete.
    unknown: [metrics::Counter; 2],
    held: metrics::Gauge,
    waiters: metrics::Gauge,
    consumers: metrics::Gauge,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("bucket", &self.bucket)
            .finish()
    }
}

impl Meter {
    /// Registers `bucket`'s metrics with the recorder installed now.
    pub(crate) fn new(bucket: &str) -> Self {
        Meter {
            bucket: bucket.to_owned(),
            #[cfg(feature = "metrics")]
            h: Handles::new(bucket),
        }
    }

    /// An acquire or try began at `started` and ended with `result`.
    pub(crate) fn acquired<T>(&self, verb: Verb, started: Instant, result: &Result<T, LockError>) {
        let outcome = match result {
            Ok(_) => 0,
            Err(LockError::Busy { .. } | LockError::RestartGrace { .. }) => 1,
            Err(LockError::AcquireTimedOut { .. }) => 2,
            Err(_) => 3,
        };
        #[cfg(feature = "metrics")]
        {
            match outcome {
                1 => self.h.busy.increment(1),
                2 => self.h.timeouts.increment(1),
                _ => {}
            }
            self.h.acquire[verb as usize][outcome].record(started.elapsed());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (verb, started, outcome);
    }

    /// A tenure began here: a grant, and one more lock held.
    pub(crate) fn tenure_began(&self) {
        #[cfg(feature = "metrics")]
        {
            self.h.grants.increment(1);
            self.h.held.increment(1.0);
        }
    }

    /// A tenure's lock actor stopped: one lock fewer held.
    pub(crate) fn tenure_ended(&self) {
        #[cfg(feature = "metrics")]
        self.h.held.decrement(1.0);
    }

    /// A refresh was confirmed.
    pub(crate) fn refreshed(&self) {
        #[cfg(feature = "metrics")]
        self.h.refreshes.increment(1);
    }

    /// A refresh attempt got no confirmation and is retried.
    pub(crate) fn refresh_failed(&self) {
        #[cfg(feature = "metrics")]
        self.h.refresh_failures.increment(1);
    }

    /// A tenure ended lost (told once per tenure).
    pub(crate) fn lost(&self, reason: &LossReason) {
        #[cfg(feature = "metrics")]
        self.h.losses[loss_index(reason)].increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = loss_index(reason);
    }

    /// A lock write (a put, or a `delete`) got no answer: its outcome is unknown.
    pub(crate) fn unknown_outcome(&self, delete: bool) {
        #[cfg(feature = "metrics")]
        self.h.unknown[usize::from(delete)].increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = delete;
    }

    /// A consumer on the bucket was opened (`true`) or deleted.
    pub(crate) fn consumer(&self, opened: bool) {
        #[cfg(feature = "metrics")]
        match opened {
            true => self.h.consumers.increment(1.0),
            false => self.h.consumers.decrement(1.0),
        }
        #[cfg(not(feature = "metrics"))]
        let _ = opened;
    }

    /// An elector of `election` started (`true`: a term began) or stopped leading. Rare, and
    /// labelled by election: registered at each call.
    pub(crate) fn leadership(&self, election: &str, leads: bool) {
        #[cfg(feature = "metrics")]
        {
            let labels = labels(&self.bucket, &[("election", election)]);
            if leads {
                metrics::counter!(LEADER_TERMS, labels.clone()).increment(1);
            }
            metrics::counter!(LEADERSHIP_CHANGES, labels).increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (election, leads);
    }
}

#[cfg(feature = "metrics")]
impl Handles {
    fn new(bucket: &str) -> Self {
        use metrics::{counter, gauge, histogram};
        let c = |name: &'static str| counter!(name, labels(bucket, &[]));
        let acquire = |verb: &'static str| {
            ACQUIRE_OUTCOMES.map(|o| {
                histogram!(
                    ACQUIRE_DURATION,
                    labels(bucket, &[("mode", verb), ("outcome", o)])
                )
            })
        };
        Handles {
            acquire: [acquire("wait"), acquire("try")],
            wait: WAIT_OUTCOMES
                .map(|o| histogram!(WAIT_DURATION, labels(bucket, &[("outcome", o)]))),
            grants: c(GRANTS),
            busy: c(BUSY),
            timeouts: c(ACQUIRE_TIMEOUTS),
            handoffs: c(HANDOFFS),
            refreshes: c(REFRESHES),
            refresh_failures: c(REFRESH_FAILURES),
            losses: LOSS_REASONS.map(|r| counter!(LOSSES, labels(bucket, &[("reason", r)]))),
            unknown: ["write", "delete"]
                .map(|op| counter!(UNKNOWN_OUTCOMES, labels(bucket, &[("op", op)]))),
            held: gauge!(LOCKS_HELD, labels(bucket, &[])),
            waiters: gauge!(WAITERS, labels(bucket, &[])),
            consumers: gauge!(CONSUMERS_OPEN, labels(bucket, &[])),
        }
    }
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
    /// `None` for a `try_acquire()`, which never waits: nothing is recorded for it.
    meter: Option<Arc<Meter>>,
    since: Instant,
    /// Queued behind another request of this process when it arrived.
    behind: bool,
    ended: bool,
}

impl Waiting {
    /// A request arrived: `waits` is `None` for a `try_acquire()`, else whether another
    /// request of this process was ahead of it.
    pub(crate) fn new(meter: &Arc<Meter>, waits: Option<bool>) -> Self {
        let meter = waits.map(|_| meter.clone());
        #[cfg(feature = "metrics")]
        if let Some(m) = &meter {
            m.h.waiters.increment(1.0);
        }
        Waiting {
            meter,
            since: Instant::now(),
            behind: waits == Some(true),
            ended: false,
        }
    }

    /// The request ended as `end` says.
    pub(crate) fn end(&mut self, end: WaitEnd) {
        if self.meter.is_none() {
            return;
        }
        self.ended = true;
        let outcome = match end {
            WaitEnd::Granted { waited } if waited || self.behind => 0,
            // Granted at once: no wait to record.
            WaitEnd::Granted { .. } => return,
            WaitEnd::Withdrawn => 1,
            WaitEnd::Failed => 2,
        };
        self.record(outcome);
    }

    /// Records the wait with `WAIT_OUTCOMES[outcome]` (a grant is a handoff too).
    fn record(&self, outcome: usize) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.meter {
            if outcome == 0 {
                m.h.handoffs.increment(1);
            }
            m.h.wait[outcome].record(self.since.elapsed());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome, self.since);
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.ended && self.behind {
            self.record(1);
        }
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.meter {
            m.h.waiters.decrement(1.0);
        }
    }
}

/// The labels of one series: `bucket` first, then `extra`.
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
