//! The crash-loop back-off of `nlock elect`, as Kubernetes' CrashLoopBackOff: a command that
//! exits quickly is not re-run at once but after a delay that doubles with each quick exit in
//! a row, up to a cap; a run that lasted long enough starts the count afresh.

use std::time::Duration;

/// A run shorter than this counts as a quick exit.
pub(super) const QUICK_EXIT: Duration = Duration::from_secs(10);
/// The delay after the first quick exit.
pub(super) const FIRST: Duration = Duration::from_secs(1);
/// The longest delay.
pub(super) const CAP: Duration = Duration::from_secs(60);

/// The quick exits in a row so far, and so the next delay.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    /// The delay after the last quick exit (zero: none yet, or a long run since).
    last: Duration,
}

impl Backoff {
    /// Records a run that lasted `ran_for` and returns how long to stand aside before
    /// campaigning again: zero after a long run, else the next doubling delay.
    pub(super) fn after_run(&mut self, ran_for: Duration) -> Duration {
        self.last = if ran_for >= QUICK_EXIT {
            Duration::ZERO
        } else if self.last.is_zero() {
            FIRST
        } else {
            self.last.saturating_mul(2).min(CAP)
        };
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_exits_double_the_delay_up_to_the_cap_and_a_long_run_resets_it() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u64> = (0..9).map(|_| b.after_run(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.after_run(QUICK_EXIT), Duration::ZERO);
        assert_eq!(b.after_run(quick), FIRST);
    }
}
