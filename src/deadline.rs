//! Adding a caller's duration to the clock without overflow.
//!
//! Every duration a caller gives (a TTL, a timeout, a backoff, a resign's hold-off) may be as
//! large as `Duration::MAX`, and `Instant + Duration` panics when the sum does not fit, which on
//! an actor thread kills the manager. So no code in `src/` adds a caller's duration to an
//! `Instant` with `+`: it uses [`after`] or [`deadline_after`], which saturate at
//! [`FAR_FUTURE`] from the base, a point no process lives to see (as tokio's own timers do).

use std::time::Duration;

use tokio::time::Instant;

/// The furthest any deadline is set from its base: about 30 years. Longer means "never" to a
/// running process, and it fits every platform's monotonic clock.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `base + d`, saturating at `base + FAR_FUTURE`.
pub(crate) fn after(base: Instant, d: Duration) -> Instant {
    let d = d.min(FAR_FUTURE);
    // `base + 30 years` only fails on a clock already near its end; then `base` itself is the
    // furthest point there is.
    base.checked_add(d).unwrap_or(base)
}

/// `now + d`, saturating: the deadline of a wait of `d` that starts now.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    after(Instant::now(), d)
}

/// A lease deadline: `sent_at + ttl - margin`, saturating, and never before `sent_at`.
pub(crate) fn lease_deadline(sent_at: Instant, ttl: Duration, margin: Duration) -> Instant {
    after(sent_at, ttl.saturating_sub(margin))
}

/// Durations from the edges and from anywhere: 0, 1 ns, `u64::MAX` seconds, `Duration::MAX`,
/// and random ones, for the property tests of every duration-taking method.
#[cfg(test)]
pub(crate) fn any_duration() -> impl proptest::strategy::Strategy<Value = Duration> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        Just(crate::limits::MAX_TTL),
        (0u64..100_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every value a config can be built with gives deadlines without overflow, and a
        /// value that cannot be used is a typed error, never a panic.
        #[test]
        fn any_config_durations_build_or_are_refused(
            ttl in any_duration(),
            retry in any_duration(),
            timeout in any_duration(),
            margin in any_duration(),
            skew in any_duration(),
            explicit_timeout in any::<bool>(),
        ) {
            let mut b = crate::Config::builder()
                .ttl(ttl)
                .retry_interval(retry)
                .lease_margin(margin)
                .max_clock_skew(skew);
            if explicit_timeout {
                b = b.request_timeout(timeout);
            }
            // Either a config or a `ConfigError`: the type says so, and it must not panic.
            if let Ok(c) = b.build() {
                prop_assert!(c.ttl() <= crate::limits::MAX_TTL);
                prop_assert!(c.max_clock_skew() <= crate::limits::MAX_CLOCK_SKEW);
                let now = Instant::now();
                let ttl = c.ttl();
                let deadline = lease_deadline(now, ttl, c.lease_margin(ttl));
                prop_assert!(deadline > now);
                prop_assert!(after(now, c.refresh_interval(ttl)) <= after(now, ttl));
                prop_assert!(deadline_after(c.retry_interval()) >= now);
            }
        }

        #[test]
        fn after_never_panics(d in any_duration(), base_offset in any_duration()) {
            let base = after(Instant::now(), base_offset);
            let t = after(base, d);
            prop_assert!(t >= base);
            prop_assert!(t <= base + FAR_FUTURE);
        }
    }

    #[test]
    fn extreme_durations_saturate() {
        let now = Instant::now();
        for d in [Duration::MAX, Duration::from_secs(u64::MAX), FAR_FUTURE * 2] {
            assert_eq!(after(now, d), now + FAR_FUTURE);
            assert!(deadline_after(d) >= now + FAR_FUTURE);
        }
        assert_eq!(after(now, Duration::ZERO), now);
        assert_eq!(
            after(now, Duration::from_nanos(1)),
            now + Duration::from_nanos(1)
        );
        assert_eq!(lease_deadline(now, Duration::MAX, Duration::MAX), now);
        assert_eq!(
            lease_deadline(now, Duration::from_secs(30), Duration::from_secs(2)),
            now + Duration::from_secs(28)
        );
    }
}
