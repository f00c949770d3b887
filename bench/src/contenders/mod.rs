//! The things being compared, behind one small trait: nlock through its public API, the raw
//! async-nats floors, and the Go algorithm. The peers (etcd, Redis) are in `peers.rs`.
//!
//! A contender has one or more *parties* (a party is one client on its own connection);
//! `acquire` waits the way that algorithm waits when the key is held. The contenders that
//! wait on NATS (the raw watch floor and the Go algorithm) are in `waiting.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Result};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::future::LocalBoxFuture;
use rand::Rng;

mod waiting;

pub use waiting::{GoAlgorithm, RawWatch, WaitSet};

pub type LocalFut<T> = LocalBoxFuture<'static, Result<T>>;

pub trait Contender: 'static {
    type Held: 'static;
    /// Takes `key` for `party`, waiting as this algorithm waits while the key is held.
    fn acquire(&self, party: usize, key: Rc<str>) -> LocalFut<Self::Held>;
    /// Gives `key` up.
    fn release(&self, party: usize, key: Rc<str>, held: Self::Held) -> LocalFut<()>;
    /// Whether `party`'s acquire of `key`, called earlier and not yet granted, is known to
    /// wait: it has had its first answer (the key is held) and now waits as this algorithm
    /// waits. Workload 2 calls the next waiter only after this, so arrival order is defined.
    /// Contenders that never wait say yes at once.
    fn is_waiting(&self, _party: usize, _key: Rc<str>) -> LocalFut<bool> {
        Box::pin(async { Ok(true) })
    }
    /// Write requests sent so far, for contenders that count their own (the peers). `None`:
    /// counted on the wire instead (the NATS contenders; see `tap.rs`).
    fn writes_sent(&self) -> Option<u64> {
        None
    }
}

/// Go nlock's poll: 250 ms (its `DefaultRetryInterval`) plus a small random jitter, here up to
/// 10 % of the interval.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub fn poll_delay() -> Duration {
    let jitter = rand::rng().random_range(0..=POLL_INTERVAL.as_millis() as u64 / 10);
    POLL_INTERVAL + Duration::from_millis(jitter)
}

// ---------------------------------------------------------------------------------------
// nlock

/// nlock, one `LockManager` (one NATS connection) per party.
pub struct Nlock {
    pub managers: Vec<nlock::LockManager>,
}

impl Contender for Nlock {
    type Held = nlock::LockHandle;

    fn acquire(&self, party: usize, key: Rc<str>) -> LocalFut<nlock::LockHandle> {
        let m = self.managers[party].clone();
        Box::pin(async move { Ok(m.acquire(&key, None).await?) })
    }

    fn release(&self, _: usize, _: Rc<str>, held: nlock::LockHandle) -> LocalFut<()> {
        Box::pin(async move { Ok(held.release().await?) })
    }

