//! Global online status: `user_online` when a user's first connection
//! anywhere in the cluster opens, `user_offline` when the last closes (after
//! the grace period) or its gateway is killed (within the TTL), on the
//! `online` channel, over SSE, and the REST check.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::RequestId;
use shared::protocol::{ChannelRequest, ClientMessage, ServerMessage};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::RedisServer;
use testkit::ws::{Connect, WsClient};

const FAST: [&str; 3] = [
    "--presence-grace-ms=1000",
    "--presence-sweep-ms=100",
    "--presence-ttl-secs=2",
];

async fn watch_online(g: &Gateway, user: &str) -> WsClient {
    let mut c = g.client(user).await;
    subscribe(&mut c, 1, "online", true).await;
    c
}

/// The next online-status event as ("online"/"offline", user).
async fn next_status(c: &mut WsClient) -> (&'static str, String) {
    match c.recv_within(Duration::from_secs(10)).await {
        Some(ServerMessage::UserOnline(e)) => ("online", e.user.id),
        Some(ServerMessage::UserOffline(e)) => ("offline", e.user),
        other => panic!("expected an online-status event, got {other:?}"),
    }
}

async fn check(addr: SocketAddr, ids: &str) -> serde_json::Value {
    let (status, _, body) = http_get(
        addr,
        &format!("/api/users/online?ids={ids}"),
        Some(&token("asker")),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<serde_json::Value>(&body).unwrap()["online"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_come_online_once_and_go_offline_with_their_last_connection() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("on-a", Some(&redis), &FAST)).await;
    let b = Gateway::start(settings("on-b", Some(&redis), &FAST)).await;
    online_scenario(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_come_online_once_and_go_offline_with_their_last_connection_on_a_redis_cluster() {
    let cluster = testkit::RedisCluster::start();
    let url = Some(cluster.url());
    let a = Gateway::start(settings_at("on-a-k", url.as_deref(), &FAST)).await;
    let b = Gateway::start(settings_at("on-b-k", url.as_deref(), &FAST)).await;
    online_scenario(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

async fn online_scenario(a: &Gateway, b: &Gateway) {
    let mut lobby = watch_online(b, "lobby").await;

    // Ada's first connection (on a) is news; her second (on b) is not.
    let ada1 = a.client("ada").await;
    assert_eq!(next_status(&mut lobby).await, ("online", "ada".into()));
    let ada2 = b.client("ada").await;
    assert_eq!(
        check(a.addr, "ada,nobody").await,
        serde_json::json!({"ada": true, "nobody": false})
    );
    // Closing one tab is not going offline; a quick reconnect of the other
    // within the grace period is no offline/online pair.
    drop(ada1);
    drop(ada2);
    let ada3 = a.client("ada").await;
    // Bob's arrival is the next status event: nothing came for ada.
    let bob = b.client("bob").await;
    assert_eq!(next_status(&mut lobby).await, ("online", "bob".into()));

    // Her last connection closes: offline after the grace period, once.
    let closed = Instant::now();
    drop(ada3);
    assert_eq!(next_status(&mut lobby).await, ("offline", "ada".into()));
    assert!(
        closed.elapsed() >= Duration::from_millis(900),
        "offline before the grace period ended: {:?}",
        closed.elapsed()
    );
    assert_eq!(
        check(b.addr, "ada,bob").await,
        serde_json::json!({"ada": false, "bob": true})
    );
    drop(bob);
    assert_eq!(next_status(&mut lobby).await, ("offline", "bob".into()));

    // Bad inputs: a clear status and code.
    for path in ["/api/users/online?ids=", "/api/users/online?ids=,,"] {
        let (status, _, body) = http_get(a.addr, path, Some(&token("x"))).await;
        assert_eq!(status, 400, "{path}");
        let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(err["code"], "E007");
    }
    let many = (0..101)
        .map(|i| format!("u{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let (status, _, _) = http_get(
        a.addr,
        &format!("/api/users/online?ids={many}"),
        Some(&token("x")),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = http_get(a.addr, "/api/users/online?ids=a", None).await;
    assert_eq!(status, 401);
    lobby
        .send(&ClientMessage::Subscribe(ChannelRequest {
            id: Some(RequestId::Num(2)),
            channel: "friends".into(),
        }))
        .await;
    assert_eq!(
        expect_error(&mut lobby).await.code,
        shared::ErrorCode::InvalidValue
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateways_users_go_offline_within_the_ttl() {
    let redis = RedisServer::start();
    let watcher_gw = Gateway::start(settings("on-watch", Some(&redis), &FAST)).await;
    let mut lobby = watch_online(&watcher_gw, "lobby").await;
    let mut sse = SseClient::open(
        watcher_gw.addr,
        &format!("/sse/online?token={}", token("sse-viewer")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(sse.next().await.event.as_deref(), Some("subscribed"));
    // An SSE stream is a connection: its user comes online too.
    assert_eq!(
        next_status(&mut lobby).await,
        ("online", "sse-viewer".into())
    );
    let (mut doomed, doomed_addr) =
        spawn_gateway_process("on-doomed", &redis, testkit::free_port());
    // Until the doomed gateway listens (a deadline, polling).
    let deadline = Instant::now() + Duration::from_secs(15);
    let ghost = loop {
        match WsClient::connect(doomed_addr, Connect::token(&token("ghost"))).await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "doomed gateway never up: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(next_status(&mut lobby).await, ("online", "ghost".into()));
    // The stream may or may not see its own user come online (the online
    // channel was subscribed here already, so that event can arrive after
    // the stream joined it); the next other one is the ghost's.
    let mut event: serde_json::Value = serde_json::from_str(&sse.next().await.data).unwrap();
    if event["user"]["id"] == "sse-viewer" {
        event = serde_json::from_str(&sse.next().await.data).unwrap();
    }
    assert_eq!(
        (&event["type"], &event["user"]["id"]),
        (&"user_online".into(), &"ghost".into())
    );

    let killed = Instant::now();
    let _ = Command::new("kill")
        .args(["-9", &doomed.id().to_string()])
        .status();
    let _ = doomed.wait();
    assert_eq!(next_status(&mut lobby).await, ("offline", "ghost".into()));
    // The bound: the TTL (2 s) plus a sweep interval, with slack.
    assert!(
        killed.elapsed() < Duration::from_millis(3500),
        "ghost online {:?} after its gateway died",
        killed.elapsed()
    );
    assert_eq!(
        check(watcher_gw.addr, "ghost").await,
        serde_json::json!({"ghost": false})
    );
    drop(ghost);
    watcher_gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_status_works_standalone() {
    let g = Gateway::start(settings("on-solo", None, &FAST)).await;
    let mut lobby = watch_online(&g, "lobby").await;
    let ada = g.client("ada").await;
    assert_eq!(next_status(&mut lobby).await, ("online", "ada".into()));
    assert_eq!(check(g.addr, "ada").await, serde_json::json!({"ada": true}));
    drop(ada);
    assert_eq!(next_status(&mut lobby).await, ("offline", "ada".into()));
    g.stop().await;
}
