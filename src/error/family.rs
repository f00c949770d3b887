//! Errors per family of operations, the async-nats way: one generic [`Error`] whose kind enum
//! lists only what occurs in its family ([`AcquireErrorKind`] for acquiring,
//! [`ReleaseErrorKind`] for releasing and refreshing, [`ConnectErrorKind`] for connecting,
//! [`ObserveErrorKind`] for reading the bucket), so a caller can match exhaustively on what
//! can happen where it stands. Each converts into [`LockError`] with `?`, keeping every detail.
//!
//! A timeout stays a timeout in every family: [`OutcomeUnknown`](AcquireErrorKind::OutcomeUnknown)
//! is never folded into another kind.

use super::{ErrorKind, LockError};

/// An error of one family of operations, with a kind `K` that lists what occurs there. The
/// whole [`LockError`] is kept: [`lock_error`](Error::lock_error) reads its details (the
/// holder of a busy lock, the reason of a loss), and `?` turns it back into a `LockError`.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) {
/// use nlock::AcquireErrorKind;
/// match m.try_acquire("jobs.nightly").await {
///     Ok(lock) => { /* ... */ }
///     Err(e) => match e.kind() {
///         AcquireErrorKind::Busy => println!("someone else runs it"),
///         AcquireErrorKind::OutcomeUnknown | AcquireErrorKind::Unavailable => eprintln!("retry: {e}"),
///         _ => eprintln!("{e}"),
///     },
/// }
/// # }
/// ```
pub struct Error<K> {
    kind: K,
    inner: LockError,
}

/// What [`acquire`](crate::LockManager::acquire), [`try_acquire`](crate::LockManager::try_acquire),
/// [`run_if_free`](crate::LockManager::run_if_free) and the verbs of
/// [`LockRequest`](crate::LockRequest) fail with.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) {
/// use std::time::Duration;
/// match m.acquire("jobs.nightly", Some(Duration::from_secs(1))).await {
///     Ok(lock) => { /* ... */ }
///     Err(e) if e.kind() == nlock::AcquireErrorKind::AcquireTimedOut => println!("still busy"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
pub type AcquireError = Error<AcquireErrorKind>;
/// What [`LockHandle::release`](crate::LockHandle::release), [`refresh`](crate::LockHandle::refresh),
/// [`state`](crate::LockHandle::state) and [`force_release`](crate::LockManager::force_release)
/// fail with.
///
/// ```no_run
/// # async fn f(lock: nlock::LockHandle) {
/// match lock.release().await {
///     Ok(()) => {}
///     Err(e) if e.kind() == nlock::ReleaseErrorKind::OutcomeUnknown => eprintln!("expires with its TTL"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
pub type ReleaseError = Error<ReleaseErrorKind>;
/// What [`LockManager::connect`](crate::LockManager::connect) and the other ways of starting a
/// manager fail with.
///
/// ```no_run
/// # async fn f() {
/// match nlock::LockManager::connect("nats://127.0.0.1:4222", nlock::Config::default()).await {
///     Ok(manager) => { /* ... */ }
///     Err(e) if e.kind() == nlock::ConnectErrorKind::JetStreamNotEnabled => eprintln!("enable JetStream"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
pub type ConnectError = Error<ConnectErrorKind>;
/// What the read-only views fail with: [`locks`](crate::LockManager::locks),
/// [`holders`](crate::LockManager::holders), [`events`](crate::LockManager::events),
/// [`restart_grace`](crate::LockManager::restart_grace), the leader views.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) {
/// match m.holders().await {
///     Ok(held) => println!("{} keys held", held.len()),
///     Err(e) if e.kind() == nlock::ObserveErrorKind::PermissionDenied => eprintln!("may not read"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
pub type ObserveError = Error<ObserveErrorKind>;

impl<K: Copy> Error<K> {
    /// The kind, for matching.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// use nlock::AcquireErrorKind;
    /// if let Err(e) = m.lock("jobs.nightly").try_acquire().await {
    ///     assert_ne!(e.kind(), AcquireErrorKind::AcquireTimedOut); // only a wait times out
    /// }
    /// # }
    /// ```
    pub fn kind(&self) -> K {
        self.kind
    }
}

impl<K> Error<K> {
    /// The whole error, with its details.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// if let Err(e) = m.try_acquire("jobs.nightly").await {
    ///     if let nlock::LockError::Busy { holder: Some(h), .. } = e.lock_error() {
    ///         println!("held by {} (pid {} on {})", h.owner, h.pid, h.host);
    ///     }
    /// }
    /// # }
    /// ```
    pub fn lock_error(&self) -> &LockError {
        &self.inner
    }

