//! The real-time path end to end: clients on two gateways sharing a private
//! Redis, and the same scenario on one standalone gateway.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::RequestId;
use shared::codec::Encoding;
use shared::protocol::*;
use std::net::SocketAddr;
use testkit::RedisServer;
use testkit::ws::{Connect, WsClient};

async fn connect(addr: SocketAddr, user: &str, encoding: Encoding) -> WsClient {
    let (c, welcome) =
        WsClient::connect_ok(addr, Connect::token(&token(user)).with_encoding(encoding)).await;
    assert_eq!(welcome.user.id, user);
    assert_eq!(welcome.encoding, encoding);
    assert_eq!(c.encoding, encoding);
    c
}

/// Sender on `a`, receivers on `b` (which may be the same gateway).
async fn exchange(a: SocketAddr, b: SocketAddr) {
    let mut alice = connect(a, "alice", Encoding::Json).await;
    let mut bob = connect(b, "bob", Encoding::Msgpack).await;
    let mut carol = connect(b, "carol", Encoding::Json).await;
    let mut dave = connect(a, "dave", Encoding::Msgpack).await;
    join_ok(&mut alice, 1, "board", false).await;
    join_ok(&mut bob, 1, "board", false).await;
    join_ok(&mut bob, 2, "other", false).await;
    join_ok(&mut carol, 1, "board", false).await;
    join_ok(&mut dave, 1, "other", false).await;

    // 30 operations of three kinds; every one acked, in order.
    let mut id = 100;
    for i in 0..10i64 {
        for msg in [
            draw(id, "board", i, i * 2, i % 32),
            chat(id + 1, "board", &format!("message {i}")),
            cursor(Some(id + 2), "board", i as f64 + 0.5, 1.0),
        ] {
            alice.send(&msg).await;
        }
        // Draw and chat are durable: their acks carry consecutive sequence
        // numbers. The cursor is ephemeral: no sequence number.
        let seqs: Vec<Option<u64>> = [
            expect_ack(&mut alice, id).await,
            expect_ack(&mut alice, id + 1).await,
        ]
        .into_iter()
        .map(|r| match r {
            Some(AckResult::Published(p)) => Some(p.seq),
            other => panic!("durable ack without seq: {other:?}"),
        })
        .collect();
        assert_eq!(seqs, vec![Some(2 * i as u64 + 1), Some(2 * i as u64 + 2)]);
        assert_eq!(expect_ack(&mut alice, id + 2).await, None);
        id += 3;
    }
    // Every other member of the board gets all 30, in the sender's order, once.
    for receiver in [&mut bob, &mut carol] {
        for i in 0..10i64 {
            match receiver.recv().await {
                ServerMessage::Draw(d) => {
                    assert_eq!(d.seq, Some(2 * i as u64 + 1));
                    assert_eq!(d.canvas.as_str(), "board");
                    assert_eq!(d.author.id, "alice");
                    assert_eq!(d.author.name.as_deref(), Some("alice name"));
                    assert!(d.ts > 0);
                    assert_eq!(
                        d.pixels,
                        vec![Pixel {
                            x: i as u32,
                            y: (i * 2) as u32,
                            color: (i % 32) as u8
                        }]
                    );
                }
                other => panic!("expected draw {i}, got {other:?}"),
            }
            match receiver.recv().await {
                ServerMessage::Chat(c) => {
                    assert_eq!(c.text, format!("message {i}"));
                    assert_eq!(c.seq, Some(2 * i as u64 + 2));
                }
                other => panic!("expected chat {i}, got {other:?}"),
            }
            match receiver.recv().await {
                ServerMessage::Cursor(c) => assert_eq!((c.x, c.y), (i as f32 + 0.5, 1.0)),
                other => panic!("expected cursor {i}, got {other:?}"),
            }
        }
    }
    // A marker on "other" proves nothing else was queued before it: dave (not
    // on the board) saw none of alice's events, and alice none of her own.
    join_ok(&mut alice, 2, "other", false).await;
    dave.send(&chat(7, "other", "marker")).await;
    expect_ack(&mut dave, 7).await;
    for member in [&mut alice, &mut bob] {
        match member.recv().await {
            ServerMessage::Chat(c) => assert_eq!(c.text, "marker", "unexpected earlier event"),
            other => panic!("expected the marker, got {other:?}"),
        }
    }

    // Leave stops delivery: bob leaves the board; alice's next board event
    // would reach him before the next marker on "other" if it still did.
    bob.send(&leave(3, "board")).await;
    expect_ack(&mut bob, 3).await;
    alice.send(&chat(200, "board", "after leave")).await;
    expect_ack(&mut alice, 200).await;
    match carol.recv().await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "after leave"),
        other => panic!("unexpected {other:?}"),
    }
    dave.send(&chat(8, "other", "marker 2")).await;
    expect_ack(&mut dave, 8).await;
    match bob.recv().await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "marker 2", "bob still receives the board"),
        other => panic!("unexpected {other:?}"),
    }
    // Leaving again is an error with a code, not silence.
    bob.send(&leave(4, "board")).await;
    let e = expect_error(&mut bob).await;
    assert_eq!(e.code, shared::ErrorCode::NotJoined);
    assert_eq!(e.id, Some(RequestId::Num(4)));

    // Echo is a per-join option.
    let mut erin = connect(b, "erin", Encoding::Json).await;
    join_ok(&mut erin, 1, "echo", true).await;
    erin.send(&chat(2, "echo", "hello me")).await;
    let mut got_ack = false;
    let mut got_echo = false;
    for _ in 0..2 {
        match erin.recv().await {
            ServerMessage::Ack(a) if a.id == RequestId::Num(2) => {
                assert_eq!(
                    a.result,
                    Some(AckResult::Published(Published {
                        seq: 1,
                        object: None
                    }))
                );
                got_ack = true;
            }
            ServerMessage::Chat(c) if c.text == "hello me" => {
                assert_eq!(c.seq, Some(1), "the echo carries the acked seq");
                got_echo = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got_ack && got_echo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_events_through_redis() {
    let redis = RedisServer::start();
    // Every cursor is checked in order here; coalescing is tested in cursors.rs.
    let a = Gateway::start(settings("gw-a", Some(&redis), &["--cursor-hz=0"])).await;
    let b = Gateway::start(settings("gw-b", Some(&redis), &["--cursor-hz=0"])).await;
    exchange(a.addr, b.addr).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_gateway_behaves_the_same_on_one_node() {
    let g = Gateway::start(settings("solo", None, &["--cursor-hz=0"])).await;
    exchange(g.addr, g.addr).await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_header_or_handshake_message_and_ping() {
    let g = Gateway::start(settings("solo", None, &[])).await;
    let opts = Connect {
        token: testkit::ws::TokenIn::Header(token("hdr")),
        encoding: Some(Encoding::Msgpack),
        origin: Some("https://app.example.com".into()),
        ..Connect::token("")
    };
    let (_c, w) = WsClient::connect_ok(g.addr, opts).await;
    assert_eq!(w.user.id, "hdr");
    assert!(w.connection_id.starts_with("solo-"));
    assert_eq!(w.limits.max_message_bytes, 65536);

    let mut c = WsClient::connect(
        g.addr,
        Connect {
            token: testkit::ws::TokenIn::None,
            ..Connect::token("")
        },
    )
    .await
    .unwrap();
    c.send(&ClientMessage::Handshake(Handshake {
        id: Some(RequestId::Str("hs".into())),
        token: token("late"),
    }))
    .await;
    match c.recv().await {
        ServerMessage::Ack(a) => assert_eq!(a.id, RequestId::Str("hs".into())),
        other => panic!("expected handshake ack, got {other:?}"),
    }
    match c.recv().await {
        ServerMessage::Welcome(w) => assert_eq!(w.user.id, "late"),
        other => panic!("expected welcome, got {other:?}"),
    }
    c.send(&ClientMessage::Ping(Ping {
        id: Some(RequestId::Num(9)),
        ts: Some(12345),
    }))
    .await;
    match c.recv().await {
        ServerMessage::Pong(p) => {
            assert_eq!(p.id, Some(RequestId::Num(9)));
            assert_eq!(p.ts, Some(12345));
            assert!(p.server_time > 0);
        }
        other => panic!("expected pong, got {other:?}"),
    }
    // A second handshake is refused without closing.
    c.send(&ClientMessage::Handshake(Handshake {
        id: Some(RequestId::Num(10)),
        token: token("late"),
    }))
    .await;
    let e = expect_error(&mut c).await;
    assert_eq!(e.code, shared::ErrorCode::InvalidSession);
    c.send(&ClientMessage::Ping(Ping { id: None, ts: None }))
        .await;
    assert!(matches!(c.recv().await, ServerMessage::Pong(_)));
    g.stop().await;
}
