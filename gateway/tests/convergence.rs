//! The durable path under concurrency: many clients on two gateways draw at
//! once; everyone sees gapless, increasing sequence numbers and converges to
//! the state Redis holds, including clients that join mid-stream from a
//! snapshot.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rand::Rng;
use shared::protocol::*;
use shared::{CanvasId, RequestId};
use std::net::SocketAddr;
use std::sync::Arc;
use testkit::RedisServer;
use testkit::ws::WsClient;
use tokio::sync::Barrier;

const SIDE: u32 = 100;
const WRITERS: usize = 16;
const LATE_JOINERS: usize = 4;
const DRAWS_PER_WRITER: usize = 625; // 16 x 625 = 10,000 pixels

/// Reads the canvas's cells and the sequence number they include, atomically.
async fn redis_snapshot(redis_url: &str, canvas: &CanvasId) -> (u64, Vec<u8>) {
    let (seq, cells) = redis_cells(redis_url, canvas, SIDE).await;
    (seq.unwrap_or(0), cells)
}

/// Applies draw events above `from` to `cells`, checking they are gapless.
fn apply(cells: &mut [u8], last: &mut u64, msg: &ServerMessage) {
    if let ServerMessage::Resync(r) = msg {
        panic!("resync after {last}: {r:?}");
    }
    if let ServerMessage::Draw(d) = msg {
        let seq = d.seq.expect("durable event without seq");
        if seq <= *last {
            panic!("duplicate or old event {seq} after {last}");
        }
        assert_eq!(seq, *last + 1, "gap: {seq} after {last}");
        *last = seq;
        for p in &d.pixels {
            cells[(p.y * SIDE + p.x) as usize] = p.color;
        }
    }
}

async fn writer(addr: SocketAddr, n: usize, all_joined: Arc<Barrier>) -> (WsClient, Vec<u8>, u64) {
    let mut c = WsClient::connect_ok(addr, testkit::ws::Connect::token(&token(&format!("w{n}"))))
        .await
        .0;
    c.send(&join(0, "conv", true)).await;
    let mut last = match c.recv().await {
        ServerMessage::Ack(Ack {
            result: Some(AckResult::Joined(j)),
            ..
        }) => j.seq,
        other => panic!("expected join ack, got {other:?}"),
    };
    assert_eq!(last, 0, "writers join before anyone draws");
    all_joined.wait().await;
    let mut cells = vec![0u8; (SIDE * SIDE) as usize];
    for i in 0..DRAWS_PER_WRITER {
        let (x, y, color) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..SIDE),
                rng.random_range(0..SIDE),
                rng.random_range(0..32u8),
            )
        };
        let id = (i + 1) as u64;
        c.send(&draw(id, "conv", x.into(), y.into(), color.into()))
            .await;
        loop {
            match c.recv().await {
                ServerMessage::Ack(a) if a.id == RequestId::Num(id) => break,
                other => apply(&mut cells, &mut last, &other),
            }
        }
    }
    (c, cells, last)
}

async fn late_joiner(
    addr: SocketAddr,
    n: usize,
    redis_url: String,
    canvas: CanvasId,
) -> (Vec<u8>, u64, u64) {
    let mut c = WsClient::connect_ok(
        addr,
        testkit::ws::Connect::token(&token(&format!("late{n}"))),
    )
    .await
    .0;
    c.send(&join(0, "conv", false)).await;
    let joined_at = match c.recv().await {
        ServerMessage::Ack(Ack {
            result: Some(AckResult::Joined(j)),
            ..
        }) => j.seq,
        other => panic!("expected join ack, got {other:?}"),
    };
    // Like a real client: fetch a snapshot (taken at or after the join
    // position), then apply live events newer than the snapshot, until the
    // last event of the run.
    let (snap_seq, mut cells) = redis_snapshot(&redis_url, &canvas).await;
    assert!(snap_seq >= joined_at);
    let mut last = joined_at;
    let total = (WRITERS * DRAWS_PER_WRITER) as u64;
    while last < total {
        let msg = c.recv().await;
        assert!(
            !matches!(msg, ServerMessage::Resync(_)),
            "late joiner {n}: {msg:?} after {last}"
        );
        if let ServerMessage::Draw(d) = msg {
            let seq = d.seq.unwrap();
            assert_eq!(
                seq,
                last + 1,
                "late joiner {n}: gap or duplicate at {seq} after {last}"
            );
            last = seq;
            if seq > snap_seq {
                for p in &d.pixels {
                    cells[(p.y * SIDE + p.x) as usize] = p.color;
                }
            }
        }
    }
    (cells, last, joined_at)
}

