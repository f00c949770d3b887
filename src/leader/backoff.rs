//! The wait between campaigns: a backoff that doubles with each failure, capped, with
//! jitter so that candidates do not retry in step.

use std::time::Duration;

use super::options::ElectorOptions;

/// `failures` doublings of the first backoff, capped at the longest, plus `jitter` (0 to 0.5)
/// of it again. Saturating: a caller's backoff may be as large as `Duration::MAX`.
pub(crate) fn jittered_backoff(options: &ElectorOptions, failures: u32, jitter: f64) -> Duration {
    let base = options
        .backoff
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(options.max_backoff);
    base.saturating_add(base.mul_f64(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::{any_duration, deadline_after};
    use proptest::prelude::*;
    use tokio::time::Instant;

    proptest! {
        /// Any backoff a caller can set, after any number of failures, is a wait without
        /// overflow: at most the longest backoff and half of it again.
        #[test]
        fn any_backoff_is_a_wait(
            first in any_duration(),
            max in any_duration(),
            failures in any::<u32>(),
            jitter in 0.0f64..0.5,
        ) {
            let options = ElectorOptions::new("c").backoff(first, max);
            let wait = jittered_backoff(&options, failures, jitter);
            let cap = options.max_backoff.saturating_add(options.max_backoff / 2);
            prop_assert!(wait <= cap);
            let now = Instant::now();
            prop_assert!(deadline_after(wait) >= now);
        }
    }
}
