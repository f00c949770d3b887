//! The restart grace: no new tenure on a bucket whose data is younger than one TTL.
//!
//! A bucket that lost its data (memory storage across a server restart, a wiped store
//! directory, a cluster whose every node went down at once) looks free to everyone, while a
//! holder of the lost bucket may still count its lease for up to one TTL from its last
//! write, which was sent before the loss. So nobody takes a key until one TTL (plus the
//! assumed clock skew between hosts) has passed since the data began again. When the data
//! began is read from the stream, so every process, not only the one that re-created the
//! bucket, waits the same grace:
//! - its creation time (a re-created bucket is new);
//! - its sequence numbers: nlock starts a bucket's sequence at the clock in microseconds, and
//!   moves it to the clock again when it finds the data reset, so the last sequence read as a
//!   time says when the data began, to within the writes since;
//! - a stream that was never written (its last sequence below its first) or whose sequence is
//!   behind one this process has seen was reset under a configuration the server kept: its
//!   sequence is moved past every earlier token with a purge, which starts the grace anew.
//!
//! A grant is also checked after its write (if the connection was re-made meanwhile, or its
//! token is not above every revision seen): a reset can land between the check and the write.
//!
//! Moving a reset stream's sequence, and withholding a grant whose token is not above every
//! revision seen, happen with the grace turned off too (`restart_grace(false)` only stops the
//! wait): tokens never go back either way.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use tokio::time::Instant;

use super::{Store, WriteError};

/// Sequences above this, read as microseconds since the Unix epoch, are after 2001: such a
/// sequence was set from a clock (nlock's first sequence or reset purge), not counted from 1.
const CLOCK_SEQUENCE_FLOOR: u64 = 1_000_000_000_000_000;

/// A restart grace in force: no new tenure before it ends.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// if let Some(grace) = m.restart_grace().await? {
///     println!("no locks until {:?} ({:?} more)", grace.ends_at, grace.remaining);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartGrace {
    /// When it ends, on this host's clock.
    pub ends_at: SystemTime,
    /// How long it still runs, as of when it was read.
    pub remaining: Duration,
}

/// What the store remembers between checks. A std mutex: nothing awaits while holding it.
#[derive(Debug, Default)]
pub(crate) struct GraceState {
    /// The connection count (`Statistics::connects`) at the last full check: a server
    /// restart re-makes the connection, so a changed count means check again.
    checked_at_connects: Option<u64>,
    /// The grace found by the last full check, if any; after it the bucket is open.
    until: Option<(Instant, SystemTime)>,
}

/// Shared by a store's clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grace {
    pub(super) state: Arc<Mutex<GraceState>>,
    /// The highest revision this process has seen in the bucket (acknowledged writes, reads
    /// of the stream's state): a later grant at or below it means the data was reset.
    pub(super) max_seen: Arc<AtomicU64>,
}

/// What [`Store::admit`] remembers for [`Store::confirm_grant`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    connects: u64,
    max_seen: u64,
}

/// Whether a new tenure may be written now.
#[derive(Debug)]
pub(crate) enum Admission {
    Open(Ticket),
    Grace(RestartGrace),
}

/// Reads the grace of one check at `now`.
fn remaining(until: Instant, ends_at: SystemTime) -> Option<RestartGrace> {
    let now = Instant::now();
    (until > now).then(|| RestartGrace {
        ends_at,
        remaining: until - now,
    })
}

