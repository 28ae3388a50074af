//! A client that opens connections and never finishes a request's headers
//! (a slowloris) is disconnected after EASEL_HTTP_HEADER_TIMEOUT_SECS, on
//! the client and admin ports alike, while complete requests are served.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a connection and sends half an upgrade request.
async fn half_request(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: easel\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    tcp
}

/// Whether the server closes the connection within `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 or the like, then the close
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_and_whole_ones_served() {
    let g = Gateway::start(settings("a", None, &["--http-header-timeout-secs=1"])).await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..50 {
        stalled.push(half_request(g.addr).await);
    }
    let mut admin = half_request(g.admin).await;
    // Meanwhile a whole request and a WebSocket client are served.
    assert_eq!(testkit::http::status(g.admin, "/healthz").await, Some(200));
    let mut client = g.client("alice").await;
    join_ok(&mut client, 1, "c", false).await;
    for tcp in &mut stalled {
        assert!(
            closed_within(tcp, Duration::from_secs(5)).await,
            "a half-sent request outlived the header timeout"
        );
    }
    assert!(closed_within(&mut admin, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    // The WebSocket, past its headers, is not subject to the deadline.
    client.send(&draw(2, "c", 1, 1, 1)).await;
    expect_ack(&mut client, 2).await;
    g.stop().await;
}
