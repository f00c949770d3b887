//! Who leads a key, and how that changes, for anyone in any process, candidate or not. Reads
//! of the bucket (`LockManager::holder`, `LockManager::events`): for display and for
//! following a leader, never for deciding who leads (only a compare-and-set does).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix::{Message, Recipient};
use futures::{Stream, StreamExt};
use serde::Serialize;

use super::options::CandidateRecord;
use crate::client::LockManager;
use crate::error::ObserveError;
use crate::holder::Holder;
use crate::lock::loss::warn_if_gone;
use crate::observe::{LockEvent, LockEventKind, LockEvents};

/// The leader of a key, as the bucket shows it.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// if let Some(l) = m.leader("jobs.leader").await? {
///     println!("{} leads {} since {} (token {})", l.identity, l.key, l.since_ms, l.token);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Leader {
    /// The election key.
    pub key: String,
    /// The candidate's identity ([`ElectorOptions::identity`](super::ElectorOptions)); for a
    /// key held by a plain lock, not an elector, the holder's owner id.
    pub identity: String,
    /// The candidate's metadata (`null` when none, or for a plain lock).
    pub metadata: serde_json::Value,
    /// The term's fencing token.
    pub token: u64,
    /// When the term began, ms since the Unix epoch on the leader's clock (0 if unknown).
    pub since_ms: u64,
    /// The whole lock record (owner id, host, pid).
    pub holder: Holder,
}

impl Leader {
    /// The candidate a lock record names when an elector wrote it: its identity and metadata.
    /// `None` for a plain lock's record (no description, or one that is not a candidate
    /// record). For showing a holder readably, as `nlock ls` does.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// for h in m.holders().await? {
    ///     match nlock::Leader::candidate_of(&h.holder) {
    ///         Some((identity, meta)) => println!("{}: leader {identity} {meta}", h.key),
    ///         None => println!("{}: lock of {}", h.key, h.holder.owner),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn candidate_of(holder: &Holder) -> Option<(String, serde_json::Value)> {
        let record = CandidateRecord::decode(holder.description.as_deref()?)?;
        Some((record.leader.id, record.leader.meta))
    }

    fn new(key: String, token: u64, holder: Holder) -> Leader {
        let record = holder
            .description
            .as_deref()
            .and_then(CandidateRecord::decode);
        let (identity, metadata) = match record {
            Some(r) => (r.leader.id, r.leader.meta),
            None => (holder.owner.clone(), serde_json::Value::Null),
        };
        Leader {
            key,
            identity,
            metadata,
            token,
            since_ms: holder.acquired_at_ms,
            holder,
        }
    }
}

/// What changed.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use futures::StreamExt;
/// let mut changes = m.leader_changes("jobs.leader").await?;
/// while let Some(c) = changes.next().await {
///     match c.kind {
///         nlock::LeaderChangeKind::Elected => println!("new leader: {:?}", c.leader),
///         kind => println!("term over ({kind:?}) at revision {}", c.revision),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaderChangeKind {
    /// A term began (or, as the first change of a stream, the term already running).
    Elected,
    /// The leader released the key: it resigned, stepped down, or shut down cleanly.
    Resigned,
    /// Someone other than the leader deleted or purged the key.
    Deleted,
    /// The term lapsed: its leader stopped refreshing (a crash, a pause, a cut connection),
    /// as marked by the server (limit markers, 2.11+) or by the lapsed holder itself.
    Expired,
    /// The term ended, but this observer did not see how: the next term began over it.
    /// Either nothing marked the end (an expiry on a server before 2.11), or the next
    /// leader's first write replaced the end's marker before this observer read it (the
    /// bucket keeps one message per key, so a fast handoff can hide a release). Told just
    /// before the next `Elected`, at that change's revision.
    Ended,
}