    /// Its manager lists the request among those waiting for `key` (`LockManager::locks`).
    /// That says the request is queued in its process, not that its first write has been
    /// answered: workload 2's settle after each arrival covers that.
    fn is_waiting(&self, party: usize, key: Rc<str>) -> LocalFut<bool> {
        let m = self.managers[party].clone();
        Box::pin(async move {
            let report = m.locks().await?;
            Ok(report.waiting.iter().any(|(k, n)| **k == *key && *n > 0))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Raw async-nats

/// One raw async-nats client on one bucket.
#[derive(Clone)]
pub struct RawKv {
    pub js: jetstream::Context,
    pub kv: kv::Store,
    subject_prefix: String,
}

impl RawKv {
    /// Opens `bucket`, which nlock created (so every contender writes to a stream with the
    /// same settings: memory storage, history 1, max_age = TTL, limit markers).
    pub async fn open(url: &str, bucket: &str) -> Result<RawKv> {
        let client = async_nats::connect(url).await?;
        let js = jetstream::new(client);
        let kv = js.get_key_value(bucket).await?;
        Ok(RawKv {
            js,
            kv,
            subject_prefix: format!("$KV.{bucket}."),
        })
    }

    /// `kv.delete_expect_revision`'s exact message (`KV-Operation: DEL` and
    /// `Nats-Expected-Last-Subject-Sequence`, empty payload, one publish and its ack), sent
    /// directly so that the ack's sequence, the marker's revision, is kept rather than dropped.
    pub async fn delete_marker(&self, key: &str, expected: u64) -> Result<u64> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("KV-Operation", "DEL");
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        let subject = format!("{}{key}", self.subject_prefix);
        let ack = self
            .js
            .publish_with_headers(subject, headers, Bytes::new())
            .await?
            .await?;
        Ok(ack.sequence)
    }

    /// nlock's write: `Nats-Expected-Last-Subject-Sequence` and `Nats-TTL` headers.
    pub async fn update_with_ttl(
        &self,
        key: &str,
        value: Bytes,
        expected: u64,
        ttl: Duration,
    ) -> Result<u64> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        headers.insert(
            async_nats::header::NATS_MESSAGE_TTL,
            format!("{}s", ttl.as_secs()).as_str(),
        );
        let subject = format!("{}{key}", self.subject_prefix);
        let ack = self
            .js
            .publish_with_headers(subject, headers, value)
            .await?
            .await?;
        Ok(ack.sequence)
    }

    /// Takes `key` expecting `expected`; after a conflict, reads the key once and, if it is
    /// free, writes on its marker (what `kv.create` does). `None`: held by someone.
    async fn update_or_create(
        &self,
        key: &str,
        value: Bytes,
        expected: u64,
    ) -> Result<Option<u64>> {
        match self.kv.update(key, value.clone(), expected).await {
            Ok(rev) => return Ok(Some(rev)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
            Err(e) => return Err(e.into()),
        }
        match self.kv.entry(key).await? {
            Some(e) if e.operation != kv::Operation::Put => {
                match self.kv.update(key, value, e.revision).await {
                    Ok(rev) => Ok(Some(rev)),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            Some(_) => Ok(None),
            None => bail!("conflict on {key}, but the key has no message"),
        }
    }
}

/// The raw floor of an uncontended acquire and release: `kv.update(key, v, marker_rev)` and a
/// delete marker expecting the revision, remembering each key's marker as nlock does.
pub struct RawDirect {
    pub parties: Vec<RawKv>,
    pub value: Bytes,
    markers: Rc<RefCell<HashMap<Rc<str>, u64>>>,
    /// Send `Nats-TTL` with each write, as nlock does (a diagnostic variant of the floor:
    /// `kv.update` cannot carry it, so this one publishes the update itself).
    ttl: Option<Duration>,
}

impl RawDirect {
    pub fn new(parties: Vec<RawKv>, value: Bytes) -> RawDirect {
        RawDirect {
            parties,
            value,
            markers: Rc::default(),
            ttl: None,
        }
    }

    pub fn with_ttl(parties: Vec<RawKv>, value: Bytes, ttl: Duration) -> RawDirect {
        RawDirect {
            ttl: Some(ttl),
            ..RawDirect::new(parties, value)
        }
    }
}

impl Contender for RawDirect {
    type Held = u64;

    fn acquire(&self, party: usize, key: Rc<str>) -> LocalFut<u64> {
        let raw = self.parties[party].clone();
        let (value, markers) = (self.value.clone(), self.markers.clone());
        let ttl = self.ttl;
        Box::pin(async move {
            let expected = markers.borrow().get(&key).copied().unwrap_or(0);
            if let Some(ttl) = ttl {
                return raw.update_with_ttl(&key, value, expected, ttl).await;
            }
            match raw.update_or_create(&key, value, expected).await? {
                Some(rev) => Ok(rev),
                None => bail!("raw floor: {key} is held; this contender never waits"),
            }
        })
    }

    fn release(&self, party: usize, key: Rc<str>, rev: u64) -> LocalFut<()> {
        let raw = self.parties[party].clone();
        let markers = self.markers.clone();
        Box::pin(async move {
            let marker = raw.delete_marker(&key, rev).await?;
            markers.borrow_mut().insert(key, marker);
            Ok(())
        })
    }
}
