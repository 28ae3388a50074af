//! Operation keys across gateways: a durable command resent with its key
//! (after its ack was lost and the client moved to another gateway) gets
//! the first ack back and is not applied twice; over WebSocket and REST.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::*;
use shared::{ErrorCode, RequestId};
use testkit::RedisServer;

fn keyed_create(id: u64, key: &str) -> ClientMessage {
    ClientMessage::ObjectCreate(ObjectCreate {
        id: Some(RequestId::Num(id)),
        canvas: canvas("k"),
        key: Some(key.into()),
        kind: "token".into(),
        x: 1.0,
        y: 1.0,
        w: 1.0,
        h: 1.0,
        props: Props::new(),
    })
}

fn keyed_chat(id: u64, key: &str) -> ClientMessage {
    ClientMessage::Chat(ChatSend {
        id: Some(RequestId::Num(id)),
        canvas: canvas("k"),
        key: Some(key.into()),
        text: "hello once".into(),
    })
}

async fn published(client: &mut testkit::WsClient, id: u64) -> Published {
    match expect_ack(client, id).await {
        Some(AckResult::Published(p)) => p,
        other => panic!("expected a published ack, got {other:?}"),
    }
}

/// The durable events a watcher receives, up to and including `last`.
async fn events_until(watcher: &mut testkit::WsClient, last: u64) -> Vec<(u64, &'static str)> {
    let mut seen = Vec::new();
    loop {
        let event = watcher.recv().await;
        let Some(seq) = event.seq() else { continue };
        seen.push((seq, event.kind()));
        if seq >= last {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_command_is_answered_once_across_gateways() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("b", Some(&redis), &[])).await;
    let mut watcher = b.client("watcher").await;
    join_ok(&mut watcher, 1, "k", false).await;

    // Alice sends on a; her ack is "lost": she reconnects to b and resends
    // the same commands under the same keys (with new request ids).
    let mut first = a.client("alice").await;
    join_ok(&mut first, 1, "k", false).await;
    first.send(&keyed_draw(2, "k", 5, "draw-1")).await;
    let drawn = published(&mut first, 2).await;
    first.send(&keyed_create(3, "create-1")).await;
    let created = published(&mut first, 3).await;
    first.send(&keyed_chat(4, "chat-1")).await;
    let said = published(&mut first, 4).await;
    drop(first);

    let mut again = b.client("alice").await;
    join_ok(&mut again, 1, "k", false).await;
    // Other content under the same key: still the first operation's ack.
    again.send(&keyed_draw(12, "k", 9, "draw-1")).await;
    assert_eq!(published(&mut again, 12).await, drawn);
    again.send(&keyed_create(13, "create-1")).await;
    let repeat = published(&mut again, 13).await;
    assert_eq!(repeat, created);
    assert!(repeat.object.is_some(), "the first create's object id");
    again.send(&keyed_chat(14, "chat-1")).await;
    assert_eq!(published(&mut again, 14).await, said);

    // Another user's same key is another operation.
    let mut bob = a.client("bob").await;
    join_ok(&mut bob, 1, "k", false).await;
    bob.send(&keyed_draw(2, "k", 6, "draw-1")).await;
    let bobs = published(&mut bob, 2).await;
    assert_eq!(bobs.seq, said.seq + 1);

    // The watcher saw each operation once, in order, with no gap.
    let seen = events_until(&mut watcher, bobs.seq).await;
    assert_eq!(
        seen,
        vec![
            (drawn.seq, "draw"),
            (created.seq, "object_created"),
            (said.seq, "chat"),
            (bobs.seq, "draw"),
        ]
    );
    again
        .send(&ClientMessage::Objects(ObjectsRequest {
            id: Some(RequestId::Num(20)),
            canvas: canvas("k"),
            after: None,
        }))
        .await;
    loop {
        match again.recv().await {
            ServerMessage::Ack(ack) if ack.id == RequestId::Num(20) => {
                let Some(AckResult::Objects(page)) = ack.result else {
                    panic!("expected objects, got {ack:?}");
                };
                assert_eq!(page.objects.len(), 1, "one object");
                break;
            }
            ServerMessage::Ack(ack) => panic!("unexpected {ack:?}"),
            _ => {} // bob's draw
        }
    }
    let metrics = testkit::http::scrape(b.admin).await;
    let repeats = testkit::http::sample(&metrics, "easel_gateway_durable_repeats_total");
    assert_eq!(repeats, Some(3.0));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_refused_and_reads_take_none() {
    let g = Gateway::start(settings("a", None, &[])).await;
    let mut c = g.client("alice").await;
    join_ok(&mut c, 1, "k", false).await;
    let long = "x".repeat(65);
    for bad in ["", "has space", "tab\there", long.as_str()] {
        c.send(&keyed_draw(2, "k", 1, bad)).await;
        let err = expect_error(&mut c).await;
        assert_eq!(err.code, ErrorCode::InvalidValue, "{bad:?}");
        assert!(err.message.contains("key"), "{}", err.message);
    }
    // A read takes no key: an unknown field.
    let read = r#"{"type":"objects","id":3,"canvas":"k","key":"read-1"}"#;
    c.send_raw(tokio_tungstenite::tungstenite::Message::Text(read.into()))
        .await;
    assert_eq!(expect_error(&mut c).await.code, ErrorCode::InvalidMessage);
    // Nothing was applied by the refused draws.
    c.send(&keyed_draw(4, "k", 1, "good-1")).await;
    assert_eq!(published(&mut c, 4).await.seq, 1);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_rest_draw_returns_the_first_seq() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("b", Some(&redis), &[])).await;
    let body = r#"{"pixels":[{"x":1,"y":1,"color":2}],"key":"rest-1"}"#;
    let path = "/api/canvases/k/draw";
    let (status, _, first) = testkit::http::post(a.addr, path, Some(&token("u")), body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    let (status, _, again) = testkit::http::post(b.addr, path, Some(&token("u")), body).await;
    assert_eq!(status, 200);
    assert_eq!(first, again, "the same seq");
    let other = r#"{"pixels":[{"x":1,"y":1,"color":2}],"key":"rest-2"}"#;
    let (_, _, next) = testkit::http::post(b.addr, path, Some(&token("u")), other).await;
    let next: serde_json::Value = serde_json::from_slice(&next).unwrap();
    let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(next["seq"], first["seq"].as_u64().unwrap() + 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_caught_in_a_redis_stall_is_resent_safely_with_its_key() {
    let redis = RedisServer::start();
    let g = Gateway::start(settings("a", Some(&redis), &[])).await;
    let mut c = g.client("alice").await;
    join_ok(&mut c, 1, "k", true).await;
    // A first draw (which loads the publish script into Redis).
    c.send(&keyed_draw(2, "k", 3, "warm-1")).await;
    let mut draws = Vec::new();
    let mut acked = false;
    while !(acked && draws.len() == 1) {
        match c.recv().await {
            ServerMessage::Draw(d) => draws.push(d.seq),
            ServerMessage::Ack(a) if a.id == RequestId::Num(2) => acked = true,
            other => panic!("unexpected {other:?}"),
        }
    }

    // Redis holds writes for 3.5 s (it answers the pool's PING) with the
    // write in flight: the gateway's 2 s timeout answers E012 saying the
    // outcome is unknown; Redis runs the write when the pause ends.
    for out in redis.command_everywhere(&["CLIENT", "PAUSE", "3500", "WRITE"]) {
        assert_eq!(out.trim(), "OK");
    }
    c.send(&keyed_draw(3, "k", 4, "stalled-1")).await;
    let err = expect_error(&mut c).await;
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains("same key"), "{}", err.message);

    // Resent under the same key until acked (as a client retries E012):
    // applied at most once in all, whichever copy ran first.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut id = 4;
    let acked = 'resend: loop {
        assert!(tokio::time::Instant::now() < deadline, "never acked");
        c.send(&keyed_draw(id, "k", 4, "stalled-1")).await;
        loop {
            match c.recv().await {
                ServerMessage::Draw(d) => draws.push(d.seq),
                ServerMessage::Ack(a) if a.id == RequestId::Num(id) => match a.result {
                    Some(AckResult::Published(p)) => break 'resend p.seq,
                    other => panic!("expected a published ack, got {other:?}"),
                },
                ServerMessage::Error(e) if e.code == ErrorCode::Unavailable => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        id += 1;
    };
    assert_eq!(acked, 2);
    c.send(&keyed_chat(100, "after-1")).await;
    loop {
        match c.recv().await {
            ServerMessage::Draw(d) => draws.push(d.seq),
            ServerMessage::Chat(m) => {
                assert_eq!(m.seq, Some(3), "no second draw took a number");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(draws, vec![Some(1), Some(2)], "each draw delivered once");
    g.stop().await;
}
