//! The REST fallback: draw and cursor over HTTP on one gateway reach
//! WebSocket members on another, with the same validation, roles and rate
//! limits; activity lists the latest durable events.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::auth::{MintClaims, Role, mint_hs256};
use shared::protocol::{HistoryPage, ServerMessage};
use std::net::SocketAddr;
use testkit::RedisServer;
use testkit::http::post;

fn spectator(user: &str) -> String {
    let mut claims = MintClaims::for_user(user, 600);
    claims.role = Some(Role::Spectator);
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

/// POSTs and returns the status and the JSON body.
async fn call(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, _, raw) = post(addr, path, token, body).await;
    (
        status,
        serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_draws_and_cursors_reach_websocket_members_on_other_gateways() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("rest-a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("rest-b", Some(&redis), &[])).await;
    let mut watcher = a.client("watcher").await;
    join_ok(&mut watcher, 1, "rest", false).await;
    let t = token("poster");

    let (status, ack) = call(
        b.addr,
        "/api/canvases/rest/draw",
        Some(&t),
        r#"{"pixels": [{"x": 3, "y": 4, "color": 5}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    let seq = ack["seq"].as_u64().unwrap();
    match watcher.recv().await {
        ServerMessage::Draw(d) => {
            assert_eq!(d.seq, Some(seq));
            assert_eq!(d.author.id, "poster");
            assert_eq!((d.pixels[0].x, d.pixels[0].y, d.pixels[0].color), (3, 4, 5));
        }
        other => panic!("{other:?}"),
    }
    let (status, _) = call(
        b.addr,
        "/api/canvases/rest/cursor",
        Some(&t),
        r#"{"x": 1.5, "y": 2}"#,
    )
    .await;
    assert_eq!(status, 202);
    match watcher.recv().await {
        ServerMessage::Cursor(c) => {
            assert_eq!((c.x, c.y, c.author.id.as_str()), (1.5, 2.0, "poster"))
        }
        other => panic!("{other:?}"),
    }

    // Refusals, with the protocol's codes; none is published.
    for (path, token, body, want_status, want_code) in [
        (
            "/api/canvases/rest/draw",
            None,
            r#"{"pixels": []}"#,
            401,
            "E002",
        ),
        (
            "/api/canvases/rest/draw",
            Some(t.as_str()),
            "{not json",
            400,
            "E006",
        ),
        (
            "/api/canvases/rest/draw",
            Some(t.as_str()),
            r#"{"pixels": [{"x": 1, "y": 1, "color": 1}], "extra": 1}"#,
            400,
            "E006",
        ),
        (
            "/api/canvases/rest/draw",
            Some(t.as_str()),
            r#"{"pixels": [{"x": 500, "y": 1, "color": 1}]}"#,
            400,
            "E007",
        ),
        (
            "/api/canvases/rest/draw",
            Some(t.as_str()),
            r#"{"pixels": []}"#,
            400,
            "E007",
        ),
        (
            "/api/canvases/rest/cursor",
            Some(t.as_str()),
            r#"{"x": -1, "y": 1}"#,
            400,
            "E007",
        ),
        (
            "/api/canvases/bad%20id/draw",
            Some(t.as_str()),
            r#"{"pixels": []}"#,
            400,
            "E006",
        ),
    ] {
        let (status, err) = call(b.addr, path, token, body).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (want_status, Some(want_code)),
            "{path} {body}: {err}"
        );
    }
    let watcher_token = spectator("spec");
    let (status, err) = call(
        b.addr,
        "/api/canvases/rest/draw",
        Some(&watcher_token),
        r#"{"pixels": [{"x": 1, "y": 1, "color": 1}]}"#,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (403, Some("E008")), "{err}");
    // A spectator may still move a cursor.
    let (status, _) = call(
        b.addr,
        "/api/canvases/rest/cursor",
        Some(&watcher_token),
        r#"{"x": 9, "y": 9}"#,
    )
    .await;
    assert_eq!(status, 202);
    match watcher.recv().await {
        ServerMessage::Cursor(c) => {
            assert_eq!(c.author.id, "spec", "a refused request was published")
        }
        other => panic!("a refused request was published: {other:?}"),
    }

    // Activity: the latest durable events.
    let (status, _, raw) = http_get(b.addr, "/api/canvases/rest/activity?limit=10", Some(&t)).await;
    assert_eq!(status, 200);
    let page: HistoryPage = serde_json::from_slice(&raw).unwrap();
    assert_eq!(page.seq, seq);
    assert!(matches!(page.events.last(), Some(ServerMessage::Draw(d)) if d.seq == Some(seq)));
    let (status, _, _) = http_get(b.addr, "/api/canvases/rest/activity?limit=0", Some(&t)).await;
    assert_eq!(status, 400);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_writes_pay_from_the_users_rate_limit() {
    let g = Gateway::start(settings(
        "rest-rl",
        None,
        &["--user-rate-limits=pixels=10/s:256,cursors=1/s:1"],
    ))
    .await;
    let t = token("busy");
    let (status, _) = call(
        g.addr,
        "/api/canvases/r/cursor",
        Some(&t),
        r#"{"x": 1, "y": 1}"#,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, raw) = post(
        g.addr,
        "/api/canvases/r/cursor",
        Some(&t),
        r#"{"x": 1, "y": 1}"#,
    )
    .await;
    let err: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!((status, err["code"].as_str()), (429, Some("E004")), "{err}");
    let wait = err["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1001).contains(&wait), "{wait}");
    // The same user's WebSocket shares the bucket.
    let mut ws = g.client("busy").await;
    join_ok(&mut ws, 1, "r", false).await;
    ws.send(&cursor(Some(2), "r", 1.0, 1.0)).await;
    assert_eq!(
        expect_error(&mut ws).await.code,
        shared::ErrorCode::RateLimited
    );
    g.stop().await;
}
