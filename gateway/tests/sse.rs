//! Server-Sent Events: a canvas's events from another gateway, resumable
//! with Last-Event-ID = seq, and a resync when that is impossible.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::AckResult;
use std::time::Duration;
use testkit::RedisServer;
use testkit::http::{sample, scrape};

fn canvas_stream(canvas: &str) -> String {
    format!("/sse/canvases/{canvas}?token={}", token("sse"))
}

/// Draws from `writer` and returns the acked seq.
async fn draw_seq(writer: &mut testkit::ws::WsClient, id: u64) -> u64 {
    writer.send(&draw(id, "sse", (id % 100) as i64, 1, 1)).await;
    match expect_ack(writer, id).await {
        Some(AckResult::Published(p)) => p.seq,
        other => panic!("{other:?}"),
    }
}

fn json(ev: &SseEvent) -> serde_json::Value {
    serde_json::from_str(&ev.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canvas_events_stream_across_gateways_and_resume_with_last_event_id() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("sse-a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("sse-b", Some(&redis), &[])).await;
    let mut writer = a.client("writer").await;
    join_ok(&mut writer, 1, "sse", false).await;
    let first = draw_seq(&mut writer, 10).await;

    let mut sse = SseClient::open(b.addr, &canvas_stream("sse"), None)
        .await
        .unwrap();
    let joined = sse.next().await;
    assert_eq!(joined.event.as_deref(), Some("joined"));
    assert_eq!(json(&joined)["seq"].as_u64(), Some(first));

    let mut seqs = Vec::new();
    for id in 11..14 {
        seqs.push(draw_seq(&mut writer, id).await);
    }
    writer.send(&cursor(None, "sse", 2.0, 3.0)).await;
    for want in &seqs {
        let ev = sse.next().await;
        assert_eq!(ev.id, Some(*want));
        let v = json(&ev);
        assert_eq!(
            (v["type"].as_str(), v["seq"].as_u64()),
            (Some("draw"), Some(*want))
        );
    }
    let cursor_ev = sse.next().await;
    assert_eq!(cursor_ev.id, None, "ephemeral events carry no id");
    assert_eq!(json(&cursor_ev)["type"].as_str(), Some("cursor"));

    // Gone for a while; back with Last-Event-ID: exactly what was missed.
    let last = seqs[2];
    drop(sse);
    let missed = [
        draw_seq(&mut writer, 20).await,
        draw_seq(&mut writer, 21).await,
    ];
    let mut sse = SseClient::open(b.addr, &canvas_stream("sse"), Some(&last.to_string()))
        .await
        .unwrap();
    let joined = json(&sse.next().await);
    assert_eq!(joined["resume"].as_str(), Some("replayed"));
    for want in missed {
        assert_eq!(sse.next().await.id, Some(want));
    }
    let live = draw_seq(&mut writer, 22).await;
    assert_eq!(sse.next().await.id, Some(live));

    // A position beyond the canvas cannot be resumed: resync.
    let mut ahead = SseClient::open(b.addr, &canvas_stream("sse"), Some("999999"))
        .await
        .unwrap();
    assert_eq!(json(&ahead.next().await)["resume"].as_str(), Some("ahead"));
    let notice = json(&ahead.next().await);
    assert_eq!(
        (notice["type"].as_str(), notice["reason"].as_str()),
        (Some("resync"), Some("history_unavailable"))
    );

    // Refusals.
    assert_eq!(
        SseClient::open(b.addr, &canvas_stream("sse"), Some("yesterday"))
            .await
            .err(),
        Some(400)
    );
    let (status, _, _) = http_get(b.addr, "/sse/canvases/sse", None).await;
    assert_eq!(status, 401);

    // A stream that went away leaves the canvas (noticed at the next write).
    drop((sse, ahead));
    draw_seq(&mut writer, 30).await;
    testkit::eventually(Duration::from_secs(10), "SSE members gone", || async {
        draw_seq(&mut writer_probe(&a).await, 31).await;
        sample(&scrape(b.admin).await, "easel_gateway_local_members") == Some(0.0)
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// A throwaway writer for prodding dropped streams into noticing.
async fn writer_probe(g: &Gateway) -> testkit::ws::WsClient {
    let mut w = g.client("prober").await;
    join_ok(&mut w, 1, "sse", false).await;
    w
}

fn stream(path: &str, user: &str) -> String {
    format!("{path}?token={}", token(user))
}

/// An SSE stream is a connection like a WebSocket: it takes a place in the
/// gateway's capacity, in its user's cap, and in its address's rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_count_towards_every_connection_limit() {
    let g = Gateway::start(settings(
        "sse-limits",
        None,
        &["--max-connections=3", "--max-connections-per-user=2"],
    ))
    .await;
    // The per-user cap: a third stream of one user is refused, and so is a
    // WebSocket of that user.
    let _ada1 = SseClient::open(g.addr, &stream("/sse/system", "ada"), None)
        .await
        .unwrap();
    let _ada2 = SseClient::open(g.addr, &stream("/sse/online", "ada"), None)
        .await
        .unwrap();
    let third = SseClient::open(g.addr, &stream("/sse/notifications", "ada"), None).await;
    assert_eq!(third.err(), Some(429), "the user's third stream");
    let mut ws = testkit::ws::WsClient::connect(g.addr, testkit::ws::Connect::token(&token("ada")))
        .await
        .unwrap();
    assert_eq!(
        ws.closed().await.code,
        Some(4011),
        "a WebSocket past the cap"
    );
    // The gateway's capacity: a third stream (another user) fills it, once
    // the refused WebSocket has given its place back; then streams and
    // WebSocket upgrades are refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let bob = loop {
        match SseClient::open(g.addr, &stream("/sse/canvases/board", "bob"), None).await {
            Ok(s) => break s,
            Err(503) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(status) => panic!("bob's stream: {status}"),
        }
    };
    let full = SseClient::open(g.addr, &stream("/sse/system", "cat"), None).await;
    assert_eq!(full.err(), Some(503), "a stream past EASEL_MAX_CONNECTIONS");
    match testkit::ws::WsClient::connect(g.addr, testkit::ws::Connect::token(&token("cat"))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!(
            "a WebSocket past EASEL_MAX_CONNECTIONS: {:?}",
            other.is_ok()
        ),
    }
    // A stream that ends gives its place back.
    drop(bob);
    testkit::eventually(Duration::from_secs(5), "a place freed", || async {
        SseClient::open(g.addr, &stream("/sse/system", "cat"), None)
            .await
            .is_ok()
    })
    .await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_count_towards_the_per_address_connect_rate() {
    let g = Gateway::start(settings("sse-rate", None, &["--ip-connect-rate=1/s:2"])).await;
    let _a = SseClient::open(g.addr, &stream("/sse/system", "ada"), None)
        .await
        .unwrap();
    let _b = SseClient::open(g.addr, &stream("/sse/system", "bob"), None)
        .await
        .unwrap();
    let third = SseClient::open(g.addr, &stream("/sse/system", "cat"), None).await;
    assert_eq!(third.err(), Some(429), "past the address's burst");
    g.stop().await;
}