fn as_system_time(t: time::OffsetDateTime) -> SystemTime {
    let nanos = t.unix_timestamp_nanos();
    if nanos <= 0 {
        return UNIX_EPOCH;
    }
    UNIX_EPOCH
        .checked_add(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
        .unwrap_or(UNIX_EPOCH)
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// When the bucket's data began, as far as its stream shows: its creation, or its last
/// sequence read as a clock time when it was set from one.
fn data_began(info: &jetstream::stream::Info) -> SystemTime {
    let created = as_system_time(info.created);
    let last = info.state.last_sequence;
    if last > CLOCK_SEQUENCE_FLOOR {
        let by_sequence = UNIX_EPOCH
            .checked_add(Duration::from_micros(last))
            .unwrap_or(UNIX_EPOCH);
        created.max(by_sequence)
    } else {
        created
    }
}

impl Store {
    fn connects(&self) -> u64 {
        self.statistics.connects.load(Ordering::Relaxed)
    }

    /// Remembers a revision seen in the bucket.
    pub(super) fn saw_revision(&self, revision: u64) {
        self.grace.max_seen.fetch_max(revision, Ordering::Relaxed);
    }

    /// The longest lease any holder of this bucket can count: the bucket's `max_age` (no
    /// per-lock TTL exceeds it), and this manager's TTL if it is longer. Plus the skew.
    fn grace_length(&self, info: &jetstream::stream::Info) -> Duration {
        info.config
            .max_age
            .max(self.grace_ttl)
            .saturating_add(self.clock_skew)
    }

    /// The first check, made when the store opens, so that a manager's first acquire sends
    /// its write first (no stream-info request before it). A failure here is not one: the
    /// first `admit` checks again.
    ///
    /// A store that may not create the bucket (an observer's) never moves its sequence here:
    /// it only reads.
    pub(super) async fn first_grace_check(&self) {
        if let Err(e) = self
            .check_grace(self.connects(), false, self.create_bucket)
            .await
        {
            tracing::debug!(error = ?e, "restart grace: first check failed; the first acquire checks");
        }
    }

    /// Whether a new tenure may be written now. Cheap while the connection has not been
    /// re-made since the last check; otherwise one stream-info request (and, when the data
    /// was reset, a purge that moves its sequence past every earlier token).
    pub(crate) async fn admit(&self) -> Result<Admission, WriteError> {
        let connects = self.connects();
        let cached = self
            .grace
            .state
            .lock()
            .ok()
            .and_then(|s| (s.checked_at_connects == Some(connects)).then_some(s.until));
        match cached {
            Some(None) => return Ok(Admission::Open(self.ticket_at(connects))),
            Some(Some((until, ends_at))) => {
                return Ok(match remaining(until, ends_at) {
                    Some(g) => Admission::Grace(g),
                    None => Admission::Open(self.ticket_at(connects)),
                })
            }
            None => {}
        }
        let grace = self.check_grace(connects, false, true).await?;
        Ok(match grace {
            Some(g) => Admission::Grace(g),
            None => Admission::Open(self.ticket_at(connects)),
        })
    }

    fn ticket_at(&self, connects: u64) -> Ticket {
        Ticket {
            connects,
            max_seen: self.grace.max_seen.load(Ordering::Relaxed),
        }
    }

    /// Checks a grant written after `ticket` was taken. A token at or below a revision seen
    /// before means the data was reset between the check and the write: the sequence is moved
    /// past it (which also removes the grant) and a grace starts. A connection re-made since
    /// the check means the bucket may be new: it is checked again, and a grant on a bucket
    /// in its grace is undone. `Err` carries the grace; the grant must not be handed out.
    pub(crate) async fn confirm_grant(
        &self,
        ticket: Ticket,
        key: &str,
        token: u64,
    ) -> Result<(), RestartGrace> {
        if token <= ticket.max_seen {
            tracing::warn!(
                bucket = %self.wanted.name,
                key,
                token,
                seen = ticket.max_seen,
                "a grant's token is not above a revision seen before (the bucket's data was \
                 reset): not handing it out"
            );
            return match self.check_grace(self.connects(), true, true).await {
                Ok(Some(g)) => Err(g),
                // The grace is off: the grant is gone with the purge; try again at once.
                Ok(None) => Err(RestartGrace {
                    ends_at: SystemTime::now(),
                    remaining: Duration::ZERO,
                }),
                // The purge failed or the check could not be made: this grant is below an
                // earlier token, so it is not handed out either way. Its holder does not
                // refresh it, so it expires; the next check moves the sequence.
                _ => {
                    self.forget_check();
                    Err(self.grace_from_now())
                }
            };
        }
        if ticket.connects == self.connects() {
            return Ok(());
        }
        match self.check_grace(self.connects(), false, true).await {
            Ok(None) => Ok(()),
            Ok(Some(g)) => Err(g),
            // Unknown: the grant stands only if the bucket is known to be past its grace.
            Err(_) => {
                self.forget_check();
                Err(self.grace_from_now())
            }
        }
    }

    /// A full grace the length of this manager's TTL plus skew, from now: the answer when
    /// the bucket could not be checked after a suspicious grant.
    fn grace_from_now(&self) -> RestartGrace {
        let length = self.grace_ttl.saturating_add(self.clock_skew);
        RestartGrace {
            ends_at: SystemTime::now()
                .checked_add(length)
                .unwrap_or_else(SystemTime::now),
            remaining: length,
        }
    }

    fn forget_check(&self) {
        if let Ok(mut s) = self.grace.state.lock() {
            s.checked_at_connects = None;
        }
    }

    /// The grace in force now, read from the server. For `nlock info` and
    /// `LockManager::restart_grace`; the same check [`Store::admit`] makes, but it only reads:
    /// where the next grant would first move the sequence, it says a whole grace is ahead.
    pub(crate) async fn restart_grace(&self) -> Result<Option<RestartGrace>, WriteError> {
        if !self.restart_grace {
            return Ok(None);
        }
        self.check_grace(self.connects(), false, false).await
    }

    /// Reads the stream and works out the grace; with `reset`, or when the stream shows a
    /// reset, first moves its sequence to the clock (past every revision seen), if
    /// `may_move`. Without it, a move that is due is not made and nothing is remembered: the
    /// answer is a whole grace from now, which is what the grant that makes the move waits.
    async fn check_grace(
        &self,
        connects: u64,
        mut reset: bool,
        may_move: bool,
    ) -> Result<Option<RestartGrace>, WriteError> {
        let mut info = self.stream_info().await?;
        let max_seen = self.grace.max_seen.load(Ordering::Relaxed);
        let first = info.config.first_sequence.unwrap_or(1).max(1);
        let last = info.state.last_sequence;
        // Behind a revision seen before: the data was reset under a configuration the server
        // kept (a cluster whose every node went down).
        if last < max_seen {
            reset = true;
        }
        // Never written since it was (re)made: a reset as above, or a bucket never used. A
        // new bucket whose first sequence is already at the clock needs no move.
        let new_at_clock = first > CLOCK_SEQUENCE_FLOOR
            && SystemTime::now()
                .duration_since(as_system_time(info.created))
                .unwrap_or(Duration::ZERO)
                < self.grace_length(&info);
        let never_written = last < first && !new_at_clock;
        // A replicated stream on a server before 2.10 refuses every write after a purge that
        // moves its sequence (10077, its cluster layer keeps the old last sequence); such
        // servers do not make replicated compare-and-set safe anyway (GUARANTEES.md).
        let movable = info.config.num_replicas <= 1
            || super::bucket::major_minor(&self.caps.server_version) >= (2, 10);
        if (reset || never_written) && movable && !may_move {
            return Ok(self.restart_grace.then(|| self.grace_from_now()));
        }
        if (reset || never_written) && movable {
            let to = micros_now().max(max_seen + 1).max(last + 1);
            self.move_sequence(to, reset).await?;
            info = self.stream_info().await?;
        }
        self.saw_revision(info.state.last_sequence);
        let began = data_began(&info);
        let ends_at = began.checked_add(self.grace_length(&info)).unwrap_or(began);
        // Never longer than a whole grace from now, whatever a skewed clock set the sequence to.
        let left = ends_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(self.grace_length(&info));
        let until = Instant::now()
            .checked_add(left)
            .filter(|_| self.restart_grace && !left.is_zero())
            .map(|until| (until, ends_at));
        if let Ok(mut s) = self.grace.state.lock() {
            s.checked_at_connects = Some(connects);
            s.until = until;
        }
        if let Some((_, _)) = until {
            tracing::info!(
                bucket = %self.wanted.name,
                remaining_ms = left.as_millis() as u64,
                "the lock bucket's data is younger than one TTL: no new lock until its \
                 restart grace ends"
            );
        }
        Ok(until.and_then(|(u, e)| remaining(u, e)))
    }

    async fn stream_info(&self) -> Result<jetstream::stream::Info, WriteError> {
        match self.js.get_stream(&self.wanted.name).await {
            Ok(stream) => Ok(stream.cached_info().clone()),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(ref j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                // Lost (a memory-storage restart): re-create it, which starts a grace.
                if self.recreate_if_missing().await {
                    match self.js.get_stream(&self.wanted.name).await {
                        Ok(stream) => Ok(stream.cached_info().clone()),
                        Err(e) => Err(WriteError::Unavailable(Box::new(e))),
                    }
                } else {
                    Err(WriteError::Unavailable(Box::new(e)))
                }
            }
            Err(e) => Err(WriteError::Unavailable(Box::new(e))),
        }
    }

    /// Purges the stream up to `to`, which sets its next sequence to `to` when that is past
    /// its last: every later revision, and so every later token, is above every earlier one.
    async fn move_sequence(&self, to: u64, went_back: bool) -> Result<(), WriteError> {
        let stream = self
            .js
            .get_stream_no_info(&self.wanted.name)
            .await
            .map_err(|e| WriteError::Unavailable(Box::new(e)))?;
        let purge = format!("{}.STREAM.PURGE.{}", self.api_prefix, self.wanted.name);
        self.denials
            .refused(|s| s == purge, stream.purge().sequence(to).into_future())
            .await
            .map_err(|subject| WriteError::Denied { subject })?
            .map_err(|e| WriteError::Unavailable(Box::new(e)))?;
        if went_back {
            tracing::warn!(
                bucket = %self.wanted.name,
                next_revision = to,
                "the lock bucket's data was reset: moved its sequence past every earlier token"
            );
        } else {
            tracing::info!(
                bucket = %self.wanted.name,
                next_revision = to,
                "the lock bucket was never written: moved its sequence to the clock, past any \
                 token of a bucket it may replace"
            );
        }
        Ok(())
    }
}
