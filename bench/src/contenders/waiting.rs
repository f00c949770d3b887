//! The NATS contenders that wait for a held key: the raw watch floor and the Go algorithm's
//! poll. Each notes in a [`WaitSet`] when one of its parties has had its first answer and
//! waits, so that workload 2 knows when the next waiter may arrive.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use anyhow::{bail, Context as _};
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;

use super::{poll_delay, Contender, LocalFut, RawKv};

/// A party waiting for a key.
type Waiter = (usize, Rc<str>);

/// The (party, key) pairs whose acquire has had its first answer and waits.
#[derive(Clone, Default)]
pub struct WaitSet(Rc<RefCell<HashSet<Waiter>>>);

impl WaitSet {
    pub fn enter(&self, party: usize, key: &Rc<str>) {
        self.0.borrow_mut().insert((party, key.clone()));
    }

    pub fn leave(&self, party: usize, key: &Rc<str>) {
        self.0.borrow_mut().remove(&(party, key.clone()));
    }

    pub fn answer(&self, party: usize, key: Rc<str>) -> LocalFut<bool> {
        let yes = self.0.borrow().contains(&(party, key));
        Box::pin(async move { Ok(yes) })
    }
}

/// The raw floor of a waiting acquire: one compare-and-set, then a watch on the key, and a
/// compare-and-set on the revision of each delete or purge marker it shows.
pub struct RawWatch {
    pub parties: Vec<RawKv>,
    pub value: Bytes,
    waiting: WaitSet,
}

impl RawWatch {
    pub fn new(parties: Vec<RawKv>, value: Bytes) -> RawWatch {
        RawWatch {
            parties,
            value,
            waiting: WaitSet::default(),
        }
    }
}

impl Contender for RawWatch {
    type Held = u64;

    fn acquire(&self, party: usize, key: Rc<str>) -> LocalFut<u64> {
        let raw = self.parties[party].clone();
        let value = self.value.clone();
        let waiting = self.waiting.clone();
        Box::pin(async move {
            match raw.kv.update(&*key, value.clone(), 0).await {
                Ok(rev) => return Ok(rev),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(e.into()),
            }
            let mut watch = raw.kv.watch(&*key).await?;
            // Refused, and watching: it waits from here on.
            waiting.enter(party, &key);
            while let Some(entry) = watch.next().await {
                let entry = entry?;
                if entry.operation == kv::Operation::Put {
                    continue;
                }
                match raw.kv.update(&*key, value.clone(), entry.revision).await {
                    Ok(rev) => {
                        waiting.leave(party, &key);
                        return Ok(rev);
                    }
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                    Err(e) => return Err(e.into()),
                }
            }
            bail!("watch on {key} ended")
        })
    }

    fn release(&self, party: usize, key: Rc<str>, rev: u64) -> LocalFut<()> {
        let raw = self.parties[party].clone();
        Box::pin(async move {
            raw.delete_marker(&key, rev).await?;
            Ok(())
        })
    }

    fn is_waiting(&self, party: usize, key: Rc<str>) -> LocalFut<bool> {
        self.waiting.answer(party, key)
    }
}

/// Go nlock's algorithm: `kv.create` (an update expecting 0; on conflict a read and an
/// update on the marker), retried after `poll_delay()` while the key is held;
/// `kv.delete_expect_revision` to release.
pub struct GoAlgorithm {
    pub parties: Vec<RawKv>,
    pub value: Bytes,
    waiting: WaitSet,
}

impl GoAlgorithm {
    pub fn new(parties: Vec<RawKv>, value: Bytes) -> GoAlgorithm {
        GoAlgorithm {
            parties,
            value,
            waiting: WaitSet::default(),
        }
    }
}

impl Contender for GoAlgorithm {
    type Held = u64;

    fn acquire(&self, party: usize, key: Rc<str>) -> LocalFut<u64> {
        let raw = self.parties[party].clone();
        let value = self.value.clone();
        let waiting = self.waiting.clone();
        Box::pin(async move {
            loop {
                match raw.kv.create(&*key, value.clone()).await {
                    Ok(rev) => {
                        waiting.leave(party, &key);
                        return Ok(rev);
                    }
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e).context("kv.create"),
                }
                // Refused once: it polls from here on.
                waiting.enter(party, &key);
                tokio::time::sleep(poll_delay()).await;
            }
        })
    }

    fn release(&self, party: usize, key: Rc<str>, rev: u64) -> LocalFut<()> {
        let raw = self.parties[party].clone();
        Box::pin(async move {
            raw.kv.delete_expect_revision(&*key, Some(rev)).await?;
            Ok(())
        })
    }

    fn is_waiting(&self, party: usize, key: Rc<str>) -> LocalFut<bool> {
        self.waiting.answer(party, key)
    }
}
