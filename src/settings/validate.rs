//! Checking a config: [`ConfigBuilder::build`] and the rules it and the manager apply.

use std::time::Duration;

use crate::limits::{
    smallest_ttl_above, MAX_BUCKET_DESCRIPTION, MAX_CLOCK_DRIFT_PPM, MAX_CLOCK_SKEW,
    MAX_KEEP_ALIVE_FACTOR, MAX_TTL, MIN_REQUEST_TIMEOUT, MIN_RETRY_INTERVAL,
};

use super::{Config, ConfigBuilder, JetStreamApi, DEFAULT_REQUEST_TIMEOUT};
use crate::error::ConfigError;
use crate::key::validate_bucket;

impl ConfigBuilder {
    /// Checks every value and returns the config, or the first problem found.
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = nlock::Config::builder().ttl(Duration::from_millis(500)).build().unwrap_err();
    /// assert_eq!(err, nlock::ConfigError::TtlTooShort(Duration::from_millis(500)));
    /// ```
    ///
    /// # Errors
    /// The first [`ConfigError`] found, before anything is written: `BucketName` or
    /// `BucketNameTooLong`, `BucketDescriptionTooLong`, `TtlTooShort`, `TtlTooLong` or
    /// `TtlNotWholeSeconds`, `KeepAliveFactor`, `RetryInterval`, `Replicas`, `RequestTimeout`
    /// or `RequestTimeoutNotBelowTtl`, `JetStreamApi`, `ClockSkew`, `ClockDrift`,
    /// `LeaseMargin`.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut c = self.config;
        validate_bucket(&c.bucket)?;
        if c.description.len() > MAX_BUCKET_DESCRIPTION {
            return Err(ConfigError::BucketDescriptionTooLong(c.description.len()));
        }
        validate_ttl(c.ttl)?;
        if !(2..=MAX_KEEP_ALIVE_FACTOR).contains(&c.keep_alive_factor) {
            return Err(ConfigError::KeepAliveFactor(c.keep_alive_factor));
        }
        if c.retry_interval < MIN_RETRY_INTERVAL {
            return Err(ConfigError::RetryInterval(c.retry_interval));
        }
        if !(1..=5).contains(&c.replicas) {
            return Err(ConfigError::Replicas(c.replicas));
        }
        c.request_timeout = match self.request_timeout {
            None => DEFAULT_REQUEST_TIMEOUT.min(c.ttl / 2),
            Some(t) if t < MIN_REQUEST_TIMEOUT => return Err(ConfigError::RequestTimeout(t)),
            Some(t) if t >= c.ttl => {
                return Err(ConfigError::RequestTimeoutNotBelowTtl {
                    request_timeout: t,
                    ttl: c.ttl,
                    smallest_ttl: smallest_ttl_above(t),
                })
            }
            Some(t) => t,
        };
        if let Some(api) = &c.jetstream_api {
            validate_jetstream_api(api)?;
        }
        if c.max_clock_skew > MAX_CLOCK_SKEW {
            return Err(ConfigError::ClockSkew(c.max_clock_skew));
        }
        if c.max_clock_drift_ppm > MAX_CLOCK_DRIFT_PPM {
            return Err(ConfigError::ClockDrift(c.max_clock_drift_ppm));
        }
        if let Some(m) = c.lease_margin {
            if m >= c.ttl / 2 {
                return Err(ConfigError::LeaseMargin(m));
            }
        }
        Ok(c)
    }
}

/// A domain is one subject token; a prefix is a subject of such tokens. Neither may hold a
/// wildcard or whitespace, or the API subjects built from them would not be valid.
fn validate_jetstream_api(api: &JetStreamApi) -> Result<(), ConfigError> {
    let token_ok = |t: &str| {
        !t.is_empty()
            && !t
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '*' | '>' | '.'))
    };
    let ok = match api {
        JetStreamApi::Domain(d) => token_ok(d),
        JetStreamApi::Prefix(p) => p.split('.').all(token_ok),
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigError::JetStreamApi(api.clone()))
    }
}

