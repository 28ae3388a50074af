//! One client that stops reading is disconnected with 4008 while a fast
//! client on the same canvas keeps receiving promptly.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::StreamExt;
use shared::RequestId;
use shared::protocol::*;
use std::time::{Duration, Instant};
use testkit::ws::{Connect, WsClient};
use tokio_tungstenite::tungstenite::Message;

const EVENTS: usize = 200;
const PIXELS: usize = 1000;

fn big_draw(i: usize) -> ClientMessage {
    ClientMessage::Draw(Draw {
        id: Some(RequestId::Num(i as u64)),
        canvas: canvas("board"),
        key: None,
        pixels: (0..PIXELS)
            .map(|k| PixelInput {
                x: (k % 100) as i64,
                y: (i % 100) as i64,
                color: (k % 32) as i64,
            })
            .collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_cut_off_and_others_are_not_delayed() {
    let g = Gateway::start(settings(
        "slow",
        None,
        &["--outbound-queue=8", "--max-pixels-per-draw=1000"],
    ))
    .await;
    let mut sender = g.client("sender").await;
    let mut fast = g.client("fast").await;
    let mut slow_opts = Connect::token(&token("slow"));
    slow_opts.recv_buffer = Some(4096);
    let (mut slow, _) = WsClient::connect_ok(g.addr, slow_opts).await;
    join_ok(&mut sender, 1, "board", false).await;
    join_ok(&mut fast, 1, "board", false).await;
    join_ok(&mut slow, 1, "board", false).await;
    // From here on `slow` reads nothing until the burst is over.

    let started = Instant::now();
    let send_times = std::sync::Arc::new(std::sync::Mutex::new(vec![None; EVENTS]));
    let times = send_times.clone();
    let producer = tokio::spawn(async move {
        for i in 0..EVENTS {
            times.lock().unwrap()[i] = Some(Instant::now());
            sender.send(&big_draw(i)).await;
            expect_ack(&mut sender, i as u64).await;
        }
        sender
    });
    let mut worst = Duration::ZERO;
    for i in 0..EVENTS {
        match fast.recv().await {
            ServerMessage::Draw(d) => {
                assert_eq!(d.pixels.len(), PIXELS);
                assert_eq!(d.pixels[0].y as usize, i % 100, "fast client out of order");
                let sent = send_times.lock().unwrap()[i].unwrap();
                worst = worst.max(sent.elapsed());
            }
            other => panic!("fast client got {other:?}"),
        }
    }
    let burst = started.elapsed();
    let _sender = producer.await.unwrap();
    println!("burst of {EVENTS} x {PIXELS} pixels: {burst:?}; fast client's worst delay {worst:?}");
    // Loose bound: the fast client is never held up behind the stalled one
    // (that would take the stalled client's whole timeout or forever).
    assert!(
        worst < Duration::from_secs(1),
        "fast client delayed {worst:?}"
    );

    // The stalled client now reads what the kernel buffered, then the close.
    let mut ws = slow.into_inner();
    let mut frames = 0;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("slow client never closed")
        {
            Some(Ok(Message::Close(c))) => break c.map(|c| u16::from(c.code)),
            Some(Ok(_)) => frames += 1,
            Some(Err(e)) => panic!("slow client saw {e} after {frames} frames instead of a close"),
            None => break None,
        }
    };
    assert_eq!(code, Some(4008), "after {frames} frames");
    assert!(
        frames < EVENTS,
        "the stalled client was not cut off early ({frames} frames)"
    );
    g.stop().await;
}

/// A client that asks for large replies and never reads is closed as a
/// slow consumer by the byte bound, long before the message bound: the
/// gateway holds at most `EASEL_OUTBOUND_QUEUE_BYTES` (plus one frame) for
/// it, whatever it asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_large_replies_that_never_reads_is_cut_off_by_bytes() {
    let g = Gateway::start(settings(
        "slow-bytes",
        None,
        &[
            "--outbound-queue=256",
            "--outbound-queue-bytes=65536",
            "--max-pixels-per-draw=1000",
        ],
    ))
    .await;
    let mut sender = g.client("sender").await;
    join_ok(&mut sender, 1, "board", false).await;
    // 100 events of 40 pixels: a history page of 100 is about 115 KB,
    // over the 64 KiB bound (and under the write buffer's limit).
    for i in 0..100 {
        let mut draw = big_draw(i);
        if let ClientMessage::Draw(d) = &mut draw {
            d.pixels.truncate(40);
        }
        sender.send(&draw).await;
        expect_ack(&mut sender, i as u64).await;
    }
    let mut opts = Connect::token(&token("hoarder"));
    opts.recv_buffer = Some(4096);
    let (mut hoarder, _) = WsClient::connect_ok(g.addr, opts).await;
    join_ok(&mut hoarder, 1, "board", false).await;
    // 150 history pages (17 MB, far more than the kernel's socket
    // buffers take), nothing read: 150 messages, under the message bound.
    for n in 0..150u64 {
        hoarder
            .send(&ClientMessage::History(HistoryRequest {
                id: Some(RequestId::Num(100 + n)),
                canvas: canvas("board"),
                since: 0,
                limit: Some(100),
            }))
            .await;
    }
    let mut ws = hoarder.into_inner();
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("the hoarder was never closed")
        {
            Some(Ok(Message::Close(c))) => break c.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the hoarder saw {e} instead of a close"),
            None => break None,
        }
    };
    assert_eq!(code, Some(4008));
    g.stop().await;
}
