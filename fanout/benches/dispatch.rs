//! Hub dispatch: one bus payload to 1,000 local members (encode once per
//! encoding, offer the same bytes to every queue).
//!
//! `cargo bench -p fanout --bench dispatch`

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fanout::{ConnControl, Fanout, JoinGate, Member, Outbound};
use shared::CanvasId;
use shared::busframe::{self, BusHeader};
use shared::codec::Encoding;
use shared::protocol::{Author, CursorEvent, DrawEvent, Pixel, ServerMessage};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MEMBERS: usize = 1000;

fn payload(event: &ServerMessage, seq: Option<u64>) -> Bytes {
    let header = BusHeader {
        node: "other-node".into(),
        conn: 1,
        ingest_us: 0,
        gm_only: false,
        control: false,
    };
    Bytes::from(busframe::encode(&header, seq, event).expect("encodes"))
}

fn author() -> Author {
    Author {
        id: "user-1".into(),
        name: Some("Ada".into()),
    }
}

fn bench_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let canvas = CanvasId::new("bench").expect("id");
    let draw = ServerMessage::Draw(DrawEvent {
        canvas: canvas.clone(),
        seq: None,
        author: author(),
        ts: 1,
        pixels: vec![Pixel {
            x: 1,
            y: 2,
            color: 3,
        }],
    });
    let cursor = ServerMessage::Cursor(CursorEvent {
        canvas: canvas.clone(),
        author: author(),
        ts: 1,
        x: 1.5,
        y: 2.5,
    });
    let mut group = c.benchmark_group("dispatch_1000_members");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    for (mix, msgpack_share) in [
        ("json", 0),
        ("msgpack", MEMBERS),
        ("half_and_half", MEMBERS / 2),
    ] {
        let fanout = Fanout::memory("bench-node");
        let queues: Vec<Arc<Outbound>> = (0..MEMBERS)
            .map(|i| {
                let tx = Arc::new(Outbound::new(256));
                let member = Member {
                    conn: i as u64 + 100,
                    encoding: if i < msgpack_share {
                        Encoding::Msgpack
                    } else {
                        Encoding::Json
                    },
                    echo: false,
                    tx: tx.clone(),
                    control: Arc::new(ConnControl::new()),
                    gate: JoinGate::open(),
                    gm: false,
                    signals_only: false,
                };
                rt.block_on(fanout.join(&canvas, member)).expect("joins");
                tx
            })
            .collect();
        for (kind, frame) in [
            ("draw", payload(&draw, Some(7))),
            ("cursor", payload(&cursor, None)),
        ] {
            group.bench_with_input(BenchmarkId::new(kind, mix), &frame, |b, frame| {
                // Time the dispatch only; empty the queues between rounds so
                // nobody becomes a slow consumer.
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let t0 = Instant::now();
                        fanout.hub().dispatch(&canvas, frame);
                        spent += t0.elapsed();
                        for q in &queues {
                            while q.try_take().is_some() {}
                        }
                    }
                    spent
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_dispatch);
criterion_main!(benches);
