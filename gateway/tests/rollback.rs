//! Redis restarted from older data under the same epoch (an RDB snapshot
//! taken before the last writes, like an AOF missing its tail or a replica
//! that missed them): the canvas is behind what Postgres holds, so it is
//! rebuilt from Postgres under a new epoch before any write, sequence
//! numbers never go back, and every acked write reaches Postgres.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::CanvasId;
use shared::protocol::*;
use std::time::Duration;
use testkit::{PostgresServer, RedisServer, eventually};

fn stored(pg: &PostgresServer) -> u64 {
    stored_events(pg, "old")
}

async fn draw_acked(c: &mut testkit::WsClient, id: u64, x: i64) -> u64 {
    c.send(&draw(id, "old", x % 100, x / 100, (x % 31) + 1))
        .await;
    loop {
        match c.recv().await {
            ServerMessage::Ack(a) if a.id == shared::RequestId::Num(id) => match a.result {
                Some(AckResult::Published(p)) => return p.seq,
                other => panic!("unexpected ack {other:?}"),
            },
            ServerMessage::Error(e) => panic!("draw {id} refused: {e:?}"),
            _ => {} // resync and the like
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_back_from_an_old_snapshot_is_rebuilt_not_reused() {
    let mut redis = RedisServer::start();
    let pg = PostgresServer::start();
    let g = gateway_with_db("gw", Some(&redis), &pg, &[]).await;
    let persister = RunningPersister::start(&redis, &pg, &[]).await;
    let canvas = CanvasId::new("old").unwrap();

    let mut c = g.client("artist").await;
    c.send(&join(0, "old", false)).await;
    let first = expect_joined(&mut c, 0).await;
    for i in 1..=20 {
        assert_eq!(draw_acked(&mut c, i, i as i64).await, i);
    }
    eventually(Duration::from_secs(30), "20 persisted", || async {
        stored(&pg) == 20
    })
    .await;
    // Redis saves a snapshot at seq 20; 30 more writes are acked and
    // persisted after it.
    for out in redis.command_everywhere(&["SAVE"]) {
        assert_eq!(out.trim(), "OK");
    }
    for i in 21..=50 {
        assert_eq!(draw_acked(&mut c, i, i as i64).await, i);
    }
    eventually(Duration::from_secs(30), "50 persisted", || async {
        stored(&pg) == 50
    })
    .await;
    let (_, cells_at_50) = redis_cells(&redis.url(), &canvas, 100).await;

    // A crash, and Redis comes back from the snapshot: seq 20, same epoch.
    redis.kill();
    redis.restart();
    assert_eq!(redis_cells(&redis.url(), &canvas, 100).await.0, Some(20));
    eventually(
        Duration::from_secs(10),
        "the gateway back on redis",
        || async { testkit::http::status(g.admin, "/readyz").await == Some(200) },
    )
    .await;

    // The next write is numbered after what Postgres holds, under a new
    // epoch, on the state Postgres holds.
    let mut late = g.client("late").await;
    late.send(&join(0, "old", false)).await;
    let j = expect_joined(&mut late, 0).await;
    assert_eq!(j.seq, 50, "the position is Postgres's, not the snapshot's");
    assert_ne!(j.epoch, first.epoch, "a rebuilt history is a new epoch");
    assert_eq!(
        redis_cells(&redis.url(), &canvas, 100).await.1,
        cells_at_50,
        "the pixels of all 50 acked writes"
    );
    assert_eq!(draw_acked(&mut late, 1, 99).await, 51);
    eventually(
        Duration::from_secs(30),
        "the new write persisted",
        || async { stored(&pg) == 51 },
    )
    .await;
    assert_eq!(
        pg.psql("SELECT count(DISTINCT seq) FROM events WHERE canvas_id = 'old'"),
        "51",
        "no sequence number reused"
    );
    persister.stop().await;
    g.stop().await;
}
