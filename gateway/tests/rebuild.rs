//! Redis restarted empty: a canvas is rebuilt from Postgres (snapshot plus
//! later events) with identical pixels and continuing sequence numbers under
//! a new epoch, connected clients are told to resync, and the persister
//! goes on without collisions.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rand::Rng;
use shared::CanvasId;
use shared::protocol::*;
use std::time::Duration;
use testkit::{PostgresServer, RedisServer, eventually};

fn stored(pg: &PostgresServer) -> u64 {
    stored_events(pg, "rb")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canvas_lost_by_redis_is_rebuilt_from_postgres() {
    let mut redis = RedisServer::start();
    let pg = PostgresServer::start();
    let db = format!("--database-url={}", pg.url());
    let g = Gateway::start(settings(
        "gw",
        Some(&redis),
        &["--backlog-limit=10000", "--auto-create-canvases", &db],
    ))
    .await;
    let persister = RunningPersister::start(&redis, &pg, &["--snapshot-every=100"]).await;

    let canvas = CanvasId::new("rb").unwrap();
    let mut c = g.client("artist").await;
    c.send(&join(0, "rb", false)).await;
    let before_join = expect_joined(&mut c, 0).await;
    for i in 1..=250u64 {
        let (x, y, color) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..100),
                rng.random_range(0..100),
                rng.random_range(0..32),
            )
        };
        c.send(&draw(i, "rb", x, y, color)).await;
        expect_ack(&mut c, i).await;
    }
    eventually(Duration::from_secs(30), "all 250 persisted", || async {
        stored(&pg) == 250
    })
    .await;
    let (seq, cells_before) = redis_cells(&redis.url(), &canvas, 100).await;
    assert_eq!(seq, Some(250));
    assert!(
        pg.psql("SELECT seq FROM canvas_snapshots WHERE canvas_id = 'rb'")
            .parse::<u64>()
            .unwrap()
            >= 100
    );

    redis.kill();
    redis.restart();
    // The connected client learns that it may have missed events.
    match c.recv_within(Duration::from_secs(15)).await {
        Some(ServerMessage::Resync(r)) => assert_eq!(r.canvas, canvas),
        other => panic!("expected resync, got {other:?}"),
    }
    assert_eq!(
        redis_cells(&redis.url(), &canvas, 100).await.0,
        None,
        "redis really is empty"
    );

    // First use after the loss: rebuilt before it is served.
    let mut late = g.client("late").await;
    late.send(&join(0, "rb", false)).await;
    let j = expect_joined(&mut late, 0).await;
    assert_eq!(j.seq, 250, "sequence numbers continue");
    assert_ne!(
        j.epoch, before_join.epoch,
        "a rebuilt history is a new epoch"
    );
    assert_eq!(
        redis_cells(&redis.url(), &canvas, 100).await.1,
        cells_before,
        "identical pixels"
    );

    // Writing continues at 251, and the persister stores it without collision.
    c.send(&draw(1000, "rb", 0, 0, 7)).await;
    match expect_ack(&mut c, 1000).await {
        Some(AckResult::Published(p)) => assert_eq!(p.seq, 251),
        other => panic!("unexpected {other:?}"),
    }
    eventually(
        Duration::from_secs(30),
        "the new event persisted",
        || async { stored(&pg) == 251 },
    )
    .await;
    persister.stop().await;
    g.stop().await;
}
