//! Server-Sent Events: a canvas's events from another gateway, resumable
//! with Last-Event-ID = seq, and a resync when that is impossible.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::AckResult;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::RedisServer;
use testkit::http::{sample, scrape};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One SSE message: its `event`, `id` and `data` fields.
#[derive(Debug, Default)]
struct SseEvent {
    event: Option<String>,
    id: Option<u64>,
    data: String,
}

struct SseClient {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

impl SseClient {
    /// Opens the stream; `Err(status)` if the server refused it.
    async fn open(
        addr: SocketAddr,
        canvas: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseClient, u16> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let last = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /sse/canvases/{canvas}?token={} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{last}\r\n",
            token("sse")
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(s).lines();
        let status: u16 = lines
            .next_line()
            .await
            .unwrap()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        // The rest of the head.
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.is_empty() {
                break;
            }
        }
        if status != 200 {
            return Err(status);
        }
        Ok(SseClient { lines })
    }

    /// The next message, skipping keep-alive comments and chunk framing.
    async fn next(&mut self) -> SseEvent {
        let read = async {
            let mut ev = SseEvent::default();
            loop {
                let line = self.lines.next_line().await.unwrap().expect("stream ended");
                if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                    ev.data.push_str(v);
                } else if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:"))
                {
                    ev.event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
                    ev.id = v.trim().parse().ok();
                } else if line.is_empty() && !ev.data.is_empty() {
                    return ev;
                }
                // Anything else: comments (keep-alive) and chunk sizes.
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("no SSE event within 10 s")
    }
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

    let mut sse = SseClient::open(b.addr, "sse", None).await.unwrap();
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
    let mut sse = SseClient::open(b.addr, "sse", Some(&last.to_string()))
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
    let mut ahead = SseClient::open(b.addr, "sse", Some("999999"))
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
        SseClient::open(b.addr, "sse", Some("yesterday"))
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
