//! Connection and process lifecycle: graceful shutdown, keepalive and idle
//! timeout, health and readiness.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{RawWs, send_upgrade};
use common::*;
use shared::protocol::ServerMessage;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::http::status as http_status;
use testkit::ws::{Connect, WsClient};
use testkit::{RedisServer, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_1012_and_returns() {
    let g = Gateway::start(settings("bye", None, &["--shutdown-grace-secs=5"])).await;
    let mut a = g.client("a").await;
    let mut b = g.client("b").await;
    join_ok(&mut a, 1, "board", false).await;
    assert_eq!(http_status(g.admin, "/readyz").await, Some(200));
    // Probes and metrics live on the admin port only.
    for path in ["/readyz", "/healthz", "/metrics"] {
        assert_eq!(http_status(g.addr, path).await, Some(404), "{path}");
    }
    assert_eq!(http_status(g.admin, "/metrics").await, Some(200));
    let addr = g.addr;
    let started = Instant::now();
    g.shutdown.cancel();
    for c in [&mut a, &mut b] {
        assert_eq!(c.closed().await.code, Some(1012));
    }
    tokio::time::timeout(Duration::from_secs(5), g.handle)
        .await
        .expect("run returned in time")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        WsClient::connect(addr, Connect::token(&token("late")))
            .await
            .is_err(),
        "still accepting after shutdown"
    );
}

/// Opens a WebSocket by hand and reads frames without ever writing one (no
/// pongs), until the server's close frame; returns its code.
async fn silent_client_close_code(addr: SocketAddr) -> u16 {
    let mut s = send_upgrade(addr, "silent").await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no close frame");
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection ended without a close frame");
        buf.extend_from_slice(&chunk[..n]);
        // Skip the HTTP response, then walk the (unmasked) server frames.
        let Some(body) = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| at + 4)
        else {
            continue;
        };
        let mut at = body;
        while at + 2 <= buf.len() {
            let opcode = buf[at] & 0x0f;
            let (len, header) = match buf[at + 1] & 0x7f {
                126 if at + 4 <= buf.len() => (
                    usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])),
                    4,
                ),
                126 => break,
                n => (usize::from(n), 2),
            };
            if at + header + len > buf.len() {
                break;
            }
            if opcode == 0x8 {
                return u16::from_be_bytes([buf[at + header], buf[at + header + 1]]);
            }
            at += header + len;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_closed_after_the_idle_timeout_but_a_live_one_stays() {
    let g = Gateway::start(settings(
        "idle",
        None,
        &["--ping-interval-secs=1", "--idle-timeout-secs=2"],
    ))
    .await;
    // This client reads (so it answers the server's pings automatically).
    let mut live = g.client("live").await;
    // This one reads raw bytes and never writes, so never answers a ping.
    let started = Instant::now();
    let silent = tokio::spawn(silent_client_close_code(g.addr));
    // Four seconds of reading, past the idle timeout: pings arrive and are
    // answered; no close.
    assert!(live.recv_within(Duration::from_secs(4)).await.is_none());
    assert_eq!(silent.await.unwrap(), 4009);
    assert!(started.elapsed() >= Duration::from_secs(3));
    // The live client is still served.
    live.send(&shared::protocol::ClientMessage::Ping(
        shared::protocol::Ping { id: None, ts: None },
    ))
    .await;
    assert!(matches!(live.recv().await, ServerMessage::Pong(_)));
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis_and_health_does_not() {
    let mut redis = RedisServer::start();
    let g = Gateway::start(settings("ready", Some(&redis), &[])).await;
    eventually(Duration::from_secs(5), "ready with redis up", || async {
        http_status(g.admin, "/readyz").await == Some(200)
    })
    .await;
    redis.kill();
    eventually(
        Duration::from_secs(15),
        "unready with redis down",
        || async { http_status(g.admin, "/readyz").await == Some(503) },
    )
    .await;
    assert_eq!(http_status(g.admin, "/healthz").await, Some(200));
    // A join now fails with a code instead of hanging.
    let mut c = g.client("u").await;
    c.send(&join(1, "board", false)).await;
    let e = expect_error(&mut c).await;
    assert_eq!(e.code, shared::ErrorCode::Unavailable);
    redis.restart();
    eventually(Duration::from_secs(15), "ready again", || async {
        http_status(g.admin, "/readyz").await == Some(200)
    })
    .await;
    join_ok(&mut c, 2, "board", false).await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refuses_to_start_without_its_redis() {
    let port = testkit::free_port();
    let mut s = settings("nope", None, &[]);
    s.redis = Some(gateway::RedisSettings::new(&format!(
        "redis://127.0.0.1:{port}"
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = gateway::run(
        s,
        listener,
        admin,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("redis"), "{err}");
}

/// Opens a WebSocket by hand and returns the socket once the upgrade's
/// response has arrived.
async fn raw_upgrade(addr: SocketAddr, user: &str) -> tokio::net::TcpStream {
    RawWs::upgrade(addr, user).await.stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gone_without_a_close_frame_is_a_normal_end_and_a_broken_frame_a_protocol_error() {
    let g = Gateway::start(settings("gone", None, &[])).await;
    let closed = |reason: &'static str| {
        let admin = g.admin;
        async move {
            let series = format!(r#"easel_gateway_connections_closed_total{{reason="{reason}"}}"#);
            testkit::http::sample(&testkit::http::scrape(admin).await, &series)
        }
    };
    // The process or tab is gone: its socket closes with no Close frame.
    drop(raw_upgrade(g.addr, "gone").await);
    eventually(
        Duration::from_secs(10),
        "the dropped peer counted",
        || async { closed("normal").await == Some(1.0) },
    )
    .await;
    assert_eq!(closed("protocol_error").await, Some(0.0));
    // A client frame without a mask breaks the protocol.
    let mut broken = raw_upgrade(g.addr, "broken").await;
    broken.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the broken frame counted",
        || async { closed("protocol_error").await == Some(1.0) },
    )
    .await;
    assert_eq!(closed("normal").await, Some(1.0));
    g.stop().await;
}
