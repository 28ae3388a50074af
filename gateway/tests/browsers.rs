//! What a browser client needs of the gateway: CORS on the REST API and
//! the SSE streams for allowed origins (preflight included, the X-Easel-*
//! headers readable), none for others or for the server API; and a clean
//! close: the gateway answers a client's Close frame with its own.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use testkit::http::request_with;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const ALLOWED: &str = "https://app.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_sse_answer_allowed_origins_only() {
    let g = Gateway::start(settings("cors", None, &[])).await;
    let bearer = format!("Bearer {}", token("web"));
    // The preflight a browser sends before a POST with a token.
    let preflight = [
        ("Origin", ALLOWED),
        ("Access-Control-Request-Method", "POST"),
        (
            "Access-Control-Request-Headers",
            "authorization, content-type",
        ),
    ];
    let (status, h, _) =
        request_with(g.addr, "OPTIONS", "/api/canvases/c/draw", &preflight, None).await;
    assert!(status == 200 || status == 204, "{status}");
    assert_eq!(h["access-control-allow-origin"], ALLOWED);
    assert!(h["access-control-allow-methods"].contains("POST"));
    assert!(
        h["access-control-allow-headers"]
            .to_lowercase()
            .contains("authorization")
    );
    // The request itself, and its headers readable.
    let headers = [("Origin", ALLOWED), ("Authorization", bearer.as_str())];
    let path = "/api/canvases/c/snapshot";
    let (status, h, _) = request_with(g.addr, "GET", path, &headers, None).await;
    assert_eq!(status, 200);
    assert_eq!(h["access-control-allow-origin"], ALLOWED);
    assert!(h["access-control-expose-headers"].contains("x-easel-seq"));
    // Another origin gets no CORS headers (the browser blocks the read).
    let other = [
        ("Origin", "https://evil.example"),
        ("Authorization", bearer.as_str()),
    ];
    let (_, h, _) = request_with(g.addr, "GET", path, &other, None).await;
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");
    // The server API is for backends: no CORS even for an allowed origin.
    let server = [
        ("Origin", ALLOWED),
        ("Access-Control-Request-Method", "POST"),
    ];
    let (_, h, _) = request_with(g.addr, "OPTIONS", "/api/server/broadcast", &server, None).await;
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");
    // An SSE stream: read its head only (the body never ends).
    let mut tcp = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let req = format!(
        "GET /sse/canvases/c?token={} HTTP/1.1\r\nHost: x\r\nOrigin: {ALLOWED}\r\n\r\n",
        token("web")
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 1024];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream ended");
        raw.extend_from_slice(&buf[..n]);
    }
    let (status, h, _) = testkit::http::parse_response(&raw);
    assert_eq!(status, 200);
    assert_eq!(h["access-control-allow-origin"], ALLOWED);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_with_a_close() {
    let g = Gateway::start(settings("close", None, &[])).await;
    let mut client = g.client("leaver").await;
    join_ok(&mut client, 1, "c", false).await;
    let mut ws = client.into_inner();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("no close frame came back: {other:?}"),
            }
        }
    })
    .await
    .expect("the gateway answered the close");
    assert_eq!(answer, Some(1000));
    g.stop().await;
}
