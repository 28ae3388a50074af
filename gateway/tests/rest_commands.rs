//! `POST /api/canvases/{id}/commands`: every canvas command in its
//! WebSocket form over HTTP, answered with the WebSocket ack, reaching
//! members on another gateway; resent keyed commands apply once.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use shared::auth::{MintClaims, Role, mint_hs256};
use shared::protocol::ServerMessage;
use std::net::SocketAddr;
use testkit::RedisServer;
use testkit::http::post;

async fn command(addr: SocketAddr, canvas: &str, token: Option<&str>, cmd: Value) -> (u16, Value) {
    let path = format!("/api/canvases/{canvas}/commands");
    let (status, _, raw) = post(addr, &path, token, &cmd.to_string()).await;
    (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_over_http_reach_members_and_resent_keys_apply_once() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("cmd-a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("cmd-b", Some(&redis), &[])).await;
    let mut watcher = a.client("watcher").await;
    join_ok(&mut watcher, 1, "cmds", false).await;
    let t = token("poster");

    let chat = json!({"type": "chat", "id": "c1", "canvas": "cmds", "key": "k-1", "text": "hello"});
    let (status, ack) = command(b.addr, "cmds", Some(&t), chat.clone()).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str()),
        (Some("ack"), Some("c1"))
    );
    let seq = ack["result"]["seq"].as_u64().unwrap();
    match watcher.recv().await {
        ServerMessage::Chat(c) => assert_eq!(
            (c.seq, c.author.id.as_str(), c.text.as_str()),
            (Some(seq), "poster", "hello")
        ),
        other => panic!("expected the chat, got {other:?}"),
    }
    // The same key again (its ack was lost, say): the first seq, nothing new.
    let (status, again) = command(a.addr, "cmds", Some(&t), chat).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["result"]["seq"].as_u64(), Some(seq));

    let create = json!({"type": "object_create", "canvas": "cmds", "kind": "token", "x": 1, "y": 2, "w": 1, "h": 1});
    let (status, ack) = command(b.addr, "cmds", Some(&t), create).await;
    assert_eq!(status, 200, "{ack}");
    let object = ack["result"]["object"].as_str().unwrap().to_owned();
    assert_eq!(ack["result"]["seq"].as_u64(), Some(seq + 1));
    let mv = json!({"type": "object_move", "canvas": "cmds", "object": object, "x": 5, "y": 6});
    let (status, ack) = command(b.addr, "cmds", Some(&t), mv).await;
    assert_eq!(status, 200, "{ack}");
    let mut kinds = Vec::new();
    for _ in 0..2 {
        kinds.push(watcher.recv().await.kind());
    }
    assert_eq!(kinds, ["object_created", "object_moved"]);

    let (status, page) = command(
        b.addr,
        "cmds",
        Some(&t),
        json!({"type": "history", "canvas": "cmds", "since": 0}),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["result"]["events"].as_array().unwrap().len(),
        3,
        "one chat (applied once), create, move"
    );
    let (status, list) = command(
        a.addr,
        "cmds",
        Some(&t),
        json!({"type": "presence", "canvas": "cmds"}),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["result"]["users"][0]["id"], "watcher");
    let (status, ack) = command(
        a.addr,
        "cmds",
        Some(&t),
        json!({"type": "cursor", "canvas": "cmds", "x": 3, "y": 3}),
    )
    .await;
    assert_eq!((status, ack["type"].as_str()), (200, Some("ack")));
    assert!(matches!(watcher.recv().await, ServerMessage::Cursor(c) if c.author.id == "poster"));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn commands_over_http_are_refused_with_the_websocket_codes() {
    let g = Gateway::start(settings("cmd-r", None, &[])).await;
    let t = token("ada");
    let mut spectator = MintClaims::for_user("sam", 600);
    spectator.role = Some(Role::Spectator);
    let spectator = mint_hs256(SECRET.as_bytes(), &spectator).unwrap();
    let draw = json!({"type": "draw", "canvas": "lobby", "pixels": [{"x": 1, "y": 1, "color": 1}]});
    let cases = [
        (None, draw.clone(), 401, "E002"),
        (Some(spectator.as_str()), draw.clone(), 403, "E008"),
        (
            Some(t.as_str()),
            json!({"type": "join", "canvas": "lobby"}),
            400,
            "E006",
        ),
        (Some(t.as_str()), json!({"type": "ping"}), 400, "E006"),
        (
            Some(t.as_str()),
            json!({"type": "draw", "canvas": "other", "pixels": []}),
            400,
            "E007",
        ),
        (
            Some(t.as_str()),
            json!({"type": "draw", "canvas": "lobby", "pixels": [{"x": 500, "y": 1, "color": 1}]}),
            400,
            "E007",
        ),
        (
            Some(t.as_str()),
            json!({"type": "teleport", "canvas": "lobby"}),
            400,
            "E006",
        ),
    ];
    for (token, cmd, status, code) in cases {
        let (got, body) = command(g.addr, "lobby", token, cmd.clone()).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{cmd}: {body}"
        );
    }
    g.stop().await;
}
