//! Counting writes on the wire: a plain core-NATS subscription on `$KV.>` sees every publish
//! to every key of every bucket (creates, updates, deletes, whether the stream then stores or
//! refuses them: a refused compare-and-set is still a message on the key's subject).
//! Workload 2 counts with it how many writes a contender sends per handoff.

use std::collections::HashMap;

use anyhow::Result;
use futures::{FutureExt as _, StreamExt as _};

/// Writes seen so far: on one key's subject, and everywhere under `$KV.`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub on_key: u64,
    pub all: u64,
}

impl Seen {
    /// What was seen between `earlier` and `self`: (on the key, elsewhere).
    pub fn since(self, earlier: Seen) -> (u64, u64) {
        let on_key = self.on_key.saturating_sub(earlier.on_key);
        let all = self.all.saturating_sub(earlier.all);
        (on_key, all.saturating_sub(on_key))
    }
}

/// A subscription on `$KV.>` on a connection of its own.
pub struct WriteTap {
    client: async_nats::Client,
    sub: async_nats::Subscriber,
    by_subject: HashMap<String, u64>,
    all: u64,
}

impl WriteTap {
    /// Subscribes, and returns once the server has the subscription (a flush is a round
    /// trip after the SUB): every publish after this returns is seen.
    pub async fn open(url: &str) -> Result<WriteTap> {
        let client = async_nats::connect(url).await?;
        let sub = client.subscribe("$KV.>").await?;
        client.flush().await?;
        Ok(WriteTap {
            client,
            sub,
            by_subject: HashMap::new(),
            all: 0,
        })
    }

    /// The subject of `key` in `bucket`, as a KV store publishes to it.
    pub fn subject(bucket: &str, key: &str) -> String {
        format!("$KV.{bucket}.{key}")
    }

    /// Counts every write the server had routed before this call: a flush (PING, PONG)
    /// returns after the client has taken in every message the server sent before its PONG,
    /// and those are then read from the subscription without waiting. Unconstrained: tokio's
    /// cooperative budget would otherwise make the channel look empty after 128 messages.
    pub async fn seen(&mut self, subject: &str) -> Result<Seen> {
        self.client.flush().await?;
        while let Some(Some(msg)) = tokio::task::unconstrained(self.sub.next()).now_or_never() {
            *self
                .by_subject
                .entry(msg.subject.as_str().to_owned())
                .or_default() += 1;
            self.all += 1;
        }
        Ok(Seen {
            on_key: self.by_subject.get(subject).copied().unwrap_or(0),
            all: self.all,
        })
    }
}
