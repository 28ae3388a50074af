//! Fog stays hidden everywhere: a gm does everything one can do to a fog
//! region (create, update, move, like, activity at it, delete) on one
//! gateway, and everything a player can receive on another gateway (live
//! events over WebSocket and SSE, `history`, `objects`, `presence`,
//! `chat_history`, and the REST reads) is scanned for the region's id, its
//! coordinates and its properties. None may appear; the player sees each
//! fog event as `hidden` and an ordinary token in full.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::auth::{MintClaims, Role, mint_hs256};
use shared::protocol::*;
use shared::{CanvasId, RequestId};
use std::collections::BTreeSet;
use testkit::RedisServer;
use testkit::ws::{Connect, WsClient};

/// What may not reach a player: the fog region's properties and every
/// coordinate it ever had (chosen to appear nowhere else).
const SECRETS: [&str; 6] = [
    "HIDDEN-PAYLOAD",
    "37.375",
    "41.625",
    "53.875",
    "3.125",
    "2.875",
];

fn id(n: u64) -> Option<RequestId> {
    Some(RequestId::Num(n))
}

fn c() -> CanvasId {
    canvas("fogged")
}

async fn client_as(g: &Gateway, user: &str, role: Role) -> WsClient {
    let mut claims = MintClaims::for_user(user, 600);
    claims.role = Some(role);
    let token = mint_hs256(SECRET.as_bytes(), &claims).unwrap();
    let (mut client, _) = WsClient::connect_ok(g.addr, Connect::token(&token)).await;
    join_ok(&mut client, 0, "fogged", true).await;
    client
}

/// Sends a command and waits for its ack, passing over events.
async fn ack(client: &mut WsClient, msg: ClientMessage) -> Option<AckResult> {
    let want = msg.id().cloned();
    client.send(&msg).await;
    loop {
        match client.recv().await {
            ServerMessage::Ack(a) if Some(&a.id) == want.as_ref() => return a.result,
            ServerMessage::Error(e) => panic!("refused: {e:?}"),
            _ => {}
        }
    }
}

/// Everything the gm does to the fog region (and to a token, so that the
/// player's view is not simply empty), ending with a chat "END".
async fn gm_acts(gm: &mut WsClient) -> (String, String) {
    let create = |n, kind: &str, x, y, w, h, secret: &str| {
        ClientMessage::ObjectCreate(ObjectCreate {
            id: id(n),
            canvas: c(),
            key: None,
            kind: kind.into(),
            x,
            y,
            w,
            h,
            props: [("note".to_string(), serde_json::json!(secret))]
                .into_iter()
                .collect(),
        })
    };
    let fog = match ack(
        gm,
        create(1, "fog", 37.375, 41.625, 3.125, 2.875, "HIDDEN-PAYLOAD"),
    )
    .await
    {
        Some(AckResult::Published(p)) => p.object.unwrap(),
        other => panic!("{other:?}"),
    };
    let token = match ack(gm, create(2, "token", 5.0, 6.0, 1.0, 1.0, "visible")).await {
        Some(AckResult::Published(p)) => p.object.unwrap(),
        other => panic!("{other:?}"),
    };
    let on = |object: &str| ObjectRef {
        id: None,
        canvas: c(),
        key: None,
        object: object.to_owned(),
    };
    let props = [("note".to_string(), serde_json::json!("HIDDEN-PAYLOAD 2"))];
    let steps = vec![
        ClientMessage::ObjectUpdate(ObjectUpdate {
            id: None,
            canvas: c(),
            key: None,
            object: fog.clone(),
            props: props.into_iter().collect(),
        }),
        ClientMessage::ObjectMove(ObjectMove {
            id: None,
            canvas: c(),
            key: None,
            object: fog.clone(),
            x: 53.875,
            y: 41.625,
            w: Some(3.125),
            h: None,
        }),
        ClientMessage::ObjectLike(on(&fog)),
        ClientMessage::Activity(ActivitySend {
            id: None,
            canvas: c(),
            state: ActivityState::Editing,
            x: Some(53.875),
            y: Some(41.625),
            object: Some(fog.clone()),
        }),
        ClientMessage::ObjectMove(ObjectMove {
            id: None,
            canvas: c(),
            key: None,
            object: token.clone(),
            x: 7.0,
            y: 8.0,
            w: None,
            h: None,
        }),
        ClientMessage::Activity(ActivitySend {
            id: None,
            canvas: c(),
            state: ActivityState::Editing,
            x: Some(7.0),
            y: Some(8.0),
            object: Some(token.clone()),
        }),
        ClientMessage::ObjectDelete(on(&fog)),
    ];
    for (n, mut step) in steps.into_iter().enumerate() {
        set_id(&mut step, 10 + n as u64);
        ack(gm, step).await;
    }
    // A fog region that stays, for the snapshot reads below.
    ack(
        gm,
        create(30, "fog", 37.375, 41.625, 3.125, 2.875, "HIDDEN-PAYLOAD"),
    )
    .await;
    ack(gm, chat(31, "fogged", "END")).await;
    (fog, token)
}

