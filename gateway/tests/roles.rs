//! Roles: every role x every operation is allowed or refused with E008, as
//! docs/PROTOCOL.md's table says; the role comes from the token's `roles`
//! for the canvas, then its `role`, then EASEL_DEFAULT_ROLE.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::RequestId;
use shared::auth::Role;
use shared::protocol::*;
use testkit::ws::{Connect, WsClient};

/// The operations a role is checked for, each with a fresh request id.
fn operation(op: &str, id: u64) -> ClientMessage {
    match op {
        "cursor" => cursor(Some(id), "r", 1.0, 1.0),
        "chat" => chat(id, "r", "hello"),
        "draw" => draw(id, "r", 1, 1, 1),
        "history" => ClientMessage::History(HistoryRequest {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            since: 0,
            limit: Some(10),
        }),
        "chat_history" => ClientMessage::ChatHistory(ChatHistoryRequest {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            before: None,
            limit: Some(10),
        }),
        "objects" => ClientMessage::Objects(ObjectsRequest {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            after: None,
        }),
        "object_create" => ClientMessage::ObjectCreate(ObjectCreate {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            key: None,
            kind: "token".into(),
            x: 1.0,
            y: 1.0,
            w: 1.0,
            h: 1.0,
            props: Default::default(),
        }),
        "fog_create" => ClientMessage::ObjectCreate(ObjectCreate {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            key: None,
            kind: "fog".into(),
            x: 1.0,
            y: 1.0,
            w: 1.0,
            h: 1.0,
            props: Default::default(),
        }),
        // On an object nobody has: a role allowed to try gets E009.
        "object_update" => ClientMessage::ObjectUpdate(ObjectUpdate {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            key: None,
            object: "nobody-has-this".into(),
            props: [("a".to_owned(), 1.into())].into(),
        }),
        "object_move" => ClientMessage::ObjectMove(ObjectMove {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            key: None,
            object: "nobody-has-this".into(),
            x: 1.0,
            y: 1.0,
            w: None,
            h: None,
        }),
        "object_delete" => ClientMessage::ObjectDelete(ObjectRef {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            key: None,
            object: "nobody-has-this".into(),
        }),
        "object_like" => ClientMessage::ObjectLike(ObjectRef {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            key: None,
            object: "nobody-has-this".into(),
        }),
        "activity" => ClientMessage::Activity(ActivitySend {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            state: ActivityState::Typing,
            x: None,
            y: None,
            object: None,
        }),
        "clear" => ClientMessage::Clear(CanvasRequest {
            id: Some(RequestId::Num(id)),
            canvas: canvas("r"),
            key: None,
        }),
        other => panic!("no operation {other}"),
    }
}

/// Joins "r" and returns the role the gateway reports.
async fn join_role(c: &mut WsClient) -> Role {
    c.send(&join(1, "r", false)).await;
    match expect_ack(c, 1).await {
        Some(AckResult::Joined(j)) => j.role,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_and_operation_is_allowed_or_refused_with_e008() {
    let g = Gateway::start(settings("roles", None, &["--default-role=spectator"])).await;
    // Who, how their role is given, and what they are.
    let cases: Vec<(&str, String, Role)> = vec![
        (
            "default",
            token_with("u-default", None, &[]),
            Role::Spectator,
        ),
        (
            "spectator",
            token_with("u-spec", Some(Role::Spectator), &[]),
            Role::Spectator,
        ),
        // The per-canvas role wins over the token's default role.
        (
            "player",
            token_with("u-player", Some(Role::Spectator), &[("r", Role::Player)]),
            Role::Player,
        ),
        ("gm", token_with("u-gm", Some(Role::Gm), &[]), Role::Gm),
        (
            "gm elsewhere",
            token_with("u-other", None, &[("elsewhere", Role::Gm)]),
            Role::Spectator,
        ),
    ];
    // The table in docs/PROTOCOL.md: the least role each operation needs.
    let needs = [
        ("cursor", Role::Spectator),
        ("chat", Role::Spectator),
        ("history", Role::Spectator),
        ("chat_history", Role::Spectator),
        ("objects", Role::Spectator),
        ("object_like", Role::Spectator),
        ("activity", Role::Spectator),
        ("draw", Role::Player),
        ("object_create", Role::Player),
        ("object_update", Role::Player),
        ("object_move", Role::Player),
        ("object_delete", Role::Player),
        ("fog_create", Role::Gm),
        ("clear", Role::Gm),
    ];
    for (who, token, role) in cases {
        let (mut c, _) = WsClient::connect_ok(g.addr, Connect::token(&token)).await;
        assert_eq!(join_role(&mut c).await, role, "{who}");
        for (i, (op, needed)) in needs.iter().enumerate() {
            let id = 100 + i as u64;
            c.send(&operation(op, id)).await;
            let reply = c.recv().await;
            if role >= *needed {
                // Allowed: done, or (for an object nobody has) not found.
                let ok = match &reply {
                    ServerMessage::Ack(a) => a.id == RequestId::Num(id),
                    ServerMessage::Error(e) => {
                        e.code == ErrorCode::NotFound && e.id == Some(RequestId::Num(id))
                    }
                    _ => false,
                };
                assert!(ok, "{who} {op}: {reply:?}");
            } else {
                match reply {
                    ServerMessage::Error(e) => {
                        assert_eq!(e.code, ErrorCode::Forbidden, "{who} {op}");
                        assert_eq!(e.id, Some(RequestId::Num(id)));
                        assert!(e.message.contains(needed.name()), "{}", e.message);
                    }
                    other => panic!("{who} {op}: expected E008, got {other:?}"),
                }
            }
        }
        // Leaving is always allowed, and the connection stays usable.
        c.send(&leave(200, "r")).await;
        expect_ack(&mut c, 200).await;
    }
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_role_is_player_and_a_refused_draw_reaches_no_one() {
    let g = Gateway::start(settings("roles-default", None, &[])).await;
    let (mut player, _) = WsClient::connect_ok(g.addr, Connect::token(&token("anyone"))).await;
    assert_eq!(join_role(&mut player).await, Role::Player);
    let (mut spectator, _) = WsClient::connect_ok(
        g.addr,
        Connect::token(&token_with("watcher", Some(Role::Spectator), &[])),
    )
    .await;
    assert_eq!(join_role(&mut spectator).await, Role::Spectator);
    spectator.send(&draw(5, "r", 2, 2, 2)).await;
    assert_eq!(
        expect_error(&mut spectator).await.code,
        ErrorCode::Forbidden
    );
    // The player's next event is the first it sees: nothing was published.
    spectator.send(&chat(6, "r", "marker")).await;
    expect_ack(&mut spectator, 6).await;
    match player.recv().await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "marker"),
        other => panic!("the refused draw was published: {other:?}"),
    }
    g.stop().await;
}
