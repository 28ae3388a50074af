//! Cold canvases leave Redis: once nobody is on a canvas, nothing is new
//! and everything is persisted for EASEL_EVICT_IDLE_SECS, the persister
//! stores its snapshot and removes every Redis key of it; the next use
//! rebuilds it from Postgres (same pixels, objects and seq, new epoch). A
//! canvas with a member stays.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::*;
use shared::{CanvasId, RequestId};
use std::time::Duration;
use testkit::{PostgresServer, RedisServer, eventually};

/// The Redis keys of a canvas (every key carries its hash tag; on a
/// cluster, scanned on every master).
async fn keys_of(redis: &RedisServer, canvas: &str) -> Vec<String> {
    let mut conn = redis_conn(&redis.url()).await;
    store::managed::scan_keys(&mut conn, &format!("easel:{{c:{canvas}}}:*"))
        .await
        .unwrap()
}

fn create_token(id: u64) -> ClientMessage {
    ClientMessage::ObjectCreate(ObjectCreate {
        id: Some(RequestId::Num(id)),
        canvas: canvas("cold"),
        key: None,
        kind: "token".into(),
        x: 3.0,
        y: 4.0,
        w: 1.0,
        h: 1.0,
        props: Props::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_canvas_leaves_redis_and_comes_back_whole() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let g = gateway_with_db("gw", Some(&redis), &pg, &[]).await;
    let persister = RunningPersister::start(&redis, &pg, &["--evict-idle-secs=1"]).await;

    // "cold" gets pixels and an object, then its only member leaves;
    // "idle" is joined and left without a write; "busy" keeps a member.
    let mut artist = g.client("artist").await;
    join_ok(&mut artist, 1, "cold", false).await;
    for i in 0..5 {
        artist.send(&draw(10 + i, "cold", i as i64, 1, 7)).await;
        expect_ack(&mut artist, 10 + i).await;
    }
    artist.send(&create_token(20)).await;
    expect_ack(&mut artist, 20).await;
    join_ok(&mut artist, 2, "idle", false).await;
    let first_epoch = {
        let mut probe = g.client("probe").await;
        probe.send(&join(1, "cold", false)).await;
        expect_joined(&mut probe, 1).await.epoch
    };
    let (_, cells_before) = redis_cells(&redis.url(), &canvas("cold"), 100).await;
    drop(artist);
    let mut keeper = g.client("keeper").await;
    join_ok(&mut keeper, 1, "busy", false).await;

    eventually(Duration::from_secs(20), "cold and idle evicted", || async {
        keys_of(&redis, "cold").await.is_empty() && keys_of(&redis, "idle").await.is_empty()
    })
    .await;
    assert!(
        !keys_of(&redis, "busy").await.is_empty(),
        "a canvas with a member stays"
    );

    // Next use: rebuilt from Postgres, everything there, a new epoch.
    let mut back = g.client("back").await;
    back.send(&join(1, "cold", false)).await;
    let joined = expect_joined(&mut back, 1).await;
    assert_eq!(joined.seq, 6);
    assert_ne!(joined.epoch, first_epoch);
    assert_eq!(
        redis_cells(&redis.url(), &CanvasId::new("cold").unwrap(), 100)
            .await
            .1,
        cells_before
    );
    back.send(&ClientMessage::Objects(ObjectsRequest {
        id: Some(RequestId::Num(2)),
        canvas: canvas("cold"),
        after: None,
    }))
    .await;
    match expect_ack(&mut back, 2).await {
        Some(AckResult::Objects(page)) => assert_eq!(page.objects.len(), 1),
        other => panic!("expected objects, got {other:?}"),
    }
    back.send(&draw(3, "cold", 9, 9, 1)).await;
    match expect_ack(&mut back, 3).await {
        Some(AckResult::Published(p)) => assert_eq!(p.seq, 7),
        other => panic!("expected a published ack, got {other:?}"),
    }
    eventually(
        Duration::from_secs(20),
        "the new write persisted",
        || async { pg.psql("SELECT count(*) FROM events WHERE canvas_id = 'cold'") == "7" },
    )
    .await;
    persister.stop().await;
    g.stop().await;
}
