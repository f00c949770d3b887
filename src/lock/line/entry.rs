//! [`Entry`]: one waiting request's place in the line of a key, kept alive on a task of its
//! own while the request waits, deleted when it is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{decode_ticket, encode_ticket, entry_key};
use crate::store::{End, Op, Store, WriteError};

/// How long a failed create waits before it tries again.
const RETRY: Duration = Duration::from_millis(100);

/// A request's entry in the line of its key. Its ticket is known once the create is
/// answered ([`Entry::ticket`]); if the entry expires (its process paused past its lifetime)
/// it is created again, at the back, with a new ticket. Dropping it stops the keep-alive and
/// deletes the entry.
#[derive(Debug)]
pub(crate) struct Entry {
    id: String,
    key: String,
    /// The ticket (0 while the create is unanswered) and when the write that last confirmed
    /// the entry was sent.
    ticket: watch::Receiver<(u64, Instant)>,
    /// How long after that send the entry surely still lives at the server.
    valid_for: Duration,
    /// The entry's last acknowledged revision (0: none), for the delete.
    last: Arc<AtomicU64>,
    store: Arc<Store>,
    task: JoinHandle<()>,
}

impl Entry {
    /// Writes the entry of request `id` in the line of `key` (on a task: this returns at
    /// once) and rewrites it every `every`; each write keeps it `valid_for`. Needs a tokio
    /// runtime.
    pub(crate) fn open(
        store: Arc<Store>,
        key: &str,
        id: &str,
        every: Duration,
        valid_for: Duration,
    ) -> Entry {
        let (tx, ticket) = watch::channel((0, Instant::now()));
        let last = Arc::new(AtomicU64::new(0));
        let entry = entry_key(key, id);
        let task = tokio::spawn(keep(store.clone(), entry.clone(), every, tx, last.clone()));
        Entry {
            id: id.to_owned(),
            key: entry,
            ticket,
            valid_for,
            last,
            store,
            task,
        }
    }

    /// The request id the entry names (the tenure id its grant will write).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The ticket now, while the entry surely lives at the server by this host's clock;
    /// else 0 (the create is unanswered, or the rewrites stopped landing: the entry may have
    /// expired and others may have gone ahead, so it counts only once written again).
    pub(crate) fn ticket(&self) -> u64 {
        let (ticket, sent_at) = *self.ticket.borrow();
        match crate::deadline::after(sent_at, self.valid_for) > Instant::now() {
            true => ticket,
            false => 0,
        }
    }

    /// Waits until the entry has a ticket or `until` passes; the ticket, or 0.
    pub(crate) async fn ticket_by(&mut self, until: Instant) -> u64 {
        let ready = self.ticket.wait_for(|(t, _)| *t != 0);
        let answered = matches!(tokio::time::timeout_at(until, ready).await, Ok(Ok(_)));
        match answered {
            true => self.ticket(),
            false => 0,
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.task.abort();
        let last = self.last.load(Ordering::Acquire);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime left (the process is ending): the entry expires on its own.
            return;
        };
        let (store, key) = (self.store.clone(), std::mem::take(&mut self.key));
        rt.spawn(async move { remove(&store, &key, last).await });
    }
}

/// Creates the entry, then rewrites it every `every` with its ticket in the value; creates it
/// again (a new ticket, at the back) if it is gone.
async fn keep(
    store: Arc<Store>,
    entry: String,
    every: Duration,
    ticket: watch::Sender<(u64, Instant)>,
    last: Arc<AtomicU64>,
) {
    loop {
        let sent_at = Instant::now();
        let (t, revision) = match create(&store, &entry).await {
            Created::Yes(t, revision) => (t, revision),
            Created::NotNow => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            // This user may not write entries: the request waits outside the line (the
            // closed channel tells it at once).
            Created::Denied => return,
        };
        last.store(revision, Ordering::Release);
        ticket.send_replace((t, sent_at));
        let mut at = revision;
        loop {
            tokio::time::sleep(every).await;
            let sent_at = Instant::now();
            match store.write(&entry, encode_ticket(t), at, None).await {
                Ok(r) => {
                    at = r;
                    last.store(r, Ordering::Release);
                    ticket.send_replace((t, sent_at));
                }
                // Gone (expired while this process was paused, or lost in a reset): the
                // request goes to the back of the line.
                Err(WriteError::Conflict) => break,
                // Unknown: the next rewrite tells (a landed one makes it conflict, and the
                // entry is then created again: a later ticket, never an earlier one).
                Err(_) => {}
            }
        }
    }
}

/// What a create of an entry came to.
enum Created {
    /// Its ticket and revision.
    Yes(u64, u64),
    /// Not for now (unknown, unavailable, or changed under it): try again.
    NotNow,
    /// The server refuses this user's writes to the entry.
    Denied,
}

/// The create, or, if an earlier create of this entry landed unanswered, that one.
async fn create(store: &Store, entry: &str) -> Created {
    match store.write(entry, Bytes::new(), 0, None).await {
        Ok(revision) => Created::Yes(revision, revision),
        Err(WriteError::Denied { .. }) => Created::Denied,
        Err(WriteError::Conflict) => match store.read(entry).await {
            Ok(Some(ev)) if ev.op == Op::Put => {
                Created::Yes(decode_ticket(&ev.value).unwrap_or(ev.revision), ev.revision)
            }
            // A marker of this entry (ids are never reused, so an old delete of ours): create
            // over it.
            Ok(Some(ev)) => match store.write(entry, Bytes::new(), ev.revision, None).await {
                Ok(r) => Created::Yes(r, r),
                Err(_) => Created::NotNow,
            },
            _ => Created::NotNow,
        },
        Err(_) => Created::NotNow,
    }
}

/// Deletes the entry at `last`; if a rewrite landed after it, once more at the entry's
/// current revision. Anything left expires with the bucket's `max_age`.
async fn remove(store: &Store, entry: &str, last: u64) {
    let mut at = last;
    for _ in 0..2 {
        if at == 0 {
            match store.read(entry).await {
                Ok(Some(ev)) if ev.op == Op::Put => at = ev.revision,
                _ => return,
            }
        }
        match store.delete(entry, at, Bytes::new(), End::Released).await {
            Err(WriteError::Conflict) => at = 0,
            _ => return,
        }
    }
}
