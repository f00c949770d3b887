//! The peers: Redis 7 (`SET key token NX PX ttl`, released by a compare-and-delete script)
//! and etcd 3.4 (the v3 lock API with a lease), as [`Contender`]s.

use std::cell::Cell;
use std::rc::Rc;

use anyhow::{bail, Result};
use redis::aio::MultiplexedConnection;

use crate::contenders::{poll_delay, Contender, LocalFut, WaitSet};

/// The lock TTL the peers use, the same as nlock's bucket TTL in these workloads.
pub const LOCK_TTL_SECS: u64 = 30;

const COMPARE_AND_DELETE: &str = r#"
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
else
    return 0
end"#;

/// Redis, one multiplexed connection per party. A held key is polled with `SET NX` every
/// `poll_delay()`, as Redis lock clients do: Redis has no way to wait for a key.
pub struct Redis {
    pub parties: Vec<MultiplexedConnection>,
    script: Rc<redis::Script>,
    waiting: WaitSet,
    /// Write commands sent: every `SET NX` and every compare-and-delete.
    writes: Rc<Cell<u64>>,
}

impl Redis {
    pub async fn connect(url: &str, parties: usize) -> Result<Redis> {
        let client = redis::Client::open(url)?;
        let mut conns = Vec::with_capacity(parties);
        for _ in 0..parties {
            conns.push(client.get_multiplexed_async_connection().await?);
        }
        Ok(Redis {
            parties: conns,
            script: Rc::new(redis::Script::new(COMPARE_AND_DELETE)),
            waiting: WaitSet::default(),
            writes: Rc::default(),
        })
    }
}

impl Contender for Redis {
    /// The random token written as the value: only its writer may delete the key.
    type Held = String;

    fn acquire(&self, party: usize, key: Rc<str>) -> LocalFut<String> {
        let mut con = self.parties[party].clone();
        let (waiting, writes) = (self.waiting.clone(), self.writes.clone());
        Box::pin(async move {
            let token = format!("{:032x}", rand::random::<u128>());
            loop {
                writes.set(writes.get() + 1);
                let set: Option<String> = redis::cmd("SET")
                    .arg(&*key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(LOCK_TTL_SECS * 1000)
                    .query_async(&mut con)
                    .await?;
                if set.is_some() {
                    waiting.leave(party, &key);
                    return Ok(token);
                }
                // Refused once: it polls from here on.
                waiting.enter(party, &key);
                tokio::time::sleep(poll_delay()).await;
            }
        })
    }

    fn release(&self, party: usize, key: Rc<str>, token: String) -> LocalFut<()> {
        let mut con = self.parties[party].clone();
        let script = self.script.clone();
        self.writes.set(self.writes.get() + 1);
        Box::pin(async move {
            let deleted: i64 = script.key(&*key).arg(&token).invoke_async(&mut con).await?;
            if deleted != 1 {
                bail!("redis: {key} was not ours at release");
            }
            Ok(())
        })
    }

    fn is_waiting(&self, party: usize, key: Rc<str>) -> LocalFut<bool> {
        self.waiting.answer(party, key)
    }

    fn writes_sent(&self) -> Option<u64> {
        Some(self.writes.get())
    }
}

#[cfg(feature = "etcd")]
pub use etcd::Etcd;

#[cfg(feature = "etcd")]
mod etcd {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use anyhow::Result;
    use etcd_client::{Client, LockOptions};

    use crate::contenders::{Contender, LocalFut};

    /// Leases outlive any one workload (they are renewed between batches); a lock key
    /// dies with its lease if a waiter is cancelled.
    const LEASE_TTL_SECS: i64 = 600;

    /// etcd, one client (one gRPC channel) and one lease per party. `lock` blocks in the
    /// server until the key is free (waiters queue in revision order).
    pub struct Etcd {
        clients: Vec<Client>,
        leases: RefCell<Vec<i64>>,
        /// Write requests sent: every `lock` (which puts the waiter's key) and `unlock`.
        writes: Rc<Cell<u64>>,
    }

    impl Etcd {
        pub async fn connect(url: &str, parties: usize) -> Result<Etcd> {
            let mut clients = Vec::with_capacity(parties);
            let mut leases = Vec::with_capacity(parties);
            for _ in 0..parties {
                let mut c = Client::connect([url], None).await?;
                leases.push(c.lease_grant(LEASE_TTL_SECS, None).await?.id());
                clients.push(c);
            }
            Ok(Etcd {
                clients,
                leases: RefCell::new(leases),
                writes: Rc::default(),
            })
        }

        /// Revokes every party's lease (removing any lock key a cancelled waiter left) and
        /// grants fresh ones.
        pub async fn renew_leases(&self) -> Result<()> {
            let old = self.leases.borrow().clone();
            let mut fresh = Vec::with_capacity(old.len());
            for (c, lease) in self.clients.iter().zip(old) {
                let mut c = c.clone();
                let _ = c.lease_revoke(lease).await;
                fresh.push(c.lease_grant(LEASE_TTL_SECS, None).await?.id());
            }
            *self.leases.borrow_mut() = fresh;
            Ok(())
        }
    }

    impl Etcd {
        /// Every key under a lock's prefix, with its create revision and lease (debugging).
        pub async fn dump(&self, name: &str) -> String {
            let mut c = self.clients[0].clone();
            let opts = etcd_client::GetOptions::new().with_prefix();
            match c.get(format!("{name}/"), Some(opts)).await {
                Ok(r) => r
                    .kvs()
                    .iter()
                    .map(|kv| {
                        format!(
                            "{} create_rev={} lease={:x}",
                            String::from_utf8_lossy(kv.key()),
                            kv.create_revision(),
                            kv.lease()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(e) => format!("get failed: {e}"),
            }
        }
    }

    impl Contender for Etcd {
        /// The lock's own key, which `unlock` deletes.
        type Held = Vec<u8>;

        fn acquire(&self, party: usize, key: Rc<str>) -> LocalFut<Vec<u8>> {
            let mut c = self.clients[party].clone();
            let lease = self.leases.borrow()[party];
            self.writes.set(self.writes.get() + 1);
            Box::pin(async move {
                let opts = LockOptions::new().with_lease(lease);
                Ok(c.lock(key.as_bytes(), Some(opts)).await?.key().to_vec())
            })
        }

        fn release(&self, party: usize, _: Rc<str>, lock_key: Vec<u8>) -> LocalFut<()> {
            let mut c = self.clients[party].clone();
            self.writes.set(self.writes.get() + 1);
            Box::pin(async move {
                c.unlock(lock_key).await?;
                Ok(())
            })
        }

        /// The server has put this party's key under the lock's prefix (`<name>/<lease>`,
        /// as etcd's lock service names it): from then on it is queued by that key's revision.
        fn is_waiting(&self, party: usize, key: Rc<str>) -> LocalFut<bool> {
            let mut c = self.clients[party].clone();
            let lease = self.leases.borrow()[party];
            Box::pin(async move {
                let opts = etcd_client::GetOptions::new().with_count_only();
                let r = c.get(format!("{key}/{lease:x}"), Some(opts)).await?;
                Ok(r.count() > 0)
            })
        }

        fn writes_sent(&self) -> Option<u64> {
            Some(self.writes.get())
        }
    }
}