/// A TTL is whole seconds, at least 1 s and at most [`MAX_TTL`]: the server takes `Nats-TTL`
/// and limit-marker TTLs in whole seconds, `max_age` below a second would expire a lock between
/// refreshes, and `max_age` is signed 64-bit nanoseconds on the server.
pub(crate) fn validate_ttl(ttl: Duration) -> Result<(), ConfigError> {
    if ttl < Duration::from_secs(1) {
        return Err(ConfigError::TtlTooShort(ttl));
    }
    if ttl > MAX_TTL {
        return Err(ConfigError::TtlTooLong(ttl));
    }
    if ttl.subsec_nanos() != 0 {
        return Err(ConfigError::TtlNotWholeSeconds(ttl));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_BUCKET_LEN;

    #[test]
    fn the_takeover_waits_the_ttl_stretched_for_drift_on_both_clocks() {
        let ttl = Duration::from_secs(3);
        let c = Config::builder().build().unwrap();
        // 3 s * 1.001 / 0.999 = 3006.006 ms, rounded up, plus 1 ms.
        assert_eq!(c.takeover_after(ttl), Some(Duration::from_millis(3008)));
        let exact = Config::builder().max_clock_drift_ppm(0).build().unwrap();
        assert_eq!(exact.takeover_after(ttl), Some(Duration::from_millis(3001)));
        let off = Config::builder().takeover(false).build().unwrap();
        assert_eq!(off.takeover_after(ttl), None);
        assert_eq!(
            c.takeover_after(Duration::ZERO),
            None,
            "keys that never expire"
        );
        let most = Config::builder()
            .max_clock_drift_ppm(MAX_CLOCK_DRIFT_PPM)
            .build()
            .unwrap();
        assert!(most.takeover_after(crate::limits::MAX_TTL).is_some());
        assert_eq!(
            Config::builder()
                .max_clock_drift_ppm(MAX_CLOCK_DRIFT_PPM + 1)
                .build(),
            Err(ConfigError::ClockDrift(MAX_CLOCK_DRIFT_PPM + 1))
        );
    }

    #[test]
    fn each_bad_value_is_its_own_error() {
        let b = Config::builder;
        let ms = Duration::from_millis;
        assert_eq!(b().ttl(ms(0)).build(), Err(ConfigError::TtlTooShort(ms(0))));
        assert_eq!(
            b().ttl(ms(500)).build(),
            Err(ConfigError::TtlTooShort(ms(500)))
        );
        for huge in [
            Duration::from_secs(u64::MAX),
            Duration::MAX,
            MAX_TTL + ms(1000),
        ] {
            assert_eq!(b().ttl(huge).build(), Err(ConfigError::TtlTooLong(huge)));
        }
        assert_eq!(b().ttl(MAX_TTL).build().map(|c| c.ttl()), Ok(MAX_TTL));
        assert_eq!(
            b().ttl(ms(1500)).build(),
            Err(ConfigError::TtlNotWholeSeconds(ms(1500)))
        );
        assert_eq!(
            b().keep_alive_factor(1).build(),
            Err(ConfigError::KeepAliveFactor(1))
        );
        assert_eq!(b().replicas(0).build(), Err(ConfigError::Replicas(0)));
        assert_eq!(b().replicas(6).build(), Err(ConfigError::Replicas(6)));
        assert_eq!(
            b().retry_interval(ms(0)).build(),
            Err(ConfigError::RetryInterval(ms(0)))
        );
        assert_eq!(
            b().retry_interval(ms(9)).build(),
            Err(ConfigError::RetryInterval(ms(9)))
        );
        assert!(b().retry_interval(MIN_RETRY_INTERVAL).build().is_ok());
        for skew in [MAX_CLOCK_SKEW + ms(1), Duration::MAX] {
            assert_eq!(
                b().max_clock_skew(skew).build(),
                Err(ConfigError::ClockSkew(skew))
            );
        }
        assert!(b().max_clock_skew(MAX_CLOCK_SKEW).build().is_ok());
        assert!(b().max_clock_skew(Duration::ZERO).build().is_ok());
        assert_eq!(
            b().bucket("a.b").build(),
            Err(ConfigError::BucketName("a.b".into()))
        );
        assert_eq!(
            b().request_timeout(ms(0)).build(),
            Err(ConfigError::RequestTimeout(ms(0)))
        );
        assert_eq!(
            b().lease_margin(Duration::from_secs(15)).build(),
            Err(ConfigError::LeaseMargin(Duration::from_secs(15)))
        );
    }

    #[test]
    fn keep_alive_factor_is_bounded_above() {
        let b = Config::builder;
        assert!(b().keep_alive_factor(MAX_KEEP_ALIVE_FACTOR).build().is_ok());
        for f in [MAX_KEEP_ALIVE_FACTOR + 1, 1_000_000] {
            assert_eq!(
                b().keep_alive_factor(f).build(),
                Err(ConfigError::KeepAliveFactor(f))
            );
        }
    }

    #[test]
    fn request_timeout_is_bounded_below() {
        let ms = Duration::from_millis;
        let b = || Config::builder();
        assert_eq!(
            b().request_timeout(ms(9)).build(),
            Err(ConfigError::RequestTimeout(ms(9)))
        );
        let c = b().request_timeout(MIN_REQUEST_TIMEOUT).build().unwrap();
        assert_eq!(c.request_timeout(), MIN_REQUEST_TIMEOUT);
    }

    #[test]
    fn the_default_request_timeout_fits_every_ttl() {
        let s = Duration::from_secs;
        for (ttl, want) in [
            (s(1), Duration::from_millis(500)),
            (s(3), Duration::from_millis(1500)),
            (s(4), s(2)),
            (s(30), s(2)),
        ] {
            let c = Config::builder().ttl(ttl).build().unwrap();
            assert_eq!(c.request_timeout(), want, "ttl {ttl:?}");
        }
        // Set explicitly, it is kept as set.
        let c = Config::builder()
            .ttl(s(1))
            .request_timeout(Duration::from_millis(900))
            .build()
            .unwrap();
        assert_eq!(c.request_timeout(), Duration::from_millis(900));
    }

    #[test]
    fn a_ttl_the_request_timeout_does_not_fit_names_one_that_does() {
        let s = Duration::from_secs;
        let cases = [
            (s(2), s(2), s(3)),
            (s(5), s(1), s(6)),
            (Duration::from_millis(2500), s(2), s(3)),
        ];
        for (timeout, ttl, smallest_ttl) in cases {
            let err = Config::builder()
                .ttl(ttl)
                .request_timeout(timeout)
                .build()
                .unwrap_err();
            assert_eq!(
                err,
                ConfigError::RequestTimeoutNotBelowTtl {
                    request_timeout: timeout,
                    ttl,
                    smallest_ttl
                }
            );
            assert!(
                err.to_string()
                    .contains(&format!("at least {smallest_ttl:?}")),
                "{err}"
            );
            let fixed = Config::builder().ttl(smallest_ttl).request_timeout(timeout);
            assert!(fixed.build().is_ok(), "{smallest_ttl:?} fits {timeout:?}");
        }
        // The per-lock TTL check names the same TTL.
        let err = ConfigError::LockTtlNotAboveRequestTimeout {
            ttl: s(2),
            request_timeout: s(2),
        };
        assert!(err.to_string().contains("at least 3s"), "{err}");
    }

    #[test]
    fn descriptions_fit_the_servers_limit() {
        let b = Config::builder;
        let d = |n| "d".repeat(n);
        assert!(b().description(d(MAX_BUCKET_DESCRIPTION)).build().is_ok());
        for n in [MAX_BUCKET_DESCRIPTION + 1, 1 << 20] {
            assert_eq!(
                b().description(d(n)).build(),
                Err(ConfigError::BucketDescriptionTooLong(n))
            );
        }
    }

    #[test]
    fn bucket_names_fit_a_stream_name() {
        let b = Config::builder;
        assert!(b().bucket("b".repeat(MAX_BUCKET_LEN)).build().is_ok());
        assert_eq!(
            b().bucket("b".repeat(253)).build(),
            Err(ConfigError::BucketNameTooLong(253))
        );
    }

    #[test]
    fn jetstream_domain_and_prefix_are_subjects() {
        let b = Config::builder;
        let c = b().jetstream_api_prefix("$JS.hub.API").build().unwrap();
        assert_eq!(
            c.jetstream_api(),
            Some(&JetStreamApi::Prefix("$JS.hub.API".into()))
        );
        let bad = [
            JetStreamApi::Domain(String::new()),
            JetStreamApi::Domain("a.b".into()),
            JetStreamApi::Domain("a b".into()),
            JetStreamApi::Prefix("$JS.*.API".into()),
            JetStreamApi::Prefix("$JS..API".into()),
            JetStreamApi::Prefix(">".into()),
        ];
        for api in bad {
            let builder = match &api {
                JetStreamApi::Domain(d) => b().jetstream_domain(d.clone()),
                JetStreamApi::Prefix(p) => b().jetstream_api_prefix(p.clone()),
            };
            assert_eq!(builder.build(), Err(ConfigError::JetStreamApi(api)));
        }
    }
}
