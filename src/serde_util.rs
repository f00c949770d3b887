//! JSON shapes for times and durations: whole milliseconds, which admin pages and scripts read
//! without a date library.

use std::time::{Duration, SystemTime};

use serde::Serializer;

pub(crate) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn unix_millis<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(crate::holder::unix_ms(*t))
}

pub(crate) fn opt_unix_millis<S: Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&crate::holder::unix_ms(*t)),
        None => s.serialize_none(),
    }
}
