//! Access per canvas across two gateways: a `members` canvas refuses
//! non-members everywhere (join, REST reads, SSE, the catalogue) exactly as
//! a canvas that does not exist; memberships managed through the server
//! API reach live connections at once; deleting a canvas or changing its
//! visibility removes those who may no longer see it; the server API
//! disconnects a user everywhere.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::auth::Role;
use shared::protocol::ServerMessage;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::ws::{Connect, WsClient};
use testkit::{PostgresServer, RedisServer};

const KEY: &str = "server-api-key-0123456789abcdef0123";

/// A request with an `Authorization` header; status and JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, _, raw) =
        testkit::http::request(addr, method, path, auth, body.map(str::as_bytes)).await;
    (
        status,
        serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
    )
}

fn api_key() -> String {
    format!("ApiKey {KEY}")
}

async fn connect(addr: SocketAddr, token: &str) -> WsClient {
    WsClient::connect_ok(addr, Connect::token(token)).await.0
}

/// Two gateways on one Redis and one Postgres, with the server API key.
async fn two_gateways(redis: &RedisServer, pg: &PostgresServer) -> (Gateway, Gateway) {
    let key = format!("--api-keys={KEY}");
    let a = gateway_with_db("acc-a", Some(redis), pg, &[&key]).await;
    let b = gateway_with_db("acc-b", Some(redis), pg, &[&key]).await;
    (a, b)
}

/// Creates `id` with `visibility` through the catalogue API.
async fn create(addr: SocketAddr, id: &str, visibility: &str) {
    let body = serde_json::json!({"id": id, "width": 16, "height": 16, "visibility": visibility});
    let (status, created) = call(
        addr,
        "POST",
        "/api/canvases",
        Some(&api_key()),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["visibility"], visibility);
}

/// Joins and returns the refusal.
async fn refused_join(c: &mut WsClient, id: u64, canvas: &str) -> shared::protocol::ErrorReply {
    c.send(&join(id, canvas, false)).await;
    expect_error(c).await
}

/// The next `access_changed`, skipping other events.
async fn access_changed(c: &mut WsClient) -> shared::protocol::AccessChanged {
    loop {
        match c.recv().await {
            ServerMessage::AccessChanged(a) => return a,
            ServerMessage::Error(e) => panic!("error instead of access_changed: {e:?}"),
            _ => continue,
        }
    }
}

/// Waits for the ack of request `id`, skipping events.
async fn acked(c: &mut WsClient, id: u64) {
    loop {
        match c.recv().await {
            ServerMessage::Ack(a) if a.id == shared::RequestId::Num(id) => return,
            ServerMessage::Error(e) => panic!("error instead of ack {id}: {e:?}"),
            _ => continue,
        }
    }
}

/// What a REST read or an SSE stream of `canvas` answers `bearer`: status,
/// code and message with the canvas id taken out.
async fn read_refusal(
    addr: SocketAddr,
    path: &str,
    canvas: &str,
    bearer: &str,
) -> (u16, String, String) {
    let path = path.replace("{id}", canvas);
    let (status, body) = call(addr, "GET", &path, Some(&format!("Bearer {bearer}")), None).await;
    let message = body["message"]
        .as_str()
        .unwrap_or_default()
        .replace(canvas, "ID");
    (
        status,
        body["code"].as_str().unwrap_or_default().to_owned(),
        message,
    )
}

