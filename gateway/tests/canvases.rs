//! The canvas catalogue in Postgres: create, list and get over REST; joins
//! and validation follow each canvas's own size and palette; unknown
//! canvases are not found; the quickstart's `lobby` exists.

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
    let t = token("admin");
    // A lobby screen listening on the global channel.
    let mut lobby = g.client("lobby-screen").await;
    lobby
        .send(&shared::protocol::ClientMessage::Subscribe(
            shared::protocol::ChannelRequest {
                id: Some(shared::RequestId::Num(1)),
                channel: "global".into(),
            },
        ))
        .await;
    expect_ack(&mut lobby, 1).await;

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

    // Joining follows the stored definition; unknown canvases are not found.
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
    assert_eq!(expect_error(&mut c).await.code, ErrorCode::NotFound);
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
    let (status, _, _) = http_get(g.addr, "/api/canvases/nope/snapshot", Some(&t)).await;
    assert_eq!(status, 404);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_every_canvas_is_implicit_and_creation_is_refused() {
    let g = Gateway::start(settings("implicit", None, &[])).await;
    let t = token("u");
    let (status, err) = http_post(
        g.addr,
        "/api/canvases",
        &t,
        r#"{"id": "x", "width": 10, "height": 10}"#,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (501, Some("E012")));
    let (status, _, body) = http_get(g.addr, "/api/canvases/anything", Some(&t)).await;
    assert_eq!(status, 200);
    let def: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(def["width"], 100);
    g.stop().await;
}
