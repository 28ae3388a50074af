//! Revocation when the signal is lost: a membership removed while Redis is
//! down (the signal cannot be published) still reaches the member's live
//! connection once its gateway's bus is back, because every member checks
//! its access again after a bus reconnect.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::auth::Role;
use shared::protocol::ServerMessage;
use std::time::Duration;
use testkit::{PostgresServer, RedisServer};

const KEY: &str = "server-api-key-0123456789abcdef0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_during_a_redis_outage_reaches_the_member_after_the_reconnect() {
    let mut redis = RedisServer::start();
    let pg = PostgresServer::start();
    let key = format!("--api-keys={KEY}");
    let a = gateway_with_db("af-a", Some(&redis), &pg, &[&key]).await;
    let b = gateway_with_db("af-b", Some(&redis), &pg, &[&key]).await;
    let auth = format!("ApiKey {KEY}");
    let body = r#"{"id": "den", "width": 8, "height": 8, "visibility": "members"}"#;
    let (status, _, _) = testkit::http::request(
        a.addr,
        "POST",
        "/api/canvases",
        Some(&auth),
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(status, 201);
    let path = "/api/server/canvases/den/members/mia";
    let role = br#"{"role": "player"}"#;
    let (status, _, _) = testkit::http::request(a.addr, "PUT", path, Some(&auth), Some(role)).await;
    assert_eq!(status, 200);
    let mut mia = b.client("mia").await;
    join_ok(&mut mia, 1, "den", false).await;

    // Redis goes away; the membership is removed meanwhile (Postgres is
    // up): the signal to gateway b is lost.
    redis.kill();
    let (status, _, _) = testkit::http::request(a.addr, "DELETE", path, Some(&auth), None).await;
    assert_eq!(status, 204);
    redis.restart();

    // Once b's bus is back, mia's connection checks again and is out.
    let changed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match mia.recv().await {
                ServerMessage::AccessChanged(c) => return c,
                _ => continue,
            }
        }
    })
    .await
    .expect("no access_changed after the reconnect");
    assert_eq!((changed.canvas.as_str(), changed.role), ("den", Role::None));
    a.stop().await;
    b.stop().await;
}