/// The cells obtained by replaying every stored event in sequence order.
fn rebuilt_from_postgres(pg: &testkit::PostgresServer) -> Vec<u8> {
    let hex = pg.psql("SELECT string_agg(encode(payload, 'hex'), ',' ORDER BY seq) FROM events WHERE canvas_id = 'conv'");
    let mut cells = vec![0u8; (SIDE * SIDE) as usize];
    for h in hex.split(',') {
        let bytes: Vec<u8> = (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect();
        let parts = shared::busframe::split(&bytes::Bytes::from(bytes)).unwrap();
        if let ServerMessage::Draw(d) =
            shared::codec::decode_server(shared::codec::Encoding::Msgpack, &parts.event).unwrap()
        {
            for p in d.pixels {
                cells[(p.y * SIDE + p.x) as usize] = p.color;
            }
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_on_two_gateways_converge_to_the_redis_state() {
    let redis = RedisServer::start();
    let pg = testkit::PostgresServer::start();
    let db = format!("--database-url={}", pg.url());
    let persister = RunningPersister::start(&redis, &pg, &[]).await;
    // The common settings make every canvas SIDE x SIDE (100 x 100).
    let extra = [
        "--outbound-queue=4096",
        "--backlog-limit=100000",
        "--auto-create-canvases",
        db.as_str(),
    ];
    let a = Gateway::start(settings("gw-a", Some(&redis), &extra)).await;
    let b = Gateway::start(settings("gw-b", Some(&redis), &extra)).await;
    let canvas = CanvasId::new("conv").unwrap();

    // Writers join first (position 0), then draw concurrently.
    let all_joined = Arc::new(Barrier::new(WRITERS));
    let mut writers = Vec::new();
    for n in 0..WRITERS {
        let addr = if n % 2 == 0 { a.addr } else { b.addr };
        writers.push(tokio::spawn(writer(addr, n, all_joined.clone())));
    }
    // Late joiners arrive while the writers are drawing.
    testkit::eventually(
        std::time::Duration::from_secs(30),
        "drawing has started",
        || async { redis_snapshot(&redis.url(), &canvas).await.0 > 500 },
    )
    .await;
    let mut late = Vec::new();
    for n in 0..LATE_JOINERS {
        let addr = if n % 2 == 0 { b.addr } else { a.addr };
        late.push(tokio::spawn(late_joiner(
            addr,
            n,
            redis.url(),
            canvas.clone(),
        )));
    }

    let mut writer_results = Vec::new();
    for w in writers {
        writer_results.push(w.await.unwrap());
    }
    let total = (WRITERS * DRAWS_PER_WRITER) as u64;
    let (final_seq, final_cells) = redis_snapshot(&redis.url(), &canvas).await;
    assert_eq!(
        final_seq, total,
        "every acked draw has its own sequence number"
    );

    // Writers joined at 0 with echo on: reading on to the last sequence
    // number, each must hold exactly the Redis state.
    for (n, (mut c, mut cells, mut last)) in writer_results.into_iter().enumerate() {
        while last < total {
            let msg = c.recv().await;
            apply(&mut cells, &mut last, &msg);
        }
        assert_eq!(cells, final_cells, "writer {n} diverged from Redis");
    }
    for (n, j) in late.into_iter().enumerate() {
        let (cells, last, joined_at) = j.await.unwrap();
        assert!(
            joined_at > 0,
            "late joiner {n} joined before drawing started"
        );
        assert_eq!(last, total, "late joiner {n} missed the end");
        assert_eq!(cells, final_cells, "late joiner {n} diverged from Redis");
    }
    // And the state rebuilt from Postgres is the same.
    testkit::eventually(
        std::time::Duration::from_secs(60),
        "every event persisted",
        || async {
            pg.psql("SELECT count(*) FROM events WHERE canvas_id = 'conv'") == total.to_string()
        },
    )
    .await;
    assert_eq!(
        rebuilt_from_postgres(&pg),
        final_cells,
        "Postgres diverged from Redis"
    );
    persister.stop().await;
    a.stop().await;
    b.stop().await;
}
