//! Cursor coalescing: a client moving its cursor at 240 Hz costs the other
//! members of the canvas at most EASEL_CURSOR_HZ (30) updates a second,
//! and its last position always arrives.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::ServerMessage;
use std::time::{Duration, Instant};
use testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_240_hz_cursor_reaches_watchers_at_most_30_times_a_second_ending_at_its_last_position() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("cur-a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("cur-b", Some(&redis), &[])).await;
    let mut mover = a.client("mover").await;
    join_ok(&mut mover, 1, "cursors", false).await;
    let mut watchers = Vec::new();
    for (i, g) in [&a, &b].into_iter().enumerate() {
        let mut w = g.client(&format!("watcher{i}")).await;
        join_ok(&mut w, 1, "cursors", false).await;
        watchers.push(w);
    }

    // 240 updates a second for 1.5 s, without ids (as clients send them).
    let updates = 360;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / 240);
    let started = Instant::now();
    for i in 0..updates {
        tick.tick().await;
        mover
            .send(&cursor(None, "cursors", (i % 100) as f64, (i / 100) as f64))
            .await;
    }
    let moving = started.elapsed();
    let last = (((updates - 1) % 100) as f32, ((updates - 1) / 100) as f32);

    // A later draw marks the end: everything before it has been sent.
    mover.send(&draw(9, "cursors", 1, 1, 1)).await;
    expect_ack(&mut mover, 9).await;
    let allowed = (moving.as_secs_f64() * 30.0).ceil() as usize + 2;
    for w in &mut watchers {
        let mut positions = Vec::new();
        loop {
            match w.recv().await {
                ServerMessage::Cursor(c) => positions.push((c.x, c.y)),
                ServerMessage::Draw(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // The coalesced last position may follow the draw by up to 1/30 s.
        if positions.last() != Some(&last) {
            match w.recv_within(Duration::from_secs(1)).await {
                Some(ServerMessage::Cursor(c)) => positions.push((c.x, c.y)),
                other => panic!("last position never arrived: {other:?}"),
            }
        }
        assert_eq!(positions.last(), Some(&last), "last position delivered");
        assert!(
            positions.len() <= allowed,
            "{} updates in {moving:?}: more than 30 Hz",
            positions.len()
        );
        // Coalesced, not starved: about 30 a second get through.
        assert!(positions.len() >= allowed / 2, "{}", positions.len());
        // In the order they were sent.
        let order: Vec<f32> = positions.iter().map(|(x, y)| y * 100.0 + x).collect();
        assert!(order.windows(2).all(|p| p[0] < p[1]), "{order:?}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_under_the_limit_pass_unchanged_with_or_without_coalescing() {
    for flags in [&[][..], &["--cursor-hz=0"][..]] {
        let g = Gateway::start(settings("cur-solo", None, flags)).await;
        let mut mover = g.client("mover").await;
        let mut watcher = g.client("watcher").await;
        join_ok(&mut mover, 1, "c", false).await;
        join_ok(&mut watcher, 1, "c", false).await;
        // 10 Hz is under the limit: all arrive, acked as sent.
        for i in 0..5 {
            mover.send(&cursor(Some(10 + i), "c", i as f64, 0.0)).await;
            assert_eq!(expect_ack(&mut mover, 10 + i).await, None);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut got = Vec::new();
        for _ in 0..5 {
            match watcher.recv().await {
                ServerMessage::Cursor(c) => got.push(c.x),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, vec![0.0, 1.0, 2.0, 3.0, 4.0], "{flags:?}");
        g.stop().await;
    }
}
