//! Tests of the test harness itself: if these fail, nlock's integration tests cannot be
//! trusted. Each test uses plain `async_nats` (no nlock code) against real servers.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, Event, Request, RequestErrorKind};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{
    init_tracing, must_eventually, server_round_trip, wait_until, NatsCluster, NatsServer,
    ProxyMode, TcpProxy,
};

/// Bound for things that take milliseconds on loopback; generous for a loaded 2-core machine.
const SHORT: Duration = Duration::from_secs(5);

/// Request timeout used to show that something does NOT answer: long enough that a healthy
/// loopback path (sub-millisecond) would certainly answer, short to keep the tests fast.
const NO_ANSWER: Duration = Duration::from_millis(300);

/// Bound for Raft elections and cluster-wide changes (election timeouts are seconds).
const ELECTION: Duration = Duration::from_secs(30);

async fn connect(url: &str) -> Client {
    ConnectOptions::new()
        .connection_timeout(SHORT)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Answers every request on `subject` with its own payload; the server has processed the SUB
/// before this returns, so requests from other connections cannot race it.
async fn spawn_echo(client: &Client, subject: &str) {
    let mut sub = client
        .subscribe(subject.to_string())
        .await
        .expect("subscribe");
    server_round_trip(client).await;
    let client = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = client.publish(reply, msg.payload).await;
            }
        }
    });
}

async fn request(
    client: &Client,
    subject: &str,
    payload: &str,
    timeout: Duration,
) -> Option<String> {
    let req = Request::new()
        .payload(payload.to_string().into())
        .timeout(Some(timeout));
    let msg = client.send_request(subject.to_string(), req).await.ok()?;
    Some(String::from_utf8_lossy(&msg.payload).into_owned())
}

async fn assert_times_out(client: &Client, subject: &str) {
    let req = Request::new().payload("x".into()).timeout(Some(NO_ANSWER));
    let err = client
        .send_request(subject.to_string(), req)
        .await
        .expect_err("expected timeout");
    assert_eq!(err.kind(), RequestErrorKind::TimedOut, "{err}");
}

/// Reads the server's first protocol line (`INFO {...}`) from a raw TCP connection.
async fn read_info_line(conn: &mut BufReader<TcpStream>, timeout: Duration) -> Option<String> {
    let mut line = String::new();
    match tokio::time::timeout(timeout, conn.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => Some(line),
        _ => None,
    }
}

#[tokio::test]
async fn wait_until_reports_success_and_timeout() {
    let start = Instant::now();
    assert!(
        wait_until(SHORT, || async {
            start.elapsed() >= Duration::from_millis(30)
        })
        .await
    );
    assert!(!wait_until(Duration::from_millis(50), || async { false }).await);
    assert!(start.elapsed() >= Duration::from_millis(80));
}

#[tokio::test]
async fn server_starts_and_plain_client_round_trips() {
    init_tracing();
    let server = NatsServer::start().await;
    assert_ne!(server.port(), 0);
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    assert!(
        server.version() >= (2, 9, 0),
        "version {:?}",
        server.version()
    );
    assert!(server.pid().is_some());
    assert!(server.log_path().is_file());

    let client = connect(&server.url()).await;
    let info = client.server_info();
    assert_eq!(info.port, server.port());
    let (major, minor, patch) = server.version();
    assert_eq!(info.version, format!("{major}.{minor}.{patch}"));

    spawn_echo(&client, "echo").await;
    assert_eq!(
        request(&client, "echo", "ping", SHORT).await.as_deref(),
        Some("ping")
    );

    let mut sub = client.subscribe("events").await.unwrap();
    client.publish("events", "hello".into()).await.unwrap();
    client.flush().await.unwrap();
    let msg = tokio::time::timeout(SHORT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.payload.as_ref(), b"hello");
}

#[tokio::test]
async fn builder_applies_config_text_and_extra_args() {
    let server = NatsServer::builder()
        .config("max_payload: 4096\n")
        .extra_args(["--server_name", "custom-name"])
        .start()
        .await;
    let client = connect(&server.url()).await;
    assert_eq!(client.server_info().max_payload, 4096);
    assert_eq!(client.server_info().server_name, "custom-name");
}

