//! How the lock machinery's outcomes map onto the metrics' terms (`crate::telemetry`), so
//! that the manager records them in one line.

use crate::lock::contend::Contended;
use crate::telemetry::WaitEnd;

impl From<&Contended> for WaitEnd {
    fn from(outcome: &Contended) -> Self {
        match outcome {
            Contended::Acquired(grant) => WaitEnd::Granted {
                waited: grant.waited,
            },
            // The caller timed out or went away, or the manager shut down, while it waited.
            Contended::Stopped => WaitEnd::Withdrawn,
            // A try's answer: it never waits, and records no wait.
            Contended::Busy(_) => WaitEnd::Failed,
            Contended::Failed(_) => WaitEnd::Failed,
        }
    }
}
