//! The per-member queue's cycle, as a broadcast drives it: 1,000 writer
//! tasks each waiting on its own queue; one frame offered to every queue
//! wakes each writer, which takes it and waits again. Per element: an
//! offer, a wake-up, a task run and a take (everything a delivery costs in
//! user space before the socket, except framing).
//!
//! `cargo bench -p fanout --bench queue`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fanout::Outbound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tungstenite::Message;

const MEMBERS: usize = 1000;

fn bench_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_cycle_1000_members");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    // One thread, and a gateway's two workers (the writers woken on both).
    let one = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    cycle(&mut group, "one_thread", &one);
    let two = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    cycle(&mut group, "two_workers", &two);
    group.finish();
}

fn cycle(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rt: &tokio::runtime::Runtime,
) {
    let taken = Arc::new(AtomicU64::new(0));
    let queues: Vec<Arc<Outbound>> = (0..MEMBERS)
        .map(|_| {
            let q = Arc::new(Outbound::new(256));
            let (rx, taken) = (q.clone(), taken.clone());
            rt.spawn(async move {
                loop {
                    let _frame = rx.take().await;
                    taken.fetch_add(1, Ordering::Relaxed);
                }
            });
            q
        })
        .collect();
    let frame = Message::Binary(vec![7u8; 80].into());
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    let target = taken.load(Ordering::Relaxed) + MEMBERS as u64;
                    for q in &queues {
                        q.offer(frame.clone()).expect("room");
                    }
                    while taken.load(Ordering::Relaxed) < target {
                        tokio::task::yield_now().await;
                    }
                }
                let spent: Duration = t0.elapsed();
                spent
            })
        })
    });
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