#[tokio::test]
async fn restart_keeps_port_and_file_storage_and_kill_stops() {
    init_tracing();
    let server = NatsServer::start().await;
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "RESTART".into(),
        subjects: vec!["restart.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create stream");
    js.publish("restart.a", "kept".into())
        .await
        .unwrap()
        .await
        .expect("publish ack");

    let (port, pid) = (server.port(), server.pid().unwrap());
    server.restart().await;
    assert_eq!(server.port(), port);
    assert_ne!(server.pid().unwrap(), pid);

    let fresh = jetstream::new(connect(&server.url()).await);
    let mut restored = fresh
        .get_stream("RESTART")
        .await
        .expect("stream survives restart");
    assert_eq!(restored.info().await.unwrap().state.messages, 1);
    let msg = restored.get_raw_message(1).await.unwrap();
    assert_eq!(msg.payload.as_ref(), b"kept");
    // The same port lets an already connected client find the server again.
    must_eventually(SHORT, "old client reconnects", || async {
        client.connection_state() == async_nats::connection::State::Connected
    })
    .await;

    server.kill();
    assert!(server.pid().is_none());
    assert!(
        TcpStream::connect(server.addr()).await.is_err(),
        "killed server still listens"
    );
    // A killed server can be restarted, and stopped gracefully.
    server.restart().await;
    assert_eq!(server.port(), port);
    server.stop().await;
    assert!(!server.is_running());
    assert!(TcpStream::connect(server.addr()).await.is_err());
}

#[tokio::test]
async fn failed_start_reports_the_server_output() {
    let err = NatsServer::builder()
        .config("this is { not a valid config\n")
        .try_start()
        .await
        .expect_err("a broken config must not start");
    assert!(err.contains("exited"), "{err}");
    assert!(err.contains("stdio.log"), "{err}");
}

#[tokio::test]
async fn pause_stalls_and_resume_recovers() {
    let server = NatsServer::start().await;
    let client = connect(&server.url()).await;
    spawn_echo(&client, "echo").await;

    server.pause();
    assert!(server.is_running(), "a paused process is still alive");
    assert_times_out(&client, "echo").await;
    server.resume();
    must_eventually(SHORT, "request after resume", || async {
        request(&client, "echo", "back", NO_ANSWER).await.as_deref() == Some("back")
    })
    .await;
}

#[tokio::test]
async fn proxy_passes_traffic_both_ways() {
    let server = NatsServer::start().await;
    let proxy = TcpProxy::start(server.addr()).await;
    let direct = connect(&server.url()).await;
    let proxied = connect(&proxy.url()).await;
    assert_eq!(proxy.accepted_connections(), 1);
    assert_eq!(proxy.open_connections(), 1);

    spawn_echo(&direct, "echo").await;
    assert_eq!(
        request(&proxied, "echo", "via proxy", SHORT)
            .await
            .as_deref(),
        Some("via proxy")
    );

    let mut sub = proxied.subscribe("to.proxied").await.unwrap();
    server_round_trip(&proxied).await;
    direct.publish("to.proxied", "down".into()).await.unwrap();
    let msg = tokio::time::timeout(SHORT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.payload.as_ref(), b"down");
}

#[tokio::test]
async fn proxy_blackhole_times_out_stalls_new_connections_and_heals() {
    let server = NatsServer::start().await;
    let proxy = TcpProxy::start(server.addr()).await;
    let direct = connect(&server.url()).await;
    let proxied = connect(&proxy.url()).await;
    spawn_echo(&direct, "echo").await;
    assert_eq!(
        request(&proxied, "echo", "warm", SHORT).await.as_deref(),
        Some("warm")
    );

    proxy.set_mode(ProxyMode::Blackhole);
    assert_eq!(proxy.mode(), ProxyMode::Blackhole);
    assert_times_out(&proxied, "echo").await;
    // A new connection is accepted by TCP but the server's INFO never arrives.
    let mut raw = BufReader::new(TcpStream::connect(proxy.addr()).await.unwrap());
    assert_eq!(read_info_line(&mut raw, NO_ANSWER).await, None);

    proxy.set_mode(ProxyMode::Pass);
    let info = read_info_line(&mut raw, SHORT)
        .await
        .expect("INFO after heal");
    assert!(info.starts_with("INFO "), "{info}");
    must_eventually(SHORT, "request after heal", || async {
        request(&proxied, "echo", "healed", NO_ANSWER)
            .await
            .as_deref()
            == Some("healed")
    })
    .await;
}

#[tokio::test]
async fn proxy_drop_replies_forwards_publishes_only() {
    let server = NatsServer::start().await;
    let proxy = TcpProxy::start(server.addr()).await;
    let direct = connect(&server.url()).await;
    let proxied = connect(&proxy.url()).await;
    spawn_echo(&direct, "echo").await;
    let mut sub = direct.subscribe("landed").await.unwrap();
    server_round_trip(&direct).await;

    proxy.set_mode(ProxyMode::DropReplies);
    assert_times_out(&proxied, "echo").await;
    proxied.publish("landed", "one-way".into()).await.unwrap();
    let msg = tokio::time::timeout(SHORT, sub.next())
        .await
        .expect("publish lands")
        .unwrap();
    assert_eq!(msg.payload.as_ref(), b"one-way");
}

