//! The Redis publish path per operation, against a private redis-server:
//! an ephemeral publish (PUBLISH) and a durable one (the publish script:
//! sequence number, canvas state, log append and PUBLISH in one step),
//! with an operation key, and acked only once a replica has it (WAIT 1).
//!
//! `cargo bench -p store --bench publish`

use criterion::{Criterion, criterion_group, criterion_main};
use fanout::{BusSettings, Fanout};
use shared::CanvasId;
use shared::busframe::BusHeader;
use shared::protocol::{Author, CursorEvent, DrawEvent, Pixel, ServerMessage};
use std::time::Duration;
use store::{Change, Log, LogSettings, OpKey, PixelChange, RedisPool};
use testkit::RedisServer;
use tokio_util::sync::CancellationToken;

fn bench_publish(c: &mut Criterion) {
    let redis = RedisServer::start();
    let replica = RedisServer::start_replica_of(&redis);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let shutdown = CancellationToken::new();
    let pool = rt
        .block_on(RedisPool::connect(redis.url(), 16, Duration::from_secs(2)))
        .expect("redis pool");
    let fanout = rt
        .block_on(Fanout::redis(
            "bench-node",
            &BusSettings::new(redis.url()).expect("bus settings"),
            publisher(&pool),
            shutdown.clone(),
        ))
        .expect("redis fan-out");
    let settings = LogSettings {
        log_max_events: 100_000,
        backlog_limit: 0,
        ack_replicas: 0,
    };
    let log = Log::redis(pool.clone(), settings, None);
    let replicated = Log::redis(
        pool,
        LogSettings {
            ack_replicas: 1,
            ..settings
        },
        None,
    );
    let canvas = CanvasId::new("bench").expect("id");
    rt.block_on(log.position(&canvas)).expect("canvas epoch");
    let header = BusHeader {
        node: "bench-node".into(),
        conn: 1,
        ingest_us: 0,
        gm_only: false,
        control: false,
    };
    let author = Author {
        id: "user-1".into(),
        name: Some("Ada".into()),
    };
    let cursor = ServerMessage::Cursor(CursorEvent {
        canvas: canvas.clone(),
        author: author.clone(),
        ts: 1,
        x: 1.5,
        y: 2.5,
    });
    let pixel = Pixel {
        x: 1,
        y: 2,
        color: 3,
    };
    let cells = vec![(pixel.y * 64 + pixel.x, pixel.color)];
    let draw = ServerMessage::Draw(DrawEvent {
        canvas: canvas.clone(),
        seq: None,
        author,
        ts: 1,
        pixels: vec![pixel],
    });
    let change = Change::Pixels(PixelChange {
        bits: PixelChange::bits_for(32),
        cell_count: 64 * 64,
        cells,
    });

    let mut group = c.benchmark_group("redis_publish");
    group.bench_function("ephemeral_cursor", |b| {
        b.to_async(&rt).iter(|| async {
            fanout
                .publish(&canvas, &header, &cursor)
                .await
                .expect("publishes")
        })
    });
    group.bench_function("durable_draw", |b| {
        b.to_async(&rt).iter(|| async {
            log.publish_durable(&canvas, &header, &draw, Some(&change))
                .await
                .expect("publishes")
        })
    });
    bench_keyed_and_replicated(
        &mut group,
        &rt,
        (&log, &replicated),
        &canvas,
        &header,
        (&draw, &change),
    );
    group.finish();
    shutdown.cancel();
    drop(replica);
}

/// A durable draw with an operation key, and one acked after a replica.
fn bench_keyed_and_replicated(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    (log, replicated): (&Log, &Log),
    canvas: &CanvasId,
    header: &BusHeader,
    (draw, change): (&ServerMessage, &Change),
) {
    let mut n = 0u64;
    group.bench_function("durable_draw_keyed", |b| {
        b.to_async(rt).iter(|| {
            n += 1;
            let key = OpKey {
                user: "user-1".into(),
                key: format!("op-{n}"),
                window: Duration::from_secs(300),
            };
            async move {
                log.publish_keyed(canvas, header, draw, Some(change), Some(&key))
                    .await
                    .expect("publishes")
            }
        })
    });
    group.bench_function("durable_draw_wait_replica", |b| {
        b.to_async(rt).iter(|| async {
            replicated
                .publish_durable(canvas, header, draw, Some(change))
                .await
                .expect("publishes")
        })
    });
}

criterion_group!(benches, bench_publish);
criterion_main!(benches);

/// The bus's publisher over the stores' connections.
fn publisher(pool: &RedisPool) -> fanout::Publisher {
    match pool.connections() {
        store::Connections::Single(p) => fanout::Publisher::Single(p.clone()),
        store::Connections::Cluster(c) => fanout::Publisher::Cluster(c.clone()),
    }
}
