//! The Redis publish path per operation, against a private redis-server:
//! an ephemeral publish (PUBLISH) and a durable one (the publish script:
//! sequence number, canvas state, log append and PUBLISH in one step).
//!
//! `cargo bench -p fanout --bench publish`

use criterion::{Criterion, criterion_group, criterion_main};
use fanout::{Fanout, PixelChange, RedisSettings};
use shared::CanvasId;
use shared::busframe::BusHeader;
use shared::protocol::{Author, CursorEvent, DrawEvent, Pixel, ServerMessage};
use testkit::RedisServer;
use tokio_util::sync::CancellationToken;

fn bench_publish(c: &mut Criterion) {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let shutdown = CancellationToken::new();
    let fanout = rt
        .block_on(Fanout::redis(
            "bench-node",
            RedisSettings::new(&redis.url()),
            shutdown.clone(),
        ))
        .expect("redis fan-out");
    let canvas = CanvasId::new("bench").expect("id");
    rt.block_on(fanout.position(&canvas)).expect("canvas epoch");
    let header = BusHeader {
        node: "bench-node".into(),
        conn: 1,
        ingest_us: 0,
        gm_only: false,
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
    let change = fanout::Change::Pixels(PixelChange {
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
            fanout
                .publish_durable(&canvas, &header, &draw, Some(&change))
                .await
                .expect("publishes")
        })
    });
    group.finish();
    shutdown.cancel();
}

criterion_group!(benches, bench_publish);
criterion_main!(benches);