#[tokio::test]
async fn proxy_cut_closes_connections_and_clients_reconnect() {
    let server = NatsServer::start().await;
    let proxy = TcpProxy::start(server.addr()).await;

    let mut raw = BufReader::new(TcpStream::connect(proxy.addr()).await.unwrap());
    assert!(read_info_line(&mut raw, SHORT).await.is_some());
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let proxied = ConnectOptions::new()
        .event_callback(move |event| {
            let events_tx = events_tx.clone();
            async move {
                let _ = events_tx.send(event);
            }
        })
        .connect(proxy.url())
        .await
        .unwrap();
    let direct = connect(&server.url()).await;
    spawn_echo(&direct, "echo").await;
    assert_eq!(
        request(&proxied, "echo", "before", SHORT).await.as_deref(),
        Some("before")
    );
    assert_eq!(proxy.open_connections(), 2);

    proxy.cut();
    assert_eq!(proxy.open_connections(), 0);
    // The raw connection sees EOF (or a reset).
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(SHORT, raw.read(&mut buf))
        .await
        .expect("EOF after cut");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "unexpected data after cut: {read:?}"
    );
    // The NATS client notices, reconnects through the still-listening proxy, and works.
    let deadline = Instant::now() + SHORT;
    let mut seen = Vec::new();
    while !(seen.contains(&"disconnected") && seen.last() == Some(&"connected")) {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.recv()).await;
        let event = event
            .unwrap_or_else(|_| panic!("no reconnect, events: {seen:?}"))
            .unwrap();
        seen.push(match event {
            Event::Disconnected => "disconnected",
            Event::Connected => "connected",
            _ => "other",
        });
    }
    assert_eq!(
        request(&proxied, "echo", "after", SHORT).await.as_deref(),
        Some("after")
    );
    assert_eq!(proxy.accepted_connections(), 3);
}

/// Upstream for byte-level proxy tests: echoes every connection back to itself.
async fn tcp_echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = conn.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_delay_adds_latency_and_keeps_order() {
    let proxy = TcpProxy::start(tcp_echo_server().await).await;
    let (fixed, jitter) = (Duration::from_millis(100), Duration::from_millis(20));
    proxy.set_mode(ProxyMode::Delay { fixed, jitter });
    let conn = TcpStream::connect(proxy.addr()).await.unwrap();
    conn.set_nodelay(true).unwrap();
    let (rd, mut wr) = conn.into_split();
    let mut rd = BufReader::new(rd);

    // One round trip crosses the proxy twice, each at least fixed - jitter late.
    let start = Instant::now();
    wr.write_all(b"first\n").await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(SHORT, rd.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, "first\n");
    let rtt = start.elapsed();
    assert!(
        rtt >= 2 * (fixed - jitter),
        "round trip {rtt:?} too fast for the delay"
    );

    // Many separate writes, each with its own random delay, still arrive in order.
    let lines: Vec<String> = (0..200).map(|i| format!("line {i}\n")).collect();
    let expected = lines.concat();
    let writer = tokio::spawn(async move {
        for l in lines {
            wr.write_all(l.as_bytes()).await.unwrap();
            tokio::task::yield_now().await;
        }
        wr
    });
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(SHORT, rd.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), expected);
    drop(writer.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_elects_stream_leader_and_fails_over() {
    init_tracing();
    let cluster = NatsCluster::start(3).await;
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.urls().len(), 3);
    assert_eq!(cluster.url_all().matches(',').count(), 2);
    let client = cluster.connect().await;
    let js = jetstream::new(client.clone());
    let config = stream::Config {
        name: "R3".into(),
        subjects: vec!["r3.>".into()],
        num_replicas: 3,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    // Right after the meta leader is elected, peers may not yet have reported JetStream
    // resources, so creation is retried until it succeeds.
    must_eventually(ELECTION, "R3 stream created", || async {
        js.get_or_create_stream(config.clone()).await.is_ok()
    })
    .await;

    let leader = cluster
        .wait_for_stream_leader(&client, "R3", ELECTION)
        .await;
    assert!(leader < 3);
    assert_eq!(cluster.stream_leader(&client, "R3").await, Some(leader));
    assert_eq!(cluster.stream_leader(&client, "NO_SUCH_STREAM").await, None);

    let old_port = cluster.node(leader).port();
    cluster.node(leader).kill();
    must_eventually(ELECTION, "a different node leads R3", || async {
        matches!(cluster.stream_leader(&client, "R3").await, Some(i) if i != leader)
    })
    .await;

    cluster.node(leader).restart().await;
    assert_eq!(cluster.node(leader).port(), old_port);
    cluster.wait_ready().await;
}
