//! Rate limits: per-connection and per-user token buckets answer E004 with
//! `retry_after_ms` and apply nothing; repeated abuse closes with 4029; a
//! user's connection cap closes the next with 4011; new connections per
//! client address are limited, with X-Forwarded-For believed only from
//! trusted proxies.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::protocol::ServerMessage;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::http::{sample, scrape};
use testkit::ws::{Connect, WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Expects an E004 and returns its `retry_after_ms`.
async fn expect_rate_limited(c: &mut WsClient, id: u64) -> u64 {
    let e = expect_error(c).await;
    assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
    assert_eq!(e.id, Some(shared::RequestId::Num(id)));
    e.retry_after_ms.expect("retry_after_ms")
}

/// A draw `id` of `n` pixels on `rl`, laid out in rows of 100 from row
/// `first_row`.
fn pixels_draw(id: u64, n: i64, first_row: i64) -> shared::protocol::ClientMessage {
    shared::protocol::ClientMessage::Draw(shared::protocol::Draw {
        id: Some(shared::RequestId::Num(id)),
        canvas: canvas("rl"),
        key: None,
        pixels: (0..n)
            .map(|i| shared::protocol::PixelInput {
                x: i % 100,
                y: first_row + i / 100,
                color: 1,
            })
            .collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_connection_is_refused_with_retry_after_and_nothing_is_applied() {
    let g = Gateway::start(settings(
        "rl-conn",
        None,
        &["--rate-limits=pixels=100/s:256,chat=2/s:2,cursors=300/s:300"],
    ))
    .await;
    let mut flooder = g.client("flooder").await;
    let mut watcher = g.client("watcher").await;
    join_ok(&mut flooder, 1, "rl", false).await;
    join_ok(&mut watcher, 1, "rl", false).await;

    // Two chats fit the burst; the third is refused and not published.
    for id in [10, 11] {
        flooder.send(&chat(id, "rl", "ok")).await;
        expect_ack(&mut flooder, id).await;
    }
    flooder.send(&chat(12, "rl", "refused")).await;
    let wait = expect_rate_limited(&mut flooder, 12).await;
    assert!((1..=501).contains(&wait), "{wait}");
    // After the advertised wait it is accepted again.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    flooder.send(&chat(13, "rl", "after waiting")).await;
    expect_ack(&mut flooder, 13).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        match watcher.recv().await {
            ServerMessage::Chat(c) => seen.push(c.text),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["ok", "ok", "after waiting"]);

    // Pixels cost one token each: a 256-pixel draw empties the bucket.
    flooder.send(&pixels_draw(20, 256, 0)).await;
    expect_ack(&mut flooder, 20).await;
    // 50 more pixels need half a second of refill at 100/s (less what
    // refilled since: a slow machine may take a while between the two).
    flooder.send(&pixels_draw(21, 50, 50)).await;
    let wait = expect_rate_limited(&mut flooder, 21).await;
    assert!((250..=501).contains(&wait), "50 pixels at 100/s: {wait} ms");

    // The watcher got the accepted draw only, and its own chat is not
    // affected by the flooder's buckets.
    assert!(matches!(watcher.recv().await, ServerMessage::Draw(d) if d.pixels.len() == 256));
    watcher.send(&chat(30, "rl", "mine")).await;
    expect_ack(&mut watcher, 30).await;

    let text = scrape(g.admin).await;
    assert_eq!(
        sample(&text, r#"easel_gateway_rate_limited_total{class="chat"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"easel_gateway_rate_limited_total{class="pixels"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"easel_gateway_errors_total{code="rate_limited"}"#),
        Some(2.0)
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_connections_share_its_bucket_but_other_users_do_not() {
    let g = Gateway::start(settings(
        "rl-user",
        None,
        &[
            "--rate-limits=chat=100/s:100",
            "--user-rate-limits=pixels=1000/s:1000,chat=1/s:3",
        ],
    ))
    .await;
    let mut tab1 = g.client("ada").await;
    let mut tab2 = g.client("ada").await;
    let mut other = g.client("bob").await;
    // Each on its own canvas, so no one receives another's chat: the
    // user's bucket spans canvases as well as connections.
    join_ok(&mut tab1, 1, "tab-1", false).await;
    join_ok(&mut tab2, 1, "tab-2", false).await;
    join_ok(&mut other, 1, "other", false).await;
    for id in [10, 11] {
        tab1.send(&chat(id, "tab-1", "hi")).await;
        expect_ack(&mut tab1, id).await;
    }
    tab2.send(&chat(12, "tab-2", "hi")).await;
    expect_ack(&mut tab2, 12).await;
    tab2.send(&chat(13, "tab-2", "over")).await;
    let e = expect_error(&mut tab2).await;
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.message.contains("shared"), "{}", e.message);
    other.send(&chat(14, "other", "bob is fine")).await;
    expect_ack(&mut other, 14).await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_refusals_close_with_4029_and_spare_the_neighbours() {
    let g = Gateway::start(settings(
        "rl-abuse",
        None,
        &["--rate-limits=chat=1/s:1", "--rate-abuse-limit=5"],
    ))
    .await;
    let mut abuser = g.client("abuser").await;
    let mut neighbour = g.client("neighbour").await;
    join_ok(&mut abuser, 1, "a", false).await;
    join_ok(&mut neighbour, 1, "b", false).await;
    for id in 0..20 {
        if abuser
            .try_send_raw(tungstenite_text(&chat(id, "a", "spam")))
            .await
            .is_err()
        {
            break;
        }
    }
    let closed = abuser.closed().await;
    assert_eq!(closed.code, Some(4029));
    let refusals = closed
        .before
        .iter()
        .filter(|m| matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::RateLimited))
        .count();
    assert_eq!(refusals, 6, "closed on the sixth refusal in the window");
    neighbour.send(&chat(100, "b", "still here")).await;
    expect_ack(&mut neighbour, 100).await;
    g.stop().await;
}

fn tungstenite_text(
    msg: &shared::protocol::ClientMessage,
) -> tokio_tungstenite::tungstenite::Message {
    tokio_tungstenite::tungstenite::Message::text(serde_json::to_string(msg).unwrap())
}

/// A connection of user "capped" to `addr` is refused: E011, then 4011.
async fn refused_over_the_cap(addr: SocketAddr) {
    let mut c = WsClient::connect(addr, Connect::token(&token("capped")))
        .await
        .unwrap();
    let closed = c.closed().await;
    assert_eq!(closed.code, Some(4011));
    assert!(matches!(
        closed.before.as_slice(),
        [ServerMessage::Error(e)] if e.code == ErrorCode::LimitReached
    ));
}

/// Until a connection of user "capped" to `addr` is welcomed again.
async fn a_slot_frees(addr: SocketAddr) {
    testkit::eventually(Duration::from_secs(5), "a freed slot", || async {
        let Ok(mut c) = WsClient::connect(addr, Connect::token(&token("capped"))).await else {
            return false;
        };
        matches!(c.recv().await, ServerMessage::Welcome(_))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_connection_cap_closes_the_next_with_4011() {
    let g = Gateway::start(settings("rl-cap", None, &["--max-connections-per-user=2"])).await;
    let first = g.client("capped").await;
    let _second = g.client("capped").await;
    refused_over_the_cap(g.addr).await;
    // Another user is not affected; and a slot frees when one closes.
    let _other = g.client("free").await;
    drop(first);
    a_slot_frees(g.addr).await;
    g.stop().await;
}

/// A raw upgrade request with an optional X-Forwarded-For; the status and
/// the Retry-After header.
async fn upgrade(addr: SocketAddr, forwarded_for: Option<&str>) -> (u16, Option<String>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let xff = forwarded_for
        .map(|v| format!("X-Forwarded-For: {v}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{xff}\r\n",
        token("ip")
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let retry_after = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("retry-after: ")
                .or(l.strip_prefix("Retry-After: "))
        })
        .map(str::to_owned);
    (status, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_per_address_are_limited_and_proxies_must_be_trusted() {
    // Without trusted proxies, X-Forwarded-For is ignored: all from 127.0.0.1.
    let g = Gateway::start(settings("rl-ip", None, &["--ip-connect-rate=1/s:2"])).await;
    assert_eq!(upgrade(g.addr, None).await.0, 101);
    assert_eq!(upgrade(g.addr, Some("203.0.113.1")).await.0, 101);
    let (status, retry_after) = upgrade(g.addr, Some("203.0.113.2")).await;
    assert_eq!(status, 429);
    assert_eq!(retry_after.as_deref(), Some("1"));
    let text = scrape(g.admin).await;
    assert_eq!(
        sample(
            &text,
            r#"easel_gateway_upgrades_refused_total{reason="rate_limited"}"#
        ),
        Some(1.0)
    );
    g.stop().await;

    // Behind a trusted proxy each forwarded client has its own bucket.
    let g = Gateway::start(settings(
        "rl-ip-proxy",
        None,
        &["--ip-connect-rate=1/s:2", "--trusted-proxies=127.0.0.0/8"],
    ))
    .await;
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(upgrade(g.addr, Some(client)).await.0, 101, "{client}");
        assert_eq!(upgrade(g.addr, Some(client)).await.0, 101, "{client}");
    }
    assert_eq!(upgrade(g.addr, Some("198.51.100.1")).await.0, 429);
    // A forged entry before the real client's is not believed.
    assert_eq!(
        upgrade(g.addr, Some("192.0.2.99, 198.51.100.2")).await.0,
        429
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_pauses_reading_from_that_connection_only() {
    let g = Gateway::start(settings("rl-pause", None, &["--rate-limits=chat=1/s:1"])).await;
    let mut flooder = g.client("flooder").await;
    let mut neighbour = g.client("neighbour").await;
    join_ok(&mut flooder, 1, "a", false).await;
    join_ok(&mut neighbour, 1, "b", false).await;
    // 20 chats at once: the first is taken, each refusal then pauses reads
    // from this connection for its retry_after_ms (capped at 100 ms).
    let started = std::time::Instant::now();
    for id in 10..30 {
        flooder.send(&chat(id, "a", "spam")).await;
    }
    // Meanwhile the neighbour is served at once.
    neighbour.send(&chat(100, "b", "hello")).await;
    expect_ack(&mut neighbour, 100).await;
    let mut replies = 0;
    while replies < 20 {
        match flooder.recv().await {
            ServerMessage::Ack(_) | ServerMessage::Error(_) => replies += 1,
            _ => {}
        }
    }
    // At most two were accepted (one more after the bucket's second); each
    // of the 18 or more refusals paused the next read by at least 100 ms
    // (retry_after_ms is about a second here): a lower bound, so slowness
    // cannot fail it.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1700),
        "refusals did not pause reading: 20 replies in {:?}",
        started.elapsed()
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_across_gateways() {
    let redis = testkit::RedisServer::start();
    let flags = ["--max-connections-per-user=2"];
    let a = Gateway::start(settings("rl-cap-a", Some(&redis), &flags)).await;
    let b = Gateway::start(settings("rl-cap-b", Some(&redis), &flags)).await;
    let first = a.client("capped").await;
    let _second = b.client("capped").await;
    // One on each gateway: the third is over the cluster-wide cap, though
    // gateway a holds only one.
    refused_over_the_cap(a.addr).await;
    // A closed connection frees its slot at once (its grace period keeps
    // the user online, not the slot): a reload does not lock the user out.
    drop(first);
    a_slot_frees(b.addr).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_announces_the_rate_limits_and_the_cursor_rate() {
    let g = Gateway::start(settings(
        "announce",
        None,
        &[
            "--rate-limits=chat=3/s:7",
            "--user-rate-limits=chat=6/s:14",
            "--cursor-hz=10",
        ],
    ))
    .await;
    let (_, welcome) =
        WsClient::connect_ok(g.addr, testkit::ws::Connect::token(&token("reader"))).await;
    let limits = welcome.limits;
    let chat = limits.rate_limits["chat"];
    assert_eq!((chat.per_sec, chat.burst), (3.0, 7.0));
    let chat = limits.user_rate_limits["chat"];
    assert_eq!((chat.per_sec, chat.burst), (6.0, 14.0));
    assert_eq!(
        limits.rate_limits.keys().collect::<Vec<_>>(),
        ["chat", "cursors", "objects", "pixels"]
    );
    assert_eq!(limits.cursor_hz, 10);
    g.stop().await;
}
