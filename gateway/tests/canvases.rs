//! The canvas catalogue in Postgres: create, list and get over REST; joins
//! and validation follow each canvas's own size and palette; unknown
//! canvases are refused as canvases the user may not see (E008); the
//! quickstart's `lobby` exists.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use std::net::SocketAddr;
use testkit::{PostgresServer, RedisServer};

async fn http_post(
    addr: SocketAddr,
    path: &str,
    bearer: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, _, raw) = testkit::http::post(addr, path, Some(bearer), body).await;
    (
        status,
        serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canvases_live_in_postgres_with_their_own_size_and_palette() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let db = format!("--database-url={}", pg.url());
    let g = Gateway::start(settings("cat", Some(&redis), &[&db])).await;
    let t = admin_token("admin");
    // A lobby screen listening on the global channel.
    let mut lobby = g.client("lobby-screen").await;
    subscribe(&mut lobby, 1, "global", true).await;

    let palette: Vec<String> = (0..16).map(|i| format!("#{:02x}0000", i * 16)).collect();
    let body = serde_json::json!({"id": "map-1", "width": 50, "height": 40, "palette": palette})
        .to_string();
    let (status, created) = http_post(g.addr, "/api/canvases", &t, &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["width"], 50);
    match lobby.recv().await {
        shared::protocol::ServerMessage::CanvasesChanged(c) => {
            assert_eq!((c.canvas.as_str(), c.change.as_str()), ("map-1", "created"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(created["palette"][15], "#f00000");
    let (status, err) = http_post(g.addr, "/api/canvases", &t, &body).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("E007")));
    for (bad, code) in [
        (r#"{"id": "x", "width": 0, "height": 10}"#, "E007"),
        (
            r##"{"id": "x", "width": 10, "height": 10, "palette": ["red", "#000000"]}"##,
            "E007",
        ),
        (
            r##"{"id": "x", "width": 10, "height": 10, "palette": ["#000000"]}"##,
            "E007",
        ),
        (r#"{"id": "bad id", "width": 10, "height": 10}"#, "E006"),
        (r#"{"id": "x", "width": 10}"#, "E006"),
        (
            r#"{"id": "x", "width": 10, "height": 10, "owner": "me"}"#,
            "E006",
        ),
    ] {
        let (status, err) = http_post(g.addr, "/api/canvases", &t, bad).await;
        assert_eq!((status, err["code"].as_str()), (400, Some(code)), "{bad}");
    }

    let (status, _, body) = http_get(g.addr, "/api/canvases/map-1", Some(&t)).await;
    assert_eq!(status, 200);
    let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got, created);
    let (status, _, _) = http_get(g.addr, "/api/canvases/nope", Some(&t)).await;
    assert_eq!(status, 404);
    let (status, _, body) = http_get(g.addr, "/api/canvases?limit=10", Some(&t)).await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ids: Vec<&str> = list["canvases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["lobby", "map-1"], "the quickstart's lobby exists");
    let (_, _, body) = http_get(g.addr, "/api/canvases?after=lobby&limit=10", Some(&t)).await;
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["canvases"].as_array().unwrap().len(), 1);

    // Joining follows the stored definition; unknown canvases are refused.
    let mut c = g.client("player").await;
    c.send(&join(1, "map-1", false)).await;
    let j = expect_joined(&mut c, 1).await;
    assert_eq!((j.width, j.height, j.palette_size), (50, 40, 16));
    c.send(&draw(2, "map-1", 49, 39, 15)).await;
    expect_ack(&mut c, 2).await;
    c.send(&draw(3, "map-1", 50, 0, 1)).await;
    assert_eq!(expect_error(&mut c).await.code, ErrorCode::InvalidValue);
    c.send(&draw(4, "map-1", 0, 0, 16)).await;
    assert_eq!(expect_error(&mut c).await.code, ErrorCode::InvalidValue);
    c.send(&join(5, "nope", false)).await;
    assert_eq!(expect_error(&mut c).await.code, ErrorCode::Forbidden);
    join_ok(&mut c, 6, "lobby", false).await;

    // The snapshot has the canvas's size and renders with its palette.
    let (status, h, cells) = http_get(
        g.addr,
        "/api/canvases/map-1/snapshot?format=cells",
        Some(&t),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            h["x-easel-width"].as_str(),
            h["x-easel-palette-size"].as_str()
        ),
        ("50", "16")
    );
    assert_eq!(cells.len(), 50 * 40);
    assert_eq!(cells[39 * 50 + 49], 15);
    // A read of a canvas that does not exist: the refusal of a hidden one.
    let (status, _, _) = http_get(g.addr, "/api/canvases/nope/snapshot", Some(&t)).await;
    assert_eq!(status, 403);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_every_canvas_is_implicit_and_creation_is_refused() {
    let g = Gateway::start(settings("implicit", None, &[])).await;
    let t = admin_token("u");
    let (status, err) = http_post(
        g.addr,
        "/api/canvases",
        &t,
        r#"{"id": "x", "width": 10, "height": 10}"#,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (501, Some("E012")));
    for method in ["PATCH", "DELETE"] {
        let auth = format!("Bearer {t}");
        let (status, _, raw) = testkit::http::request(
            g.addr,
            method,
            "/api/canvases/x",
            Some(&auth),
            Some(br#"{"title": "t"}"#),
        )
        .await;
        let err: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            (status, err["code"].as_str()),
            (501, Some("E012")),
            "{method}"
        );
    }
    let (status, _, body) = http_get(g.addr, "/api/canvases/anything", Some(&t)).await;
    assert_eq!(status, 200);
    let def: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(def["width"], 100);
    g.stop().await;
}

/// An admin request with any method; (status, JSON body or null).
async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, _, raw) =
        testkit::http::request(addr, method, path, authorization, body.map(str::as_bytes)).await;
    (
        status,
        serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
    )
}

async fn expect_change(c: &mut testkit::ws::WsClient, canvas: &str, change: &str) {
    match c.recv().await {
        shared::protocol::ServerMessage::CanvasesChanged(e) => {
            assert_eq!((e.canvas.as_str(), e.change.as_str()), (canvas, change))
        }
        other => panic!("expected canvases_changed {change}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_change_and_canvases_are_deleted_across_gateways() {
    const KEY: &str = "server-api-key-0123456789abcdef0123";
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let db = format!("--database-url={}", pg.url());
    let key = format!("--api-keys={KEY}");
    let a = Gateway::start(settings("cat-a", Some(&redis), &[&db, &key])).await;
    let b = Gateway::start(settings("cat-b", Some(&redis), &[&db, &key])).await;
    let admin = format!("Bearer {}", admin_token("root"));
    let user = format!("Bearer {}", token("someone"));
    let api_key = format!("ApiKey {KEY}");

    let mut lobby = b.client("lobby-screen").await;
    subscribe(&mut lobby, 1, "global", true).await;

    // Creating needs an admin: a plain user's token is forbidden.
    let new = r#"{"id": "room", "width": 20, "height": 20, "title": " First "}"#;
    let (status, err) =
        admin_request(a.addr, "POST", "/api/canvases", Some(&user), Some(new)).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("E008")));
    let (status, created) =
        admin_request(a.addr, "POST", "/api/canvases", Some(&admin), Some(new)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "First");
    expect_change(&mut lobby, "room", "created").await;

    // A member on gateway b draws.
    let mut member = b.client("member").await;
    join_ok(&mut member, 1, "room", false).await;
    member.send(&draw(2, "room", 1, 1, 3)).await;
    expect_ack(&mut member, 2).await;

    // Bad changes: every one refused with its code, nothing announced.
    for (auth, body, path, status, code) in [
        (None, r#"{"title": "x"}"#, "/api/canvases/room", 401, "E002"),
        (
            Some(user.as_str()),
            r#"{"title": "x"}"#,
            "/api/canvases/room",
            403,
            "E008",
        ),
        (
            Some("ApiKey wrong-key-0123456789abcdef0123"),
            r#"{"title": "x"}"#,
            "/api/canvases/room",
            401,
            "E002",
        ),
        (
            Some(admin.as_str()),
            r#"{"title": ""}"#,
            "/api/canvases/room",
            400,
            "E007",
        ),
        (
            Some(admin.as_str()),
            r#"{"title": "a\u0007b"}"#,
            "/api/canvases/room",
            400,
            "E007",
        ),
        (
            Some(admin.as_str()),
            r#"{"title": 7}"#,
            "/api/canvases/room",
            400,
            "E006",
        ),
        (
            Some(admin.as_str()),
            r#"{"name": "x"}"#,
            "/api/canvases/room",
            400,
            "E006",
        ),
        (
            Some(admin.as_str()),
            r#"{"title": "x"}"#,
            "/api/canvases/nope",
            404,
            "E009",
        ),
        (
            Some(admin.as_str()),
            r#"{"title": "x"}"#,
            "/api/canvases/bad%20id",
            400,
            "E006",
        ),
    ] {
        let (got, err) = admin_request(a.addr, "PATCH", path, auth, Some(body)).await;
        assert_eq!(
            (got, err["code"].as_str()),
            (status, Some(code)),
            "{auth:?} {body}"
        );
    }
    let long = format!(r#"{{"title": "{}"}}"#, "x".repeat(201));
    let (got, _) = admin_request(
        a.addr,
        "PATCH",
        "/api/canvases/room",
        Some(&admin),
        Some(&long),
    )
    .await;
    assert_eq!(got, 400);

    // A title change (here by a trusted backend's key) on gateway a: the
    // lobby and the members on b hear of it, and b serves it at once.
    let (status, updated) = admin_request(
        a.addr,
        "PATCH",
        "/api/canvases/room",
        Some(&api_key),
        Some(r#"{"title": "Second <b>"}"#),
    )
    .await;
    assert_eq!(
        (status, updated["title"].as_str()),
        (200, Some("Second <b>"))
    );
    expect_change(&mut lobby, "room", "updated").await;
    expect_change(&mut member, "room", "updated").await;
    let t = token("viewer");
    let (_, _, body) = http_get(b.addr, "/api/canvases/room", Some(&t)).await;
    let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got["title"], "Second <b>");
    let (_, _, body) = http_get(b.addr, "/api/canvases?limit=10", Some(&t)).await;
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        list["canvases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["title"] == "Second <b>")
    );
    // null clears it.
    let (status, cleared) = admin_request(
        a.addr,
        "PATCH",
        "/api/canvases/room",
        Some(&admin),
        Some(r#"{"title": null}"#),
    )
    .await;
    assert_eq!((status, &cleared["title"]), (200, &serde_json::Value::Null));
    expect_change(&mut lobby, "room", "updated").await;
    expect_change(&mut member, "room", "updated").await;

    // Delete on a: announced to the lobby and the members.
    let (status, err) =
        admin_request(a.addr, "DELETE", "/api/canvases/room", Some(&user), None).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("E008")));
    let (status, _) =
        admin_request(a.addr, "DELETE", "/api/canvases/room", Some(&admin), None).await;
    assert_eq!(status, 204);
    expect_change(&mut lobby, "room", "deleted").await;
    expect_change(&mut member, "room", "deleted").await;
    // Its members everywhere are no longer joined to it.
    match member.recv().await {
        shared::protocol::ServerMessage::AccessChanged(a) => {
            assert_eq!(
                (a.canvas.as_str(), a.role),
                ("room", shared::auth::Role::None)
            )
        }
        other => panic!("expected access_changed, got {other:?}"),
    }
    member.send(&draw(9, "room", 2, 2, 4)).await;
    assert_eq!(expect_error(&mut member).await.code, ErrorCode::NotJoined);
    // Gone at once on a (the deleting gateway), from the list everywhere.
    let (status, _, _) = http_get(a.addr, "/api/canvases/room", Some(&t)).await;
    assert_eq!(status, 403);
    let (status, _, _) = http_get(a.addr, "/api/canvases/room", Some(&admin_token("root"))).await;
    assert_eq!(status, 404);
    let mut late = a.client("late").await;
    late.send(&join(1, "room", false)).await;
    assert_eq!(expect_error(&mut late).await.code, ErrorCode::Forbidden);
    let (_, _, body) = http_get(b.addr, "/api/canvases?limit=10", Some(&t)).await;
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        list["canvases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "room")
    );
    // Gateway b refuses joins within its cache's TTL (at once here: the
    // member's recheck read the catalogue afresh).
    let mut later = b.client("later").await;
    later.send(&join(1, "room", false)).await;
    assert_eq!(expect_error(&mut later).await.code, ErrorCode::Forbidden);

    // The id is not reused; a second delete finds nothing.
    let (status, err) =
        admin_request(a.addr, "POST", "/api/canvases", Some(&admin), Some(new)).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("E007")));
    let (status, err) =
        admin_request(b.addr, "DELETE", "/api/canvases/room", Some(&admin), None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("E009")));
    a.stop().await;
    b.stop().await;
}
