//! Resume: a client that reconnects with its last sequence number and epoch
//! gets exactly the events it missed, in order, then live ones; when that is
//! impossible it is told so explicitly.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::RequestId;
use shared::protocol::*;
use std::net::SocketAddr;
use testkit::RedisServer;
use testkit::ws::WsClient;

/// Draws `n` pixels from `writer`, waiting for each ack; returns the last seq.
async fn draw_n(writer: &mut WsClient, canvas: &str, n: u64, first_id: u64) -> u64 {
    let mut last = 0;
    for i in 0..n {
        let id = first_id + i;
        writer
            .send(&draw(
                id,
                canvas,
                (i % 100) as i64,
                (i / 100 % 100) as i64,
                (i % 32) as i64,
            ))
            .await;
        match expect_ack(writer, id).await {
            Some(AckResult::Published(p)) => last = p.seq,
            other => panic!("draw not acked with a seq: {other:?}"),
        }
    }
    last
}

/// Reads draw events until `until`, asserting each is the next sequence number.
async fn expect_consecutive(client: &mut WsClient, after: u64, until: u64) {
    let mut last = after;
    while last < until {
        match client.recv().await {
            ServerMessage::Draw(d) => {
                let seq = d.seq.unwrap();
                assert_eq!(seq, last + 1, "gap or duplicate: {seq} after {last}");
                last = seq;
            }
            other => panic!("expected a draw, got {other:?}"),
        }
    }
}

async fn resume_scenario(a: SocketAddr, b: SocketAddr) {
    let mut writer = WsClient::connect_ok(a, testkit::ws::Connect::token(&token("writer")))
        .await
        .0;
    join_ok(&mut writer, 1, "r", false).await;
    let mut reader = WsClient::connect_ok(a, testkit::ws::Connect::token(&token("reader")))
        .await
        .0;
    reader.send(&join(1, "r", false)).await;
    let start = expect_joined(&mut reader, 1).await;
    assert_eq!(start.resume, None);

    let seen = draw_n(&mut writer, "r", 10, 100).await;
    expect_consecutive(&mut reader, start.seq, seen).await;
    drop(reader);

    // 500 events while the reader is away.
    let missed_until = draw_n(&mut writer, "r", 500, 1000).await;
    assert_eq!(missed_until, seen + 500);

    // It comes back on the other gateway, while the writer keeps drawing.
    let mut back = WsClient::connect_ok(b, testkit::ws::Connect::token(&token("reader")))
        .await
        .0;
    let live_writer = tokio::spawn(async move {
        let last = draw_n(&mut writer, "r", 200, 5000).await;
        (writer, last)
    });
    back.send(&resume(2, "r", seen, &start.epoch)).await;
    let resumed = expect_joined(&mut back, 2).await;
    assert_eq!(resumed.resume, Some(ResumeOutcome::Replayed));
    assert_eq!(resumed.epoch, start.epoch);
    assert!(resumed.seq >= missed_until);
    // The replay (seen+1 ..= resumed.seq), read while the writer goes on...
    expect_consecutive(&mut back, seen, resumed.seq).await;
    let (mut writer, final_seq) = live_writer.await.unwrap();
    // ...then live events continue seamlessly.
    expect_consecutive(&mut back, resumed.seq, final_seq).await;

    // A different epoch: told to reload, no replay, live from the position.
    let mut other = WsClient::connect_ok(b, testkit::ws::Connect::token(&token("other")))
        .await
        .0;
    other.send(&resume(3, "r", 5, "not-the-epoch")).await;
    let j = expect_joined(&mut other, 3).await;
    assert_eq!(j.resume, Some(ResumeOutcome::EpochChanged));
    let next = draw_n(&mut writer, "r", 1, 9000).await;
    assert_eq!(next, j.seq + 1);
    expect_consecutive(&mut other, j.seq, next).await;

    // Ahead of the canvas: told so.
    other.send(&resume(4, "r", next + 1000, &start.epoch)).await;
    assert_eq!(
        expect_joined(&mut other, 4).await.resume,
        Some(ResumeOutcome::Ahead)
    );

    // Half a resume request is an error, not a silent plain join.
    other
        .send(&ClientMessage::Join(Join {
            id: Some(RequestId::Num(5)),
            canvas: canvas("r"),
            echo: false,
            since: Some(1),
            epoch: None,
        }))
        .await;
    assert_eq!(
        expect_error(&mut other).await.code,
        shared::ErrorCode::InvalidValue
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_on_another_gateway_replays_exactly_the_missed_events() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("gw-a", Some(&redis), &["--outbound-queue=64"])).await;
    let b = Gateway::start(settings("gw-b", Some(&redis), &["--outbound-queue=64"])).await;
    // A queue much smaller than the replay: the replay must wait for room
    // instead of overflowing it.
    resume_scenario(a.addr, b.addr).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_works_the_same_on_a_redis_cluster() {
    let cluster = testkit::RedisCluster::start();
    let url = Some(cluster.url());
    let flags = ["--outbound-queue=64"];
    let a = Gateway::start(settings_at("gw-ca", url.as_deref(), &flags)).await;
    let b = Gateway::start(settings_at("gw-cb", url.as_deref(), &flags)).await;
    resume_scenario(a.addr, b.addr).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_works_the_same_standalone() {
    let g = Gateway::start(settings("solo", None, &["--outbound-queue=64"])).await;
    resume_scenario(g.addr, g.addr).await;
    g.stop().await;
}

async fn history_unavailable(addr: SocketAddr) {
    let mut writer = WsClient::connect_ok(addr, testkit::ws::Connect::token(&token("w")))
        .await
        .0;
    writer.send(&join(1, "t", false)).await;
    let start = expect_joined(&mut writer, 1).await;
    let last = draw_n(&mut writer, "t", 500, 10).await;
    let mut late = WsClient::connect_ok(addr, testkit::ws::Connect::token(&token("late")))
        .await
        .0;
    late.send(&resume(1, "t", start.seq, &start.epoch)).await;
    let j = expect_joined(&mut late, 1).await;
    assert_eq!(j.resume, Some(ResumeOutcome::HistoryUnavailable));
    assert_eq!(j.seq, last);
    // Nothing is replayed; live events continue from the position.
    let next = draw_n(&mut writer, "t", 1, 1000).await;
    expect_consecutive(&mut late, last, next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_log_means_reload_not_a_partial_replay() {
    let redis = RedisServer::start();
    let g = Gateway::start(settings("trim", Some(&redis), &["--log-max-events=100"])).await;
    history_unavailable(g.addr).await;
    g.stop().await;
    let solo = Gateway::start(settings("trim-solo", None, &["--log-max-events=100"])).await;
    history_unavailable(solo.addr).await;
    solo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_beyond_the_replay_bound_reload_instead() {
    let g = Gateway::start(settings("bound", None, &["--max-replay-events=50"])).await;
    history_unavailable(g.addr).await;
    g.stop().await;
}
