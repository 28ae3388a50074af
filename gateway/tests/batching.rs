//! `EASEL_FLUSH_DELAY_US`: at most one socket write per connection per
//! flush delay. A frame after a quiet spell goes out at once; frames that
//! come faster share a write.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::*;
use std::time::{Duration, Instant};

async fn counters(g: &Gateway) -> (f64, f64) {
    let text = testkit::http::scrape(g.admin).await;
    let frames = testkit::http::sample(&text, "easel_gateway_frames_written_total").unwrap();
    let writes = testkit::http::sample(&text, "easel_gateway_socket_writes_total").unwrap();
    (frames, writes)
}

/// The next draw event (acks and other events skipped).
async fn next_draw(c: &mut testkit::WsClient) -> DrawEvent {
    loop {
        if let ServerMessage::Draw(d) = c.recv().await {
            return d;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_come_fast_share_a_write_and_a_lone_one_goes_at_once() {
    // A delay long enough that the test cannot mistake one for the other.
    let g = Gateway::start(settings("a", None, &["--flush-delay-us=100000"])).await;
    let mut member = g.client("member").await;
    join_ok(&mut member, 1, "b", false).await;
    let mut artist = g.client("artist").await;
    join_ok(&mut artist, 1, "b", false).await;
    // Past the delay after the join acks: the next frame is after a quiet
    // spell for both.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (frames_before, writes_before) = counters(&g).await;

    let sent = Instant::now();
    artist.send(&draw(10, "b", 0, 0, 1)).await;
    assert_eq!(next_draw(&mut member).await.pixels[0].x, 0);
    let lone = sent.elapsed();
    assert!(
        lone < Duration::from_millis(90),
        "a lone frame waited {lone:?}"
    );

    // Ten draws 20 ms apart, as a busy canvas sends them: without the delay
    // each would be a write of its own to the member and one for its ack
    // to the artist; with it, they go out in two or three writes each.
    for i in 1..=10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        artist.send(&draw(10 + i, "b", i as i64, 0, 1)).await;
    }
    for i in 1..=10 {
        assert_eq!(next_draw(&mut member).await.pixels[0].x, i);
    }
    for i in 0..=10 {
        expect_ack(&mut artist, 10 + i).await;
    }
    let (frames, writes) = counters(&g).await;
    let (frames, writes) = (frames - frames_before, writes - writes_before);
    assert_eq!(
        frames, 22.0,
        "11 draws to the member, 11 acks to the artist"
    );
    assert!(writes <= 10.0, "{frames} frames in {writes} writes");
    g.stop().await;
}