fn set_id(msg: &mut ClientMessage, n: u64) {
    match msg {
        ClientMessage::ObjectUpdate(m) => m.id = id(n),
        ClientMessage::ObjectMove(m) => m.id = id(n),
        ClientMessage::ObjectLike(m) | ClientMessage::ObjectDelete(m) => m.id = id(n),
        ClientMessage::Activity(m) => m.id = id(n),
        _ => {}
    }
}

/// Fails if `text` (a message as the player got it) carries a secret.
fn assert_clean(what: &str, text: &str, fog: &str) {
    assert!(!text.contains(fog), "{what} leaks the fog id: {text}");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_a_player_can_receive_reveals_fog() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings(
        "fog-a",
        Some(&redis),
        &["--presence-events-max=100"],
    ))
    .await;
    let b = Gateway::start(settings(
        "fog-b",
        Some(&redis),
        &["--presence-events-max=100"],
    ))
    .await;
    let mut player = client_as(&b, "ann", Role::Player).await;
    let path = format!("/sse/canvases/fogged?token={}", token("sse-ann"));
    let mut sse = SseClient::open(b.addr, &path, None).await.unwrap();
    let mut gm = client_as(&a, "gm", Role::Gm).await;
    let (fog, token_id) = gm_acts(&mut gm).await;

    // Live, over WebSocket: every message until the END chat.
    let mut kinds = BTreeSet::new();
    loop {
        let msg = player.recv().await;
        kinds.insert(msg.kind());
        assert_clean(msg.kind(), &serde_json::to_string(&msg).unwrap(), &fog);
        if matches!(&msg, ServerMessage::Chat(m) if m.text == "END") {
            break;
        }
    }
    for kind in [
        "hidden",
        "object_created",
        "object_moved",
        "activity",
        "user_joined",
    ] {
        assert!(
            kinds.contains(kind),
            "the player never got {kind}: {kinds:?}"
        );
    }
    // Live, over SSE.
    loop {
        let event = sse.next().await;
        assert_clean("an SSE event", &event.data, &fog);
        if event.data.contains("\"END\"") {
            break;
        }
    }
    // Reads over WebSocket.
    let reads = [
        ClientMessage::History(HistoryRequest {
            id: id(50),
            canvas: c(),
            since: 0,
            limit: Some(1000),
        }),
        ClientMessage::Objects(ObjectsRequest {
            id: id(51),
            canvas: c(),
            after: None,
        }),
        ClientMessage::Presence(PresenceRequest {
            id: id(52),
            canvas: c(),
        }),
        ClientMessage::ChatHistory(ChatHistoryRequest {
            id: id(53),
            canvas: c(),
            before: None,
            limit: None,
        }),
    ];
    for read in reads {
        let result = ack(&mut player, read).await;
        assert_clean("a read", &serde_json::to_string(&result).unwrap(), &fog);
        if let Some(AckResult::Objects(page)) = &result {
            assert!(
                page.objects.iter().any(|o| o.id == token_id),
                "the token is there"
            );
        }
    }
    // Reads over REST.
    for read in ["events?since=0", "activity", "objects", "presence", "chat"] {
        let path = format!("/api/canvases/fogged/{read}");
        let (status, _, body) = http_get(b.addr, &path, Some(&token("ann"))).await;
        assert_eq!(status, 200, "{path}");
        assert_clean(&path, &String::from_utf8_lossy(&body), &fog);
    }
    a.stop().await;
    b.stop().await;
}