/// One change of leadership, as every process sees it, in the key's order. Also an actix
/// message, for [`LockManager::subscribe_leader`].
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use futures::StreamExt;
/// let mut changes = m.leader_changes("jobs.leader").await?;
/// while let Some(c) = changes.next().await {
///     println!("{} at revision {} ({:?}): {:?}", c.key, c.revision, c.stored_at_ms, c.leader);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct LeaderChange {
    /// The election key.
    pub key: String,
    /// What happened.
    pub kind: LeaderChangeKind,
    /// `Elected`: the new leader. Otherwise the leader whose term ended, when known.
    pub leader: Option<Leader>,
    /// The revision of the change.
    pub revision: u64,
    /// When the server stored it (server clock, ms since the Unix epoch), if known.
    pub stored_at_ms: Option<u64>,
}

/// A stream of [`LeaderChange`]s for one key, from [`LockManager::leader_changes`]. It starts
/// with the key's current state and does not end by itself; drop it to stop.
///
/// ```no_run
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// use futures::StreamExt;
/// let changes: nlock::LeaderChanges = m.leader_changes("jobs.leader").await?;
/// let first = changes.take(1).collect::<Vec<_>>().await; // the current state
/// # Ok(()) }
/// ```
pub struct LeaderChanges {
    events: LockEvents,
    /// The leader of the running term, to name it when the term ends (a delete marker by
    /// someone else does not say whose term it ended).
    current: Option<Leader>,
    /// Changes made from one event and not yet handed out (at most two).
    ready: VecDeque<LeaderChange>,
}

impl std::fmt::Debug for LeaderChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderChanges")
            .field("current", &self.current)
            .finish()
    }
}

impl LeaderChanges {
    fn new(events: LockEvents) -> LeaderChanges {
        LeaderChanges {
            events,
            current: None,
            ready: VecDeque::new(),
        }
    }

    fn push(&mut self, e: &LockEvent, kind: LeaderChangeKind, leader: Option<Leader>) {
        self.ready.push_back(LeaderChange {
            key: e.key.clone(),
            kind,
            leader,
            revision: e.revision,
            stored_at_ms: e.stored_at_ms,
        });
    }

    fn absorb(&mut self, e: LockEvent) {
        let ended = match e.kind {
            LockEventKind::Released => Some(LeaderChangeKind::Resigned),
            LockEventKind::Deleted => Some(LeaderChangeKind::Deleted),
            LockEventKind::Expired => Some(LeaderChangeKind::Expired),
            _ => None,
        };
        if let Some(kind) = ended {
            let leader = self.current.take().or_else(|| {
                let holder = e.holder.clone()?;
                Some(Leader::new(e.key.clone(), e.token?, holder))
            });
            self.push(&e, kind, leader);
            return;
        }
        let (Some(token), Some(holder)) = (e.token, e.holder.clone()) else {
            return; // a write naming nobody: nothing to tell
        };
        if self.current.as_ref().is_some_and(|c| c.token == token) {
            return; // a refresh of the running term
        }
        if let Some(old) = self.current.take() {
            // A new term over a live one: the old one ended unseen.
            self.push(&e, LeaderChangeKind::Ended, Some(old));
        }
        let leader = Leader::new(e.key.clone(), token, holder);
        self.current = Some(leader.clone());
        self.push(&e, LeaderChangeKind::Elected, Some(leader));
    }
}