    /// The whole error, with its details.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// if let Err(e) = m.try_acquire("jobs.nightly").await {
    ///     let e: nlock::LockError = e.into_lock_error(); // the same as `e.into()`
    ///     eprintln!("{}: {e}", e.kind());
    /// }
    /// # }
    /// ```
    pub fn into_lock_error(self) -> LockError {
        self.inner
    }
}

impl<K: std::fmt::Debug> std::fmt::Debug for Error<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("error", &self.inner)
            .finish()
    }
}

impl<K> std::fmt::Display for Error<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<K: std::fmt::Debug> std::error::Error for Error<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.inner)
    }
}

impl<K> From<Error<K>> for LockError {
    fn from(e: Error<K>) -> LockError {
        e.inner
    }
}

/// Declares a family's kind enum, its names, and the conversion from a [`LockError`]: each
/// listed kind maps to itself; kinds the family's operations do not produce map to
/// `Unavailable` should they ever occur (never to `OutcomeUnknown`, which only a timeout is).
macro_rules! family {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $kind:ident,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $kind,)*
        }

        impl $name {
            /// The same stable snake_case name as [`ErrorKind::as_str`].
            ///
            /// ```
            #[doc = concat!("let kind = nlock::", stringify!($name), "::Unavailable;")]
            /// assert_eq!(kind.as_str(), "unavailable");
            /// assert_eq!(kind.as_str(), nlock::ErrorKind::from(kind).as_str());
            /// ```
            pub fn as_str(self) -> &'static str {
                ErrorKind::from(self).as_str()
            }
        }

        impl From<$name> for ErrorKind {
            fn from(kind: $name) -> ErrorKind {
                match kind {
                    $($name::$kind => ErrorKind::$kind,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<LockError> for Error<$name> {
            fn from(inner: LockError) -> Self {
                #[allow(unreachable_patterns)]
                let kind = match inner.kind() {
                    $(ErrorKind::$kind => $name::$kind,)*
                    _ => $name::Unavailable,
                };
                Error { kind, inner }
            }
        }
    };
}

family! {
    /// The kinds of an [`AcquireError`]. See the [`LockError`] variant of the same name.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// if let Err(e) = m.try_acquire("jobs.nightly").await {
    ///     match e.kind() {
    ///         nlock::AcquireErrorKind::Busy => println!("held elsewhere"),
    ///         nlock::AcquireErrorKind::OutcomeUnknown => eprintln!("may have been written: {e}"),
    ///         kind => eprintln!("{kind}: {e}"),
    ///     }
    /// }
    /// # }
    /// ```
    AcquireErrorKind {
        /// Waited the whole timeout without getting the lock.
        AcquireTimedOut,
        /// Held by someone else now, or the bucket is in its restart grace
        /// ([`LockError::Busy`], [`LockError::RestartGrace`]).
        Busy,
        /// The key is not a valid lock key.
        InvalidKey,
        /// An option of the request (its TTL, description, ...) was rejected.
        InvalidConfig,
        /// The server is too old for an option of the request (a per-lock TTL).
        Unsupported,
        /// NATS could not be reached or refused the request.
        Unavailable,
        /// A write timed out: it may or may not have taken effect (nlock cleans up after it).
        OutcomeUnknown,
        /// The server rejected the write for a reason retrying will not fix.
        Rejected,
        /// The work run under the lock panicked; the lock was released.
        TaskPanicked,
        /// The manager is no longer running.
        ManagerGone,
        /// This NATS user may not write the lock.
        PermissionDenied,
    }
}

family! {
    /// The kinds of a [`ReleaseError`]. See the [`LockError`] variant of the same name.
    ///
    /// ```no_run
    /// # async fn f(lock: nlock::LockHandle) {
    /// if let Err(e) = lock.release().await {
    ///     match e.kind() {
    ///         nlock::ReleaseErrorKind::Lost => eprintln!("already lost: {e}"),
    ///         kind => eprintln!("{kind}: {e}"),
    ///     }
    /// }
    /// # }
    /// ```
    ReleaseErrorKind {
        /// Not held: already released (or, for an operator's break, nobody holds the key).
        NotHeld,
        /// The lock was lost before this; [`LockError::Lost`] says why.
        Lost,
        /// The delete or refresh was not confirmed before the lease deadline: the key may be
        /// free or expire with its TTL.
        OutcomeUnknown,
        /// NATS could not be reached or refused the request.
        Unavailable,
        /// The server rejected the write for a reason retrying will not fix.
        Rejected,
        /// The manager or lock actor is no longer running.
        ManagerGone,
        /// This NATS user may not write the lock.
        PermissionDenied,
        /// An operator's break named a tenure that does not hold the key.
        TokenMismatch,
        /// An operator's break named an invalid key.
        InvalidKey,
    }
}

family! {
    /// The kinds of a [`ConnectError`]. See the [`LockError`] variant of the same name.
    ///
    /// ```no_run
    /// # async fn f() {
    /// if let Err(e) = nlock::LockManager::from_env(nlock::Config::default()).await {
    ///     match e.kind() {
    ///         nlock::ConnectErrorKind::InvalidConnectSetting => eprintln!("check NATS_*: {e}"),
    ///         kind => eprintln!("{kind}: {e}"),
    ///     }
    /// }
    /// # }
    /// ```
    ConnectErrorKind {
        /// A configuration value, or an existing bucket that does not match it.
        InvalidConfig,
        /// A connection setting (an environment variable, a URL) that cannot be used.
        InvalidConnectSetting,
        /// No server could be reached.
        Unavailable,
        /// A request timed out while the bucket was opened.
        OutcomeUnknown,
        /// The server has no JetStream, or not for this account or API prefix.
        JetStreamNotEnabled,
        /// The server refused to create the bucket.
        BucketRejected,
        /// The server is too old for a setting of the configuration.
        Unsupported,
        /// The server rejected a write made while opening the bucket.
        Rejected,
        /// This NATS user may not use the bucket.
        PermissionDenied,
        /// The actor system the manager was to run on stopped.
        ManagerGone,
    }
}

family! {
    /// The kinds of an [`ObserveError`]. See the [`LockError`] variant of the same name.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) {
    /// if let Err(e) = m.events("jobs..bad").await {
    ///     assert_eq!(e.kind(), nlock::ObserveErrorKind::InvalidKey);
    /// }
    /// # }
    /// ```
    ObserveErrorKind {
        /// A key or filter that is not valid.
        InvalidKey,
        /// NATS could not be reached or refused the request.
        Unavailable,
        /// A read timed out.
        OutcomeUnknown,
        /// The manager is no longer running.
        ManagerGone,
        /// This NATS user may not read the bucket.
        PermissionDenied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown() -> LockError {
        LockError::OutcomeUnknown {
            key: "k".into(),
            source: "timed out".into(),
        }
    }

    #[test]
    fn a_timeout_stays_a_timeout_in_every_family() {
        assert_eq!(
            AcquireError::from(unknown()).kind(),
            AcquireErrorKind::OutcomeUnknown
        );
        assert_eq!(
            ReleaseError::from(unknown()).kind(),
            ReleaseErrorKind::OutcomeUnknown
        );
        assert_eq!(
            ConnectError::from(unknown()).kind(),
            ConnectErrorKind::OutcomeUnknown
        );
        assert_eq!(
            ObserveError::from(unknown()).kind(),
            ObserveErrorKind::OutcomeUnknown
        );
    }

    #[test]
    fn a_family_keeps_the_whole_error_and_its_name() {
        let busy = LockError::RestartGrace {
            key: "k".into(),
            remaining: std::time::Duration::from_secs(1),
        };
        let e = AcquireError::from(busy);
        assert_eq!(e.kind(), AcquireErrorKind::Busy);
        assert_eq!(e.kind().as_str(), "busy");
        assert!(matches!(e.lock_error(), LockError::RestartGrace { .. }));
        let back: LockError = e.into();
        assert_eq!(back.kind(), ErrorKind::Busy);
    }

    #[test]
    fn a_kind_a_family_does_not_list_is_unavailable_never_unknown() {
        let not_held = LockError::NotHeld { key: "k".into() };
        assert_eq!(
            AcquireError::from(not_held).kind(),
            AcquireErrorKind::Unavailable
        );
        let busy = LockError::Busy {
            key: "k".into(),
            holder: None,
        };
        let e = ReleaseError::from(busy);
        assert_eq!(e.kind(), ReleaseErrorKind::Unavailable);
        assert_eq!(e.lock_error().kind(), ErrorKind::Busy, "the details stay");
    }
}
