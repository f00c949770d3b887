//! [`TcpProxy`]: a loopback TCP proxy between a client and a NATS server that a test can make
//! slow, lossy or partitioned at runtime, to exercise timeouts, lease expiry and reconnects.
//!
//! Clients behind a proxy in front of a cluster node should use
//! `ConnectOptions::ignore_discovered_servers()`, or they may bypass the proxy by reconnecting to
//! a server URL learned from the cluster's INFO.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What the proxy does with the bytes of every connection, current and future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Forward everything unchanged.
    #[default]
    Pass,
    /// Delay each chunk, in each direction, by `fixed` ± a uniform random `jitter` (floored at
    /// zero). Order within a direction is kept: a chunk is never sent before an earlier one.
    Delay {
        /// Base one-way latency.
        fixed: Duration,
        /// Maximum random deviation from `fixed`, either way.
        jitter: Duration,
    },
    /// Discard bytes from server to client; still forward client to server. The client's
    /// publishes land but it sees no replies, PONGs or messages. Switching back to `Pass` may
    /// resume in the middle of a protocol line, which the client will treat as an error.
    DropReplies,
    /// Forward nothing either way and stop reading, so TCP back-pressure builds up as in a
    /// network partition; connections stay open. Held bytes flow again when the mode changes.
    /// New connections are accepted but not connected upstream until the mode changes.
    Blackhole,
}

/// Size of one read; NATS frames larger than this are simply forwarded as several chunks.
const CHUNK: usize = 16 * 1024;

/// A fault-injecting TCP proxy listening on `127.0.0.1:<random>` and forwarding to one
/// upstream address. Dropping it closes the listener and every proxied connection.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    conns: Arc<Mutex<HashMap<u64, AbortHandle>>>,
    accepted: Arc<AtomicU64>,
    listener: AbortHandle,
}

impl TcpProxy {
    /// Starts a proxy in [`ProxyMode::Pass`] forwarding to `upstream` (e.g.
    /// `NatsServer::addr()`). Must be called inside a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy: local_addr");
        let (mode, mode_rx) = watch::channel(ProxyMode::Pass);
        let conns: Arc<Mutex<HashMap<u64, AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode_rx,
            Arc::clone(&conns),
            Arc::clone(&accepted),
        ));
        TcpProxy {
            addr,
            upstream,
            mode,
            conns,
            accepted,
            listener: task.abort_handle(),
        }
    }

    /// Address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://127.0.0.1:PORT` of the proxy, for `async_nats::connect`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The address being proxied.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Changes the behaviour of all open and future connections; takes effect for the next
    /// chunk read (bytes already queued by `Delay` keep their due time).
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// Closes every currently open proxied connection (both sockets), as a network failure
    /// would. The listener keeps accepting. Closing completes asynchronously, within a
    /// scheduler tick; observe it from the client side.
    pub fn cut(&self) {
        for (_, handle) in lock(&self.conns).drain() {
            handle.abort();
        }
    }

    /// Number of proxied connections currently open, e.g. to wait for a client to reconnect.
    pub fn open_connections(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Number of connections accepted since start.
    pub fn accepted_connections(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.cut();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Receiver<ProxyMode>,
    conns: Arc<Mutex<HashMap<u64, AbortHandle>>>,
    accepted: Arc<AtomicU64>,
) {
    let mut next_id: u64 = 0;
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // E.g. out of file descriptors: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let id = next_id;
        next_id += 1;
        let registry = Arc::clone(&conns);
        let mode = mode.clone();
        // Hold the lock while spawning so the task cannot deregister before it is registered.
        let mut guard = lock(&conns);
        let task = tokio::spawn(async move {
            serve(client, upstream, mode).await;
            lock(&registry).remove(&id);
        });
        guard.insert(id, task.abort_handle());
    }
}

/// Proxies one connection until either side closes or fails (or the task is aborted).
async fn serve(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<ProxyMode>) {
    // A blackholed connection is accepted but stalls before reaching the server.
    if unblocked(&mut mode).await.is_none() {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return; // Upstream down: the client sees its connection closed.
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_rd, client_wr) = client.into_split();
    let (server_rd, server_wr) = server.into_split();
    tokio::select! {
        () = pump(client_rd, server_wr, mode.clone(), false) => {}
        () = pump(server_rd, client_wr, mode, true) => {}
    }
}

/// Waits until the mode is not `Blackhole` and returns it; None once the proxy is dropped.
async fn unblocked(mode: &mut watch::Receiver<ProxyMode>) -> Option<ProxyMode> {
    mode.wait_for(|m| *m != ProxyMode::Blackhole)
        .await
        .ok()
        .map(|m| *m)
}

/// Copies one direction, applying the mode per chunk. A reader stamps each chunk with a due
/// time and queues it; a writer sends chunks in order once due. Returns when the source
/// reaches EOF/error (after flushing the queue) or the destination fails; the caller then
/// closes both sockets.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
    to_client: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut writer_mode = mode.clone();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut last_due = Instant::now();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let Some(current) = unblocked(&mut mode).await else {
                break;
            };
            let delay = match current {
                ProxyMode::DropReplies if to_client => continue,
                ProxyMode::Delay { fixed, jitter } => sample_delay(fixed, jitter),
                _ => Duration::ZERO,
            };
            let due = (Instant::now() + delay).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        // Closing the queue lets the writer flush what is queued and then finish.
        drop(tx);
        std::future::pending::<()>().await;
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if unblocked(&mut writer_mode).await.is_none() || to.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    // The writer decides when this direction is over: queue drained after EOF, or write error.
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}

/// `fixed` ± uniform `jitter`, never negative.
fn sample_delay(fixed: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return fixed;
    }
    let j = jitter.as_secs_f64();
    let offset = rand::rng().random_range(-j..=j);
    Duration::from_secs_f64((fixed.as_secs_f64() + offset).max(0.0))
}
