//! REST: snapshot and history endpoints, and history served from Postgres
//! once Redis has trimmed it (for the events page and for resume).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::*;
use testkit::{PostgresServer, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_events_over_rest() {
    let g = Gateway::start(settings("rest", None, &[])).await;
    let mut c = g.client("painter").await;
    join_ok(&mut c, 0, "art", false).await;
    let pixels = [(0, 0, 5), (99, 0, 31), (10, 20, 7), (10, 20, 9)];
    for (i, (x, y, color)) in pixels.iter().enumerate() {
        c.send(&draw(i as u64 + 1, "art", *x, *y, *color)).await;
        expect_ack(&mut c, i as u64 + 1).await;
    }
    let t = token("viewer");

    let (status, h, cells) =
        http_get(g.addr, "/api/canvases/art/snapshot?format=cells", Some(&t)).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-easel-seq"], "4");
    assert_eq!(h["x-easel-width"], "100");
    assert_eq!(cells.len(), 100 * 100);
    assert_eq!(
        (cells[0], cells[99], cells[20 * 100 + 10], cells[1]),
        (5, 31, 9, 0)
    );

    let (status, h, packed) = http_get(
        g.addr,
        &format!("/api/canvases/art/snapshot?token={t}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h["x-easel-bits"], "5");
    assert_eq!(packed.len(), (100 * 100 * 5usize).div_ceil(8));
    assert_eq!(store::unpack_cells(&packed, 5, 100 * 100), cells);

    let (status, h, png) =
        http_get(g.addr, "/api/canvases/art/snapshot?format=png", Some(&t)).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let (status, _, body) =
        http_get(g.addr, "/api/canvases/art/events?since=1&limit=2", Some(&t)).await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["complete"], true);
    assert_eq!(page["next_since"], 3);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(page["events"][0]["type"], "draw");

    // Bad input: clear statuses and codes.
    for (path, bearer, status, code) in [
        ("/api/canvases/art/snapshot", None, 401, "E002"),
        ("/api/canvases/art/snapshot", Some("nope"), 401, "E002"),
        (
            "/api/canvases/bad%20id/snapshot",
            Some(t.as_str()),
            400,
            "E006",
        ),
        (
            "/api/canvases/art/snapshot?format=gif",
            Some(t.as_str()),
            400,
            "E007",
        ),
        (
            "/api/canvases/art/events?limit=0",
            Some(t.as_str()),
            400,
            "E007",
        ),
        (
            "/api/canvases/art/events?limit=5000",
            Some(t.as_str()),
            400,
            "E007",
        ),
    ] {
        let (got, _, body) = http_get(g.addr, path, bearer).await;
        assert_eq!(got, status, "{path}");
        let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(err["code"], code, "{path}");
    }
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_trimmed_from_redis_is_served_from_postgres() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let db = format!("--database-url={}", pg.url());
    let g = Gateway::start(settings(
        "gw",
        Some(&redis),
        &["--backlog-limit=10000", "--auto-create-canvases", &db],
    ))
    .await;
    let persister = RunningPersister::start(&redis, &pg, &["--keep-events=20"]).await;

    let mut w = g.client("w").await;
    w.send(&join(0, "h", false)).await;
    let start = expect_joined(&mut w, 0).await;
    for i in 1..=300u64 {
        w.send(&draw(i, "h", (i % 100) as i64, 0, (i % 32) as i64))
            .await;
        expect_ack(&mut w, i).await;
    }
    // The stream is trimmed down to about 20 events once persisted.
    wait_trimmed(&redis, &canvas("h"), 150).await;

    // The events page merges Postgres (old) and Redis (new): complete.
    let t = token("r");
    let (status, _, body) = http_get(
        g.addr,
        "/api/canvases/h/events?since=0&limit=1000",
        Some(&t),
    )
    .await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
    assert_eq!(page["complete"], true);

    // Resume from far back: replayed from Postgres, then Redis, then live.
    let mut back = g.client("r").await;
    back.send(&resume(1, "h", 5, &start.epoch)).await;
    let j = expect_joined(&mut back, 1).await;
    assert_eq!(j.resume, Some(ResumeOutcome::Replayed));
    let mut last = 5;
    while last < 300 {
        match back.recv().await {
            ServerMessage::Draw(d) => {
                assert_eq!(d.seq, Some(last + 1));
                last += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    persister.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_can_fetch_a_missing_range_over_the_socket() {
    let g = Gateway::start(settings("hist", None, &[])).await;
    let mut c = g.client("gap").await;
    join_ok(&mut c, 0, "g", false).await;
    for i in 1..=5 {
        c.send(&chat(i, "g", &format!("m{i}"))).await;
        expect_ack(&mut c, i).await;
    }
    c.send(&ClientMessage::History(HistoryRequest {
        id: Some(shared::RequestId::Num(10)),
        canvas: canvas("g"),
        since: 1,
        limit: Some(2),
    }))
    .await;
    match expect_ack(&mut c, 10).await {
        Some(AckResult::History(page)) => {
            assert!(page.complete);
            assert_eq!(page.seq, 5);
            assert_eq!(page.next_since, 3);
            let texts: Vec<(Option<u64>, String)> = page
                .events
                .into_iter()
                .map(|e| match e {
                    ServerMessage::Chat(c) => (c.seq, c.text),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(texts, vec![(Some(2), "m2".into()), (Some(3), "m3".into())]);
        }
        other => panic!("expected a history page, got {other:?}"),
    }
    c.send(&ClientMessage::History(HistoryRequest {
        id: Some(shared::RequestId::Num(11)),
        canvas: canvas("other"),
        since: 0,
        limit: None,
    }))
    .await;
    assert_eq!(
        expect_error(&mut c).await.code,
        shared::ErrorCode::NotJoined
    );
    c.send(&ClientMessage::History(HistoryRequest {
        id: Some(shared::RequestId::Num(12)),
        canvas: canvas("g"),
        since: 0,
        limit: Some(0),
    }))
    .await;
    assert_eq!(
        expect_error(&mut c).await.code,
        shared::ErrorCode::InvalidValue
    );
    g.stop().await;
}