const READS: [&str; 8] = [
    "/api/canvases/{id}",
    "/api/canvases/{id}/snapshot",
    "/api/canvases/{id}/events?since=0",
    "/api/canvases/{id}/chat",
    "/api/canvases/{id}/presence",
    "/api/canvases/{id}/objects",
    "/api/canvases/{id}/activity",
    "/sse/canvases/{id}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_canvas_cannot_be_told_from_a_missing_one_by_outsiders() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let (a, b) = two_gateways(&redis, &pg).await;
    create(a.addr, "vault", "members").await;
    create(a.addr, "square", "public").await;
    // Canvases are created on first use here: "nowhere" would be created
    // by the first read, so the missing canvas is one deleted before.
    create(a.addr, "gone", "public").await;
    let (status, _) = call(
        a.addr,
        "DELETE",
        "/api/canvases/gone",
        Some(&api_key()),
        None,
    )
    .await;
    assert_eq!(status, 204);

    let outsider = token("outsider");
    for (gw, name) in [(&a, "a"), (&b, "b")] {
        let mut c = connect(gw.addr, &outsider).await;
        let hidden = refused_join(&mut c, 1, "vault").await;
        let missing = refused_join(&mut c, 2, "gone").await;
        assert_eq!(hidden.code, ErrorCode::Forbidden, "on {name}");
        assert_eq!(missing.code, ErrorCode::Forbidden, "on {name}");
        assert_eq!(
            hidden.message.replace("vault", "ID"),
            missing.message.replace("gone", "ID")
        );
        join_ok(&mut c, 3, "square", false).await;
        for path in READS {
            let hidden = read_refusal(gw.addr, path, "vault", &outsider).await;
            let missing = read_refusal(gw.addr, path, "gone", &outsider).await;
            assert_eq!(hidden.0, 403, "{path} on {name}: {hidden:?}");
            assert_eq!(hidden.1, "E008", "{path}");
            assert_eq!(
                hidden, missing,
                "{path} tells a hidden canvas from a missing one"
            );
        }
        // Writes over REST are refused the same way, and apply nothing.
        let (status, err) = call(
            gw.addr,
            "POST",
            "/api/canvases/vault/draw",
            Some(&format!("Bearer {outsider}")),
            Some(r#"{"pixels": [{"x": 1, "y": 1, "color": 2}]}"#),
        )
        .await;
        assert_eq!((status, err["code"].as_str()), (403, Some("E008")), "{err}");
    }
    // The list leaves it out for the outsider, not for a member or an admin.
    let list = |bearer: String| async move {
        let (_, body) = call(
            a.addr,
            "GET",
            "/api/canvases?limit=100",
            Some(&bearer),
            None,
        )
        .await;
        body["canvases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let ids = list(format!("Bearer {outsider}")).await;
    assert!(
        ids.contains(&"square".to_owned()) && !ids.contains(&"vault".to_owned()),
        "{ids:?}"
    );
    let named = token_with("named", None, &[("vault", Role::Spectator)]);
    assert!(
        list(format!("Bearer {named}"))
            .await
            .contains(&"vault".to_owned())
    );
    assert!(
        list(format!("Bearer {}", admin_token("root")))
            .await
            .contains(&"vault".to_owned())
    );

    // A token naming the canvas is let in, with that role; `none` is not.
    let mut named = connect(b.addr, &named).await;
    named.send(&join(1, "vault", false)).await;
    assert_eq!(expect_joined(&mut named, 1).await.role, Role::Spectator);
    let barred = token_with("barred", Some(Role::Gm), &[("square", Role::None)]);
    let mut barred = connect(a.addr, &barred).await;
    assert_eq!(
        refused_join(&mut barred, 1, "square").await.code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused_join(&mut barred, 2, "vault").await.code,
        ErrorCode::Forbidden
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_are_managed_by_the_server_api_and_reach_live_connections() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let (a, b) = two_gateways(&redis, &pg).await;
    create(a.addr, "guild", "members").await;
    let key = api_key();

    // Every membership call needs the key.
    for (method, path, body) in [
        ("GET", "/api/server/canvases/guild/members", None),
        (
            "PUT",
            "/api/server/canvases/guild/members/mia",
            Some(r#"{"role": "player"}"#),
        ),
        ("DELETE", "/api/server/canvases/guild/members/mia", None),
        ("POST", "/api/server/users/mia/disconnect", None),
        ("GET", "/api/server/canvases/guild/presence", None),
        ("GET", "/api/server/canvases/guild/events", None),
    ] {
        for auth in [
            None,
            Some("ApiKey wrong-key-0123456789abcdef0123".to_owned()),
            Some(format!("Bearer {}", token("mia"))),
        ] {
            let (status, err) = call(a.addr, method, path, auth.as_deref(), body).await;
            assert!(
                matches!(status, 401 | 403),
                "{method} {path} with {auth:?}: {status} {err}"
            );
        }
    }
    // Bad memberships are refused.
    for (path, body, status, code) in [
        (
            "/api/server/canvases/guild/members/mia",
            r#"{"role": "none"}"#,
            400,
            "E007",
        ),
        (
            "/api/server/canvases/guild/members/mia",
            r#"{"role": "king"}"#,
            400,
            "E006",
        ),
        (
            "/api/server/canvases/nope/members/mia",
            r#"{"role": "gm"}"#,
            404,
            "E009",
        ),
    ] {
        let (got, err) = call(a.addr, "PUT", path, Some(&key), Some(body)).await;
        assert_eq!(
            (got, err["code"].as_str()),
            (status, Some(code)),
            "{path} {body}"
        );
    }

    let mia = token("mia");
    let mut on_b = connect(b.addr, &mia).await;
    assert_eq!(
        refused_join(&mut on_b, 1, "guild").await.code,
        ErrorCode::Forbidden
    );
    let (status, set) = call(
        a.addr,
        "PUT",
        "/api/server/canvases/guild/members/mia",
        Some(&key),
        Some(r#"{"role": "player"}"#),
    )
    .await;
    assert_eq!(
        (status, set["role"].as_str()),
        (200, Some("player")),
        "{set}"
    );
    // Gateway b was told: mia gets in at once, without waiting for a cache.
    on_b.send(&join(2, "guild", false)).await;
    assert_eq!(expect_joined(&mut on_b, 2).await.role, Role::Player);
    on_b.send(&draw(3, "guild", 1, 1, 5)).await;
    expect_ack(&mut on_b, 3).await;
    let mut sse = SseClient::open(a.addr, &format!("/sse/canvases/guild?token={mia}"), None)
        .await
        .unwrap();
    assert_eq!(sse.next().await.event.as_deref(), Some("joined"));
    let (_, listed) = call(
        a.addr,
        "GET",
        "/api/server/canvases/guild/members",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        listed["members"],
        serde_json::json!([{"user": "mia", "role": "player"}])
    );
    let (_, present) = call(
        a.addr,
        "GET",
        "/api/server/canvases/guild/presence",
        Some(&key),
        None,
    )
    .await;
    assert!(
        present["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == "mia"),
        "{present}"
    );
    let (_, history) = call(
        a.addr,
        "GET",
        "/api/server/canvases/guild/events?since=0",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(history["events"].as_array().unwrap().len(), 1, "{history}");

    // Raised to gm: the connection is told, leaves, and joins as gm.
    let started = std::time::Instant::now();
    call(
        a.addr,
        "PUT",
        "/api/server/canvases/guild/members/mia",
        Some(&key),
        Some(r#"{"role": "gm"}"#),
    )
    .await;
    assert_eq!(access_changed(&mut on_b).await.role, Role::Gm);
    let ev = sse.next().await;
    assert_eq!(ev.event.as_deref(), Some("access_changed"), "{ev:?}");
    assert!(ev.data.contains(r#""role":"gm""#), "{}", ev.data);
    on_b.send(&join(4, "guild", false)).await;
    assert_eq!(expect_joined(&mut on_b, 4).await.role, Role::Gm);

    // Removed: out at once on every gateway, and refused from then on.
    let (status, _) = call(
        a.addr,
        "DELETE",
        "/api/server/canvases/guild/members/mia",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(access_changed(&mut on_b).await.role, Role::None);
    let revoked = started.elapsed();
    on_b.send(&draw(5, "guild", 2, 2, 5)).await;
    assert_eq!(expect_error(&mut on_b).await.code, ErrorCode::NotJoined);
    assert_eq!(
        refused_join(&mut on_b, 6, "guild").await.code,
        ErrorCode::Forbidden
    );
    let mut on_a = connect(a.addr, &mia).await;
    assert_eq!(
        refused_join(&mut on_a, 1, "guild").await.code,
        ErrorCode::Forbidden
    );
    let (status, err) = call(
        a.addr,
        "DELETE",
        "/api/server/canvases/guild/members/mia",
        Some(&key),
        None,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (404, Some("E009")));
    assert!(revoked < Duration::from_secs(5), "{revoked:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_changes_and_deletion_remove_those_who_may_no_longer_see() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let (a, b) = two_gateways(&redis, &pg).await;
    create(a.addr, "hall", "public").await;
    let key = api_key();
    let mut guest = b.client("guest").await;
    join_ok(&mut guest, 1, "hall", false).await;
    let member = token_with("member", None, &[("hall", Role::Player)]);
    let mut member = connect(b.addr, &member).await;
    join_ok(&mut member, 1, "hall", false).await;

    // Public → members: the guest is out, the member (by token) stays.
    let (status, def) = call(
        a.addr,
        "PATCH",
        "/api/canvases/hall",
        Some(&key),
        Some(r#"{"visibility": "members"}"#),
    )
    .await;
    assert_eq!(
        (status, def["visibility"].as_str()),
        (200, Some("members")),
        "{def}"
    );
    assert_eq!(access_changed(&mut guest).await.role, Role::None);
    member.send(&draw(2, "hall", 3, 3, 1)).await;
    acked(&mut member, 2).await;
    let (status, err) = call(
        a.addr,
        "PATCH",
        "/api/canvases/hall",
        Some(&key),
        Some(r#"{"visibility": "secret"}"#),
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("E007")));
    let (status, err) = call(
        a.addr,
        "PATCH",
        "/api/canvases/hall",
        Some(&key),
        Some("{}"),
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("E007")));

    // Deleted: the member is out too.
    let (status, _) = call(a.addr, "DELETE", "/api/canvases/hall", Some(&key), None).await;
    assert_eq!(status, 204);
    assert_eq!(access_changed(&mut member).await.role, Role::None);
    member.send(&draw(3, "hall", 3, 3, 1)).await;
    let refused = loop {
        match member.recv().await {
            ServerMessage::Error(e) => break e,
            _ => continue,
        }
    };
    assert_eq!(refused.code, ErrorCode::NotJoined);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_api_disconnects_a_user_everywhere() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let (a, b) = two_gateways(&redis, &pg).await;
    let mut ws_a = a.client("troll").await;
    join_ok(&mut ws_a, 1, "pub", false).await;
    let mut ws_b = b.client("troll").await;
    let mut bystander = b.client("bystander").await;
    join_ok(&mut bystander, 1, "pub", false).await;
    let troll = token("troll");
    let mut stream = SseClient::open(b.addr, &format!("/sse/canvases/pub?token={troll}"), None)
        .await
        .unwrap();
    assert_eq!(stream.next().await.event.as_deref(), Some("joined"));

    let (status, _) = call(
        a.addr,
        "POST",
        "/api/server/users/troll/disconnect",
        Some(&api_key()),
        None,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(ws_a.closed().await.code, Some(4004));
    assert_eq!(ws_b.closed().await.code, Some(4004));
    let last = stream.next().await;
    assert_eq!(last.event.as_deref(), Some("disconnected"), "{last:?}");
    assert!(last.data.contains("4004"), "{}", last.data);
    // Others are untouched.
    bystander.send(&draw(2, "pub", 1, 1, 1)).await;
    expect_ack(&mut bystander, 2).await;
    let (status, err) = call(
        a.addr,
        "POST",
        "/api/server/users/a%07b/disconnect",
        Some(&api_key()),
        None,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("E007")), "{err}");
    a.stop().await;
    b.stop().await;
}