impl Stream for LeaderChanges {
    type Item = LeaderChange;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LeaderChange>> {
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Poll::Ready(Some(change));
            }
            match self.events.poll_next_unpin(cx) {
                Poll::Ready(Some(event)) => self.absorb(event),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A subscription made by [`LockManager::subscribe_leader`]: it lasts until this is dropped
/// or the subscriber stops.
///
/// ```no_run
/// use actix::prelude::*;
///
/// struct Follower;
/// impl Actor for Follower {
///     type Context = Context<Self>;
/// }
/// impl Handler<nlock::LeaderChange> for Follower {
///     type Result = ();
///     fn handle(&mut self, c: nlock::LeaderChange, _: &mut Context<Self>) {
///         println!("{} at revision {}: {:?}", c.key, c.revision, c.kind);
///     }
/// }
/// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
/// let follower = Follower.start();
/// let subscription = m.subscribe_leader("jobs.leader", follower.clone().recipient()).await?;
/// // ... changes are delivered while `subscription` lives ...
/// drop(subscription);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaderSubscription {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LeaderSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LockManager {
    /// Who leads `key` now, in any process; `None` when nobody does. A read, for display.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// if let Some(l) = m.leader("jobs.leader").await? {
    ///     println!("{} leads since {} (token {}, {})", l.identity, l.since_ms, l.token, l.metadata);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ObserveErrorKind`](crate::ObserveErrorKind): `InvalidKey` before anything is sent,
    /// `Unavailable`, `OutcomeUnknown`, `PermissionDenied` from NATS.
    pub async fn leader(&self, key: &str) -> Result<Option<Leader>, ObserveError> {
        let held = self.holder(key).await?;
        Ok(held.map(|h| Leader::new(h.key, h.token, h.holder)))
    }

    /// The changes of leadership of `key`, in order: first the current state, then each
    /// election, resign, delete and expiry as it lands. The stream follows the key when this
    /// returns: nothing that lands afterwards is missed.
    ///
    /// ```no_run
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// use futures::StreamExt;
    /// let mut changes = m.leader_changes("jobs.leader").await?;
    /// while let Some(c) = changes.next().await {
    ///     println!("{:?} {:?}", c.kind, c.leader.map(|l| l.identity));
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ObserveErrorKind`](crate::ObserveErrorKind): `InvalidKey` before anything is sent,
    /// `Unavailable`, `OutcomeUnknown`, `PermissionDenied` from NATS.
    pub async fn leader_changes(&self, key: &str) -> Result<LeaderChanges, ObserveError> {
        crate::key::validate_key(key)?;
        Ok(LeaderChanges::new(self.events(key).await?))
    }

    /// Sends every [`LeaderChange`] of `key` to `recipient`, in order, until the returned
    /// subscription is dropped or the recipient's actor stops; it follows the key when this
    /// returns. Call it from inside a tokio runtime (an actix system is one).
    ///
    /// Weak, like every nlock subscription: keep an address of the subscriber yourself. A
    /// `Recipient` made from an actor's only address (`Actor.start().recipient()` passed
    /// straight in) is dropped with this call's argument, the actor stops, and nothing is
    /// delivered. A subscriber whose actor has stopped by this call, or before the first
    /// change (the key's current state) reaches it, is logged as a warning.
    ///
    /// ```no_run
    /// use actix::prelude::*;
    ///
    /// struct Follower;
    /// impl Actor for Follower {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<nlock::LeaderChange> for Follower {
    ///     type Result = ();
    ///     fn handle(&mut self, c: nlock::LeaderChange, _: &mut Context<Self>) {
    ///         println!("{:?} {:?}", c.kind, c.leader.map(|l| l.identity));
    ///     }
    /// }
    /// # async fn f(m: nlock::LockManager) -> Result<(), nlock::LockError> {
    /// let follower = Follower.start(); // keep it: the subscription alone does not
    /// let subscription = m.subscribe_leader("jobs.leader", follower.clone().recipient()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ObserveErrorKind`](crate::ObserveErrorKind): `InvalidKey` before anything is sent,
    /// `Unavailable`, `OutcomeUnknown`, `PermissionDenied` from NATS.
    pub async fn subscribe_leader(
        &self,
        key: &str,
        recipient: Recipient<LeaderChange>,
    ) -> Result<LeaderSubscription, ObserveError> {
        warn_if_gone(&recipient, "leader changes");
        let mut changes = self.leader_changes(key).await?;
        // Weak: the subscription must not keep its subscriber alive (an actix `Supervisor`
        // would restart an actor whose mailbox is still referenced).
        let weak = recipient.downgrade();
        drop(recipient);
        let key = key.to_owned();
        let task = tokio::spawn(async move {
            let mut first = true;
            while let Some(change) = changes.next().await {
                let live = weak.upgrade().filter(|r| r.connected());
                let Some(recipient) = live else {
                    if first {
                        tracing::warn!(
                            %key,
                            "the leader-change subscriber stopped before the first change: \
                             nothing was delivered (subscriptions are weak; keep an address \
                             of the subscriber)"
                        );
                    }
                    return;
                };
                first = false;
                // Into the mailbox whatever its size: a change must not be dropped.
                recipient.do_send(change);
            }
        });
        Ok(LeaderSubscription { task })
    }
}
