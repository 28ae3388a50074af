//! The join hook: a `hook` canvas asks the app's backend (a real HTTP
//! server in this test) whether a user may see it. It allows with a role,
//! denies (as for a canvas that does not exist), times out and fails
//! closed, fails closed when the backend is down, and its answers are
//! cached per user and canvas. And `none` as the default role.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::*;
use parking_lot::Mutex;
use shared::ErrorCode;
use shared::auth::Role;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::ws::{Connect, WsClient};
use testkit::{PostgresServer, RedisServer};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "hook-secret-for-the-test";

/// The app's backend: who asked, and how often.
#[derive(Default)]
struct Backend {
    calls: Mutex<HashMap<String, u32>>,
    questions: Mutex<Vec<serde_json::Value>>,
}

async fn hook(
    State(backend): State<Arc<Backend>>,
    headers: HeaderMap,
    Json(q): Json<serde_json::Value>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {SECRET}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let user = q["user"].as_str().unwrap_or_default().to_owned();
    *backend.calls.lock().entry(user.clone()).or_default() += 1;
    backend.questions.lock().push(q);
    match user.as_str() {
        "ann" => Json(serde_json::json!({"allow": true, "role": "gm"})).into_response(),
        "bob" => Json(serde_json::json!({"allow": false})).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Json(serde_json::json!({"allow": true, "role": "player"})).into_response()
        }
        "greedy" => Json(serde_json::json!({"allow": true})).into_response(),
        _ => "not an answer".into_response(),
    }
}

/// Serves the backend until `stop`; its address.
async fn serve_backend(backend: Arc<Backend>, stop: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(backend);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    addr
}

async fn connect(addr: SocketAddr, token: &str) -> WsClient {
    WsClient::connect_ok(addr, Connect::token(token)).await.0
}

/// Joins `canvas`; the refusal, if any.
async fn try_join(
    c: &mut WsClient,
    id: u64,
    canvas: &str,
) -> Result<Role, shared::protocol::ErrorReply> {
    c.send(&join(id, canvas, false)).await;
    match c.recv().await {
        shared::protocol::ServerMessage::Ack(a) => match a.result {
            Some(shared::protocol::AckResult::Joined(j)) => Ok(j.role),
            other => panic!("{other:?}"),
        },
        shared::protocol::ServerMessage::Error(e) => Err(e),
        other => panic!("{other:?}"),
    }
}

fn hook_calls(metrics: &str, outcome: &str) -> f64 {
    testkit::http::sample(
        metrics,
        &format!("easel_gateway_join_hook_calls_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_hook_allows_denies_times_out_and_fails_closed() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let backend = Arc::new(Backend::default());
    let stop = CancellationToken::new();
    let at = serve_backend(backend.clone(), stop.clone()).await;
    let url = format!("--join-hook-url=http://{at}/hook");
    let secret = format!("--join-hook-secret={SECRET}");
    let g = gateway_with_db(
        "hook",
        Some(&redis),
        &pg,
        &[
            &url,
            &secret,
            "--join-hook-timeout-ms=300",
            "--join-hook-cache-secs=60",
        ],
    )
    .await;
    let body = r#"{"id": "table", "width": 8, "height": 8, "visibility": "hook"}"#;
    let admin = format!("Bearer {}", admin_token("root"));
    let (status, _, _) = testkit::http::request(
        g.addr,
        "POST",
        "/api/canvases",
        Some(&admin),
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(status, 201);

    // Allowed with the hook's role, asked once for two connections.
    let mut ann = g.client("ann").await;
    assert_eq!(try_join(&mut ann, 1, "table").await.unwrap(), Role::Gm);
    let mut ann2 = g.client("ann").await;
    assert_eq!(try_join(&mut ann2, 1, "table").await.unwrap(), Role::Gm);
    assert_eq!(backend.calls.lock()["ann"], 1);
    let asked = backend.questions.lock()[0].clone();
    assert_eq!(asked["canvas"], "table");
    assert_eq!(asked["claims"]["sub"], "ann");
    assert_eq!(asked["name"], "ann name");

    // Denied: the refusal of a canvas that does not exist.
    let mut bob = g.client("bob").await;
    let denied = try_join(&mut bob, 1, "table").await.unwrap_err();
    assert_eq!(denied.code, ErrorCode::Forbidden);
    assert_eq!(denied.message, "no canvas \"table\" that this user may see");
    let (status, _, _) =
        testkit::http::get(g.addr, "/api/canvases/table/snapshot", Some(&token("bob"))).await;
    assert_eq!(status, 403);

    // Too slow, an allow without a role, no answer at all: E012, closed.
    for user in ["slow", "greedy", "junk"] {
        let mut c = g.client(user).await;
        let started = Instant::now();
        let err = try_join(&mut c, 1, "table").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable, "{user}: {}", err.message);
        assert!(err.retry_after_ms.is_some(), "{user}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{user}: {:?}",
            started.elapsed()
        );
    }
    let metrics = testkit::http::scrape(g.admin).await;
    assert_eq!(hook_calls(&metrics, "allow"), 1.0, "{metrics}");
    assert_eq!(hook_calls(&metrics, "deny"), 1.0);
    assert_eq!(hook_calls(&metrics, "timeout"), 1.0);
    assert_eq!(hook_calls(&metrics, "bad_answer"), 2.0);

    // A token naming the canvas needs no hook.
    let named = token_with("named", None, &[("table", Role::Spectator)]);
    let mut named = connect(g.addr, &named).await;
    assert_eq!(
        try_join(&mut named, 1, "table").await.unwrap(),
        Role::Spectator
    );
    assert!(!backend.calls.lock().contains_key("named"));

    // The backend goes away: new users are refused (E012), cached ones not.
    stop.cancel();
    testkit::eventually(Duration::from_secs(10), "the backend down", || async {
        tokio::net::TcpStream::connect(at).await.is_err()
    })
    .await;
    let mut carl = g.client("carl").await;
    let err = try_join(&mut carl, 1, "table").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{}", err.message);
    let mut ann3 = g.client("ann").await;
    assert_eq!(try_join(&mut ann3, 1, "table").await.unwrap(), Role::Gm);
    let metrics = testkit::http::scrape(g.admin).await;
    assert_eq!(hook_calls(&metrics, "unreachable"), 1.0, "{metrics}");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_role_of_none_admits_only_tokens_with_a_role() {
    let g = Gateway::start(settings("none", None, &["--default-role=none"])).await;
    let mut plain = g.client("plain").await;
    assert_eq!(
        try_join(&mut plain, 1, "any").await.unwrap_err().code,
        ErrorCode::Forbidden
    );
    let (status, _, _) =
        testkit::http::get(g.addr, "/api/canvases/any/snapshot", Some(&token("plain"))).await;
    assert_eq!(status, 403);
    let player = token_with("player", Some(Role::Player), &[]);
    let mut player = connect(g.addr, &player).await;
    assert_eq!(try_join(&mut player, 1, "any").await.unwrap(), Role::Player);
    let one = token_with("one", None, &[("mine", Role::Spectator)]);
    let mut one = connect(g.addr, &one).await;
    assert_eq!(
        try_join(&mut one, 1, "mine").await.unwrap(),
        Role::Spectator
    );
    assert_eq!(
        try_join(&mut one, 2, "any").await.unwrap_err().code,
        ErrorCode::Forbidden
    );
    g.stop().await;
}
