//! Targeted and system messages: a trusted backend (API key) notifies one
//! user on all their connections on every gateway, broadcasts to everyone
//! subscribed to `global`, and sends a notice to a canvas; the same over
//! Server-Sent Events.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::RequestId;
use shared::protocol::{ChannelRequest, ClientMessage, ServerMessage};
use std::net::SocketAddr;
use testkit::RedisServer;

const KEY: &str = "server-api-key-0123456789abcdef0123";

async fn api(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let auth = key.map(|k| format!("ApiKey {k}"));
    let (status, _, raw) = testkit::http::post_authorized(addr, path, auth.as_deref(), body).await;
    (
        status,
        serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_announcements_and_notices_reach_the_right_connections() {
    let redis = RedisServer::start();
    let key = format!("--api-keys=another-key-that-is-long-enough-000,{KEY}");
    let a = Gateway::start(settings("ch-a", Some(&redis), &[&key])).await;
    let b = Gateway::start(settings("ch-b", Some(&redis), &[&key])).await;
    let mut ada_a = a.client("ada").await;
    let mut ada_b = b.client("ada").await;
    let mut bob = a.client("bob").await;
    join_ok(&mut bob, 1, "c1", false).await;

    // One user, every connection, every gateway; nobody else.
    let (status, _) = api(
        b.addr,
        "/api/server/users/ada/notify",
        Some(KEY),
        r#"{"data": {"kind": "invite", "from": "bob"}}"#,
    )
    .await;
    assert_eq!(status, 202);
    for c in [&mut ada_a, &mut ada_b] {
        match c.recv().await {
            ServerMessage::Notification(n) => {
                assert_eq!(n.data["kind"], "invite");
                assert!(n.ts > 0);
            }
            other => panic!("{other:?}"),
        }
    }

    // Announcements reach those subscribed to global, on both gateways.
    subscribe(&mut bob, 2, "global", true).await;
    subscribe(&mut ada_b, 2, "global", true).await;
    let (status, _) = api(
        a.addr,
        "/api/server/broadcast",
        Some(KEY),
        r#"{"text": "maintenance at 5"}"#,
    )
    .await;
    assert_eq!(status, 202);
    for c in [&mut bob, &mut ada_b] {
        match c.recv().await {
            ServerMessage::Announcement(an) => assert_eq!(an.text, "maintenance at 5"),
            other => panic!("{other:?}"),
        }
    }
    // A notice to a canvas reaches its members.
    let (status, _) = api(
        b.addr,
        "/api/server/canvases/c1/notice",
        Some(KEY),
        r#"{"data": [1, 2]}"#,
    )
    .await;
    assert_eq!(status, 202);
    match bob.recv().await {
        ServerMessage::Notice(n) => assert_eq!(
            (n.canvas.as_str(), n.data.clone()),
            ("c1", serde_json::json!([1, 2]))
        ),
        other => panic!("{other:?}"),
    }
    // ada's first tab neither subscribed to global nor joined c1, and bob
    // got no notification: each one's next message is a marker.
    subscribe(&mut bob, 3, "global", false).await;
    api(
        b.addr,
        "/api/server/users/bob/notify",
        Some(KEY),
        r#"{"data": "marker"}"#,
    )
    .await;
    api(
        b.addr,
        "/api/server/users/ada/notify",
        Some(KEY),
        r#"{"data": "marker"}"#,
    )
    .await;
    for c in [&mut ada_a, &mut bob] {
        match c.recv().await {
            ServerMessage::Notification(n) => assert_eq!(n.data, "marker"),
            other => panic!("got something not meant for it: {other:?}"),
        }
    }
    // Unsubscribed: the next broadcast reaches ada_b only (after its marker).
    api(
        a.addr,
        "/api/server/broadcast",
        Some(KEY),
        r#"{"text": "second"}"#,
    )
    .await;
    assert!(matches!(ada_b.recv().await, ServerMessage::Notification(_)));
    assert!(matches!(ada_b.recv().await, ServerMessage::Announcement(an) if an.text == "second"));
    api(
        b.addr,
        "/api/server/users/bob/notify",
        Some(KEY),
        r#"{"data": "after"}"#,
    )
    .await;
    match bob.recv().await {
        ServerMessage::Notification(n) => {
            assert_eq!(n.data, "after", "an unsubscribed announcement arrived")
        }
        other => panic!("an unsubscribed announcement arrived: {other:?}"),
    }

    // Bad requests.
    for (path, key, body, want) in [
        (
            "/api/server/broadcast",
            None,
            r#"{"text": "x"}"#,
            (401, "E002"),
        ),
        (
            "/api/server/broadcast",
            Some("wrong-key-wrong-key-wrong-key-wrong"),
            r#"{"text": "x"}"#,
            (401, "E002"),
        ),
        (
            "/api/server/broadcast",
            Some(KEY),
            r#"{"text": ""}"#,
            (400, "E007"),
        ),
        (
            "/api/server/broadcast",
            Some(KEY),
            r#"{"message": "x"}"#,
            (400, "E006"),
        ),
        (
            "/api/server/users/ada/notify",
            Some(KEY),
            "not json",
            (400, "E006"),
        ),
        (
            "/api/server/canvases/bad%20id/notice",
            Some(KEY),
            r#"{"data": 1}"#,
            (400, "E006"),
        ),
    ] {
        let (status, err) = api(a.addr, path, key, body).await;
        assert_eq!(
            (status, err["code"].as_str().unwrap_or_default()),
            want,
            "{path} {body}"
        );
    }
    bob.send(&ClientMessage::Subscribe(ChannelRequest {
        id: Some(RequestId::Num(9)),
        channel: "secret".into(),
    }))
    .await;
    assert_eq!(expect_error(&mut bob).await.code, ErrorCode::InvalidValue);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_announcements_stream_as_server_sent_events() {
    let redis = RedisServer::start();
    let key = format!("--api-keys={KEY}");
    let a = Gateway::start(settings("chs-a", Some(&redis), &[&key])).await;
    let b = Gateway::start(settings("chs-b", Some(&redis), &[&key])).await;
    let mut mine = SseClient::open(
        b.addr,
        &format!("/sse/notifications?token={}", token("carol")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(mine.next().await.event.as_deref(), Some("subscribed"));
    let mut system = SseClient::open(
        b.addr,
        &format!("/sse/system?token={}", token("dave")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(system.next().await.event.as_deref(), Some("subscribed"));

    api(
        a.addr,
        "/api/server/users/carol/notify",
        Some(KEY),
        r#"{"data": {"n": 1}}"#,
    )
    .await;
    let ev: serde_json::Value = serde_json::from_str(&mine.next().await.data).unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["data"]["n"].as_u64()),
        (Some("notification"), Some(1))
    );
    api(
        a.addr,
        "/api/server/broadcast",
        Some(KEY),
        r#"{"text": "hello all"}"#,
    )
    .await;
    let ev: serde_json::Value = serde_json::from_str(&system.next().await.data).unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["text"].as_str()),
        (Some("announcement"), Some("hello all"))
    );
    let (status, _, _) = http_get(b.addr, "/sse/notifications", None).await;
    assert_eq!(status, 401);
    drop((mine, system));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_notice_is_numbered_kept_in_the_history_and_applied_once_per_key() {
    let redis = RedisServer::start();
    let key = format!("--api-keys={KEY}");
    let a = Gateway::start(settings("dn-a", Some(&redis), &[&key])).await;
    let b = Gateway::start(settings("dn-b", Some(&redis), &[&key])).await;
    let mut bob = b.client("bob").await;
    join_ok(&mut bob, 1, "table", false).await;
    bob.send(&chat(2, "table", "before")).await;
    expect_ack(&mut bob, 2).await;

    let body = r#"{"data": {"round": 3}, "durable": true, "key": "round-3"}"#;
    let (status, first) = api(a.addr, "/api/server/canvases/table/notice", Some(KEY), body).await;
    assert_eq!((status, first["seq"].as_u64()), (200, Some(2)), "{first}");
    match bob.recv().await {
        ServerMessage::Notice(n) => {
            assert_eq!((n.seq, n.data["round"].as_u64()), (Some(2), Some(3)))
        }
        other => panic!("{other:?}"),
    }
    // Resent with the same key: the first seq, nothing applied again.
    let (status, again) = api(a.addr, "/api/server/canvases/table/notice", Some(KEY), body).await;
    assert_eq!((status, again["seq"].as_u64()), (200, Some(2)));
    bob.send(&chat(3, "table", "after")).await;
    match expect_ack(&mut bob, 3).await {
        Some(shared::protocol::AckResult::Published(p)) => assert_eq!(p.seq, 3),
        other => panic!("{other:?}"),
    }
    // In the history, between the chats.
    let t = token("reader");
    let (_, _, raw) =
        testkit::http::get(a.addr, "/api/canvases/table/events?since=0", Some(&t)).await;
    let page: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let types: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["chat", "notice", "chat"]);
    // A key without durable is refused; so is a durable notice without data.
    let (status, err) = api(
        a.addr,
        "/api/server/canvases/table/notice",
        Some(KEY),
        r#"{"data": 1, "key": "k"}"#,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("E007")));
    let (status, err) = api(
        a.addr,
        "/api/server/canvases/table/notice",
        Some(KEY),
        r#"{"durable": true}"#,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("E006")));
    a.stop().await;
    b.stop().await;
}
