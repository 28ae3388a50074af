//! Per-user rate limits across gateways: a user whose connections span two
//! gateways gets its limits once between them (each allows half), learned
//! by the gateway already holding a connection when the second arrives
//! elsewhere, and whole again once the other gateway's connection closes.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::protocol::ServerMessage;
use std::time::Duration;
use testkit::RedisServer;
use testkit::ws::WsClient;

/// Chat burst 10, full again 2 s after it is spent: a burst of sends
/// (a few ms) sees the burst (or its share) and almost nothing more.
const FLAGS: [&str; 2] = [
    "--rate-limits=chat=1000/s:1000",
    "--user-rate-limits=chat=5/s:10",
];

/// Sends `n` chats on `canvas` at once; how many were accepted (the rest
/// refused with E004).
async fn burst(c: &mut WsClient, canvas: &str, n: u64) -> u64 {
    for id in 0..n {
        c.send(&chat(1000 + id, canvas, "x")).await;
    }
    let mut accepted = 0;
    for _ in 0..n {
        match c.recv().await {
            ServerMessage::Ack(_) => accepted += 1,
            ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
    accepted
}

async fn shared_users(g: &Gateway) -> f64 {
    let text = testkit::http::scrape(g.admin).await;
    testkit::http::sample(&text, "easel_gateway_users_shared_limits").unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_gateways_gets_its_limits_once_between_them() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("rlc-a", Some(&redis), &FLAGS)).await;
    let b = Gateway::start(settings("rlc-b", Some(&redis), &FLAGS)).await;
    ready(&a).await;
    ready(&b).await;
    let mut on_a = a.client("ada").await;
    join_ok(&mut on_a, 1, "room-a", false).await;
    assert_eq!(shared_users(&a).await, 0.0);

    // The second connection, on b: b knows at once that a holds one too;
    // a learns it from b's signal.
    let mut on_b = b.client("ada").await;
    join_ok(&mut on_b, 1, "room-b", false).await;
    assert_eq!(shared_users(&b).await, 1.0);
    testkit::eventually(Duration::from_secs(5), "a shares ada's limits", || async {
        shared_users(&a).await == 1.0
    })
    .await;

    // Each gateway allows half the burst: 10 between them, not 20.
    let from_b = burst(&mut on_b, "room-b", 10).await;
    let from_a = burst(&mut on_a, "room-a", 10).await;
    assert!((5..=6).contains(&from_b), "b accepted {from_b}");
    assert!((5..=6).contains(&from_a), "a accepted {from_a}");

    // Another user on the same gateways is not affected.
    let mut bob = a.client("bob").await;
    join_ok(&mut bob, 1, "room-bob", false).await;
    assert!(burst(&mut bob, "room-bob", 10).await >= 10);

    // The connection on b closes: a allows the whole limit again.
    drop(on_b);
    testkit::eventually(
        Duration::from_secs(5),
        "a has ada's limits whole",
        || async { shared_users(&a).await == 0.0 },
    )
    .await;
    assert_eq!(shared_users(&b).await, 0.0);
    // Once the bucket has refilled (2 s at 5/s), the whole burst passes.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(burst(&mut on_a, "room-a", 10).await, 10);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departure_while_redis_was_down_is_counted_after_the_reconnect() {
    let mut redis = RedisServer::start();
    let a = Gateway::start(settings("rlr-a", Some(&redis), &FLAGS)).await;
    let b = Gateway::start(settings("rlr-b", Some(&redis), &FLAGS)).await;
    ready(&a).await;
    ready(&b).await;
    let _on_a = a.client("ada").await;
    let on_b = b.client("ada").await;
    testkit::eventually(
        Duration::from_secs(5),
        "both share ada's limits",
        || async { shared_users(&a).await == 1.0 && shared_users(&b).await == 1.0 },
    )
    .await;
    // Redis goes away; the connection on b closes meanwhile, so b's signal
    // to a is lost.
    redis.kill();
    drop(on_b);
    testkit::eventually(Duration::from_secs(5), "b lets go of ada", || async {
        shared_users(&b).await == 0.0
    })
    .await;
    assert_eq!(shared_users(&a).await, 1.0, "a cannot know yet");
    // Once a's bus is back it counts again: ada is on a alone.
    redis.restart();
    testkit::eventually(
        Duration::from_secs(30),
        "a has ada's limits whole",
        || async { shared_users(&a).await == 0.0 },
    )
    .await;
    a.stop().await;
    b.stop().await;
}
