//! [`NatsCluster`]: a small JetStream cluster (nodes `n0`, `n1`, ...) on loopback, for tests of
//! replicated (R3) KV buckets, leader failover and node crashes.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::server::{wait_jetstream_api, NatsServer};

/// How long the whole cluster may take to form and elect a JetStream meta leader. Raft
/// election timeouts in nats-server are several seconds, and a 2-core machine may be busy
/// compiling; 30 s keeps a slow but working start from failing.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeout of one JetStream API request to the cluster: answers normally take milliseconds,
/// but a request landing during an election may need a couple of seconds.
const API_TIMEOUT: Duration = Duration::from_secs(2);

/// Name given to every node's `cluster { name }`.
const CLUSTER_NAME: &str = "nlock-test";

/// A running JetStream cluster whose nodes are [`NatsServer`]s, so each can be killed,
/// paused, resumed or restarted (same client and cluster ports, same store dir).
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` nodes (use 3 for R3 streams), fully meshed by explicit routes, and waits
    /// until every node answers `$JS.API.INFO` (which implies an elected meta leader).
    /// Retries once if a pre-chosen cluster port was taken in between. Panics with the
    /// nodes' log tails on failure.
    pub async fn start(n: usize) -> NatsCluster {
        assert!(n > 0, "a cluster needs at least one node");
        let mut last_err = String::new();
        for _attempt in 0..2 {
            match Self::try_start(n).await {
                Ok(cluster) => {
                    cluster.wait_ready().await;
                    return cluster;
                }
                Err(e) => last_err = e,
            }
        }
        panic!("cluster start failed twice; last error: {last_err}");
    }

    async fn try_start(n: usize) -> Result<NatsCluster, String> {
        let cluster_ports = free_ports(n);
        let mut nodes = Vec::with_capacity(n);
        for (i, port) in cluster_ports.iter().enumerate() {
            let routes: Vec<String> = cluster_ports
                .iter()
                .filter(|p| *p != port)
                .map(|p| format!("    nats-route://127.0.0.1:{p}"))
                .collect();
            let config = format!(
                "server_name: {name}\ncluster {{\n  name: {CLUSTER_NAME}\n  listen: \
                 127.0.0.1:{port}\n  routes: [\n{routes}\n  ]\n}}\n",
                name = Self::server_name(i),
                routes = routes.join("\n"),
            );
            // The JetStream API needs a quorum, so each node only waits for its own port here.
            let node = NatsServer::builder()
                .config(config)
                .wait_for_jetstream(false)
                .try_start()
                .await?;
            nodes.push(node);
        }
        Ok(NatsCluster { nodes })
    }

    /// Waits (bounded) until every running node answers the JetStream API, e.g. after a
    /// node restart. Panics with all nodes' log tails if not.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = wait_jetstream_api(&node.url(), left).await {
                panic!("cluster node n{i} not ready: {e}\n{}", self.log_tails());
            }
        }
    }

    /// Server name of node `i` (`n0`, `n1`, ...), as reported in JetStream cluster info.
    pub fn server_name(i: usize) -> String {
        format!("n{i}")
    }

    /// Index of the node with this server name.
    pub fn node_index(&self, server_name: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| Self::server_name(i) == server_name)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`, to kill, pause, resume or restart it.
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// All nodes.
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// Client URLs of all nodes. A `Vec<String>` is what `async_nats::connect` accepts as a
    /// server list (`ToServerAddrs`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// Comma-joined client URLs, for APIs taking one string (the `nats` CLI, config files).
    /// `async_nats::connect` does NOT split on commas: pass [`Self::urls`] to it instead.
    pub fn url_all(&self) -> String {
        self.urls().join(",")
    }

    /// Connects a plain client to all nodes (it fails over between them).
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::connect(self.urls())
            .await
            .expect("connect to cluster")
    }

    /// Index of the current Raft leader of `stream`, from `$JS.API.STREAM.INFO.<stream>`'s
    /// `cluster.leader`; None if the stream is unknown, leaderless or the API did not answer.
    pub async fn stream_leader(&self, client: &async_nats::Client, stream: &str) -> Option<usize> {
        let req = async_nats::Request::new().timeout(Some(API_TIMEOUT));
        let msg = client
            .send_request(format!("$JS.API.STREAM.INFO.{stream}"), req)
            .await
            .ok()?;
        let info: serde_json::Value = serde_json::from_slice(&msg.payload).ok()?;
        self.node_index(info.get("cluster")?.get("leader")?.as_str()?)
    }

    /// Polls [`Self::stream_leader`] until `stream` has a leader (bounded by `timeout`) and
    /// returns its node index; panics on timeout.
    pub async fn wait_for_stream_leader(
        &self,
        client: &async_nats::Client,
        stream: &str,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.stream_leader(client, stream).await {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} has no leader after {timeout:?}\n{}",
                self.log_tails()
            );
            // Elections take seconds; polling every 50 ms is plenty.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until `stream` has a leader and every other replica reports itself
    /// current. A node restarted after a fault must catch up before it can stand in for the
    /// next faulty leader: faults a test injects one after another need this in between.
    pub async fn wait_for_stream_current(
        &self,
        client: &async_nats::Client,
        stream: &str,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let req = async_nats::Request::new().timeout(Some(API_TIMEOUT));
            let info = client
                .send_request(format!("$JS.API.STREAM.INFO.{stream}"), req)
                .await
                .ok()
                .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok());
            let current = info.as_ref().is_some_and(|i| {
                let replicas = i["cluster"]["replicas"].as_array();
                i["cluster"]["leader"].is_string()
                    && replicas.is_some_and(|r| {
                        r.len() + 1 == self.len() && r.iter().all(|p| p["current"] == true)
                    })
            });
            if current {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} replicas not current after {timeout:?}: {info:?}"
            );
            // Catch-up takes up to seconds; polling every 100 ms is plenty.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks `stream`'s leader to step down until the leader is some node other than `avoid`
    /// (bounded by `timeout`), and returns the new leader's index. Lets a test fault the
    /// leader while its clients stay connected to a healthy node.
    pub async fn move_leader_off(
        &self,
        client: &async_nats::Client,
        stream: &str,
        avoid: usize,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.wait_for_stream_leader(client, stream, timeout).await;
            if leader != avoid {
                return leader;
            }
            let req = async_nats::Request::new().timeout(Some(API_TIMEOUT));
            let _ = client
                .send_request(format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}"), req)
                .await;
            assert!(
                Instant::now() < deadline,
                "stream {stream} leader stayed on n{avoid} for {timeout:?}"
            );
            // A step-down hands over within a second; check again shortly.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| format!("--- n{i} log (tail) ---\n{}", node.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Picks `n` distinct free loopback ports by binding them all at once, then releasing them.
/// Another process could grab one before the server binds it; `start` retries once for that.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}
