//! The durable log on a real, private redis-server: numbering across
//! nodes, state, delivery through the bus, and a clear start-up failure.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use fanout::{BusSettings, ConnControl, Fanout, JoinGate, Member, Outbound};
use shared::CanvasId;
use shared::busframe::BusHeader;
use shared::codec::{self, Encoding};
use shared::protocol::{Author, ServerMessage};
use std::sync::Arc;
use std::time::Duration;
use store::{Change, Log, LogSettings, PixelChange, RedisPool};
use testkit::RedisServer;
use tokio_util::sync::CancellationToken;
use tungstenite::Message;

async fn pool(redis: &RedisServer) -> RedisPool {
    RedisPool::connect(redis.url(), 4, Duration::from_secs(2))
        .await
        .unwrap()
}

/// The bus as the gateway sets it up: on a Redis Cluster
/// (`EASEL_TEST_REDIS=cluster`) sharded pub/sub, which the cluster variant
/// of the publish script feeds.
fn bus_settings(redis: &RedisServer) -> BusSettings {
    let mut s = BusSettings::new(redis.url()).unwrap();
    if redis.is_cluster() {
        let client = store::cluster_builder(&s.connection, s.subscribe_timeout, None)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .build()
            .unwrap();
        s.cluster = Some(client);
    }
    s
}

async fn log(redis: &RedisServer) -> Log {
    let settings = LogSettings {
        log_max_events: 100_000,
        backlog_limit: 0,
        ack_replicas: 0,
    };
    Log::redis(pool(redis).await, settings, None)
}

fn member_with_queue(conn: u64, queue: usize) -> (Member, Arc<Outbound>) {
    let tx = Arc::new(Outbound::new(queue));
    let rx = tx.clone();
    let member = Member {
        conn,
        encoding: Encoding::Json,
        echo: false,
        tx,
        control: Arc::new(ConnControl::new()),
        gate: JoinGate::open(),
        gm: false,
        signals_only: false,
    };
    (member, rx)
}

fn header(node: &str, conn: u64) -> BusHeader {
    BusHeader {
        node: node.into(),
        conn,
        ingest_us: 0,
        gm_only: false,
        control: false,
    }
}

async fn next_message(rx: &Arc<Outbound>) -> ServerMessage {
    let (frame, _) = tokio::time::timeout(Duration::from_secs(5), rx.take())
        .await
        .expect("a message within 5 s");
    match frame {
        Message::Text(t) => codec::decode_server(Encoding::Json, t.as_bytes()).unwrap(),
        other => panic!("unexpected frame {other:?}"),
    }
}

#[tokio::test]
async fn startup_fails_clearly_without_redis() {
    let port = testkit::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let err = RedisPool::connect(url, 1, Duration::from_millis(500))
        .await
        .err()
        .expect("must fail");
    assert!(!err.to_string().is_empty());
}

fn draw(canvas: &CanvasId, x: u32, color: u8) -> ServerMessage {
    ServerMessage::Draw(shared::protocol::DrawEvent {
        canvas: canvas.clone(),
        seq: None,
        author: Author {
            id: "u".into(),
            name: None,
        },
        ts: 0,
        pixels: vec![shared::protocol::Pixel { x, y: 0, color }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_events_get_gapless_sequence_numbers_and_the_state_matches() {
    let redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let a = Arc::new(log(&redis).await);
    let b = Arc::new(log(&redis).await);
    let bus = Fanout::redis(
        "node-b",
        &bus_settings(&redis),
        publisher(&pool(&redis).await),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let canvas = CanvasId::new("durable").unwrap();
    let start = a.position(&canvas).await.unwrap();
    assert_eq!(start.seq, 0);
    assert_eq!(
        b.position(&canvas).await.unwrap().epoch,
        start.epoch,
        "one epoch per canvas"
    );
    let (watcher, rx) = member_with_queue(99, 1000);
    bus.join(&canvas, watcher).await.unwrap();

    // Two nodes publish concurrently, 16 cells wide, 32 colours.
    const PER_NODE: u32 = 200;
    let mut tasks = Vec::new();
    for (node, log) in [("node-a", a.clone()), ("node-b", b.clone())] {
        let canvas = canvas.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..PER_NODE {
                let x = (i * 7 + node.len() as u32) % 16;
                let color = (i % 32) as u8;
                let change = Change::Pixels(PixelChange {
                    bits: 5,
                    cell_count: 16,
                    cells: vec![(x, color)],
                });
                let seq = log
                    .publish_durable(
                        &canvas,
                        &header(node, 1),
                        &draw(&canvas, x, color),
                        Some(&change),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                seqs.push(seq);
            }
            seqs
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one publisher's seqs must increase"
        );
        acked.extend(seqs);
    }
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=u64::from(2 * PER_NODE)).collect::<Vec<_>>(),
        "gapless and unique"
    );

    // The watcher sees every event once, in sequence order; replaying them
    // gives the state Redis holds.
    let mut cells = vec![0u8; 16];
    for expected in 1..=u64::from(2 * PER_NODE) {
        match next_message(&rx).await {
            ServerMessage::Draw(d) => {
                assert_eq!(d.seq, Some(expected));
                for p in d.pixels {
                    cells[p.x as usize] = p.color;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let snap = a.snapshot(&canvas, 5, 16).await.unwrap();
    assert_eq!(snap.seq, u64::from(2 * PER_NODE));
    assert_eq!(snap.epoch.as_deref(), Some(start.epoch.as_str()));
    assert_eq!(snap.cells, cells);
    shutdown.cancel();
}

/// The bus's publisher over the stores' connections.
fn publisher(pool: &RedisPool) -> fanout::Publisher {
    match pool.connections() {
        store::Connections::Single(p) => fanout::Publisher::Single(p.clone()),
        store::Connections::Cluster(c) => fanout::Publisher::Cluster(c.clone()),
    }
}
