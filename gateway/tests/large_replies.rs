//! Replies too large for one frame: a `history` page over 256-pixel draws
//! (about 700 KB as one page of 100) used to drop the connection with no
//! reply. Pages now end at their byte budget and say where to continue.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{RawFrame, RawWs};
use common::*;
use shared::RequestId;
use shared::protocol::*;

fn wide_draw(i: u64) -> ClientMessage {
    ClientMessage::Draw(Draw {
        id: Some(RequestId::Num(i)),
        canvas: canvas("wide"),
        key: None,
        pixels: (0..256)
            .map(|k| PixelInput {
                x: (k % 100) as i64,
                y: ((k / 100) + (i % 90)) as i64,
                color: (k % 32) as i64,
            })
            .collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_larger_than_a_frame_comes_in_pages_and_the_connection_stays() {
    let g = Gateway::start(settings("large", None, &[])).await;
    let mut c = g.client("reader").await;
    join_ok(&mut c, 1, "wide", false).await;
    let mut seqs = Vec::new();
    for i in 0..100 {
        c.send(&wide_draw(100 + i)).await;
        match expect_ack(&mut c, 100 + i).await {
            Some(AckResult::Published(p)) => seqs.push(p.seq),
            other => panic!("{other:?}"),
        }
    }
    // Page through with the default limit of 100: every event once, in
    // order, each page under the budget, the connection open throughout.
    let (mut since, mut got, mut pages) = (0, Vec::new(), 0);
    while got.len() < seqs.len() {
        pages += 1;
        assert!(pages <= 100, "no progress after {} events", got.len());
        c.send(&ClientMessage::History(HistoryRequest {
            id: Some(RequestId::Num(1000 + pages)),
            canvas: canvas("wide"),
            since,
            limit: None,
        }))
        .await;
        let page = match expect_ack(&mut c, 1000 + pages).await {
            Some(AckResult::History(page)) => page,
            other => panic!("{other:?}"),
        };
        assert!(page.complete);
        assert!(!page.events.is_empty(), "an empty page before the end");
        let json = serde_json::to_vec(&page).unwrap();
        assert!(json.len() < 4 * 65_536, "a page of {} bytes", json.len());
        for e in &page.events {
            match e {
                ServerMessage::Draw(d) => got.push(d.seq.unwrap()),
                other => panic!("{other:?}"),
            }
        }
        since = page.next_since;
    }
    assert_eq!(got, seqs);
    assert!(
        pages > 1,
        "100 wide draws fit one page: the test shows nothing"
    );
    // REST pages the same way.
    let (status, _, body) = testkit::http::get(
        g.addr,
        "/api/canvases/wide/events?since=0&limit=100",
        Some(&token("rest")),
    )
    .await;
    assert_eq!(status, 200);
    let page: HistoryPage = serde_json::from_slice(&body).unwrap();
    assert!(page.events.len() < 100 && !page.events.is_empty());
    assert_eq!(page.next_since, seqs[page.events.len() - 1]);
    // Still connected and answering.
    c.send(&ClientMessage::Ping(Ping {
        id: Some(RequestId::Num(7)),
        ts: Some(1),
    }))
    .await;
    assert!(matches!(c.recv().await, ServerMessage::Pong(_)));
    g.stop().await;
}

fn gm_token(user: &str) -> String {
    let mut claims = shared::auth::MintClaims::for_user(user, 600);
    claims.role = Some(shared::auth::Role::Gm);
    shared::auth::mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

/// Reads every page of `objects`; the ids and each page's JSON size.
async fn all_objects(c: &mut testkit::WsClient, first_id: u64) -> (Vec<String>, Vec<usize>) {
    let (mut ids, mut sizes, mut after) = (Vec::new(), Vec::new(), None);
    for n in first_id.. {
        c.send(&ClientMessage::Objects(ObjectsRequest {
            id: Some(RequestId::Num(n)),
            canvas: canvas("many"),
            after: after.clone(),
        }))
        .await;
        let page = match expect_ack(c, n).await {
            Some(AckResult::Objects(page)) => page,
            other => panic!("{other:?}"),
        };
        sizes.push(serde_json::to_vec(&page).unwrap().len());
        ids.extend(page.objects.iter().map(|o| o.id.clone()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return (ids, sizes),
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_larger_than_a_frame_come_in_pages_in_id_order() {
    let redis = testkit::RedisServer::start();
    objects_in_pages(Some(&redis)).await;
    objects_in_pages(None).await;
}

/// On Redis, or standalone (the memory log).
async fn objects_in_pages(redis: Option<&testkit::RedisServer>) {
    let g = Gateway::start(settings("objects", redis, &["--max-message-bytes=16384"])).await;
    let connect = testkit::ws::Connect::token(&gm_token("gm"));
    let (mut gm, _) = testkit::WsClient::connect_ok(g.addr, connect).await;
    join_ok(&mut gm, 1, "many", false).await;
    // 30 tokens of about 3.5 KB and 2 fog regions: about 110 KB, over the
    // 48 KiB page budget (3 x EASEL_MAX_MESSAGE_BYTES).
    let blob = "x".repeat(3500);
    for i in 0..32u64 {
        let kind = if i < 2 { "fog" } else { "token" };
        gm.send(&ClientMessage::ObjectCreate(ObjectCreate {
            id: Some(RequestId::Num(100 + i)),
            canvas: canvas("many"),
            key: None,
            kind: kind.into(),
            x: 1.0,
            y: 1.0,
            w: 1.0,
            h: 1.0,
            props: [("blob".to_string(), serde_json::json!(blob))]
                .into_iter()
                .collect(),
        }))
        .await;
        expect_ack(&mut gm, 100 + i).await;
    }
    let (ids, sizes) = all_objects(&mut gm, 200).await;
    assert_eq!(ids.len(), 32, "a gm sees every object once");
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 3 * 16384), "{sizes:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "in id order, no repeats");
    let mut player = g.client("player").await;
    join_ok(&mut player, 1, "many", false).await;
    let (seen, _) = all_objects(&mut player, 10).await;
    assert_eq!(
        seen.len(),
        30,
        "no fog for a player, and no page of nothing"
    );
    // REST pages the same way.
    let (status, _, body) =
        http_get(g.addr, "/api/canvases/many/objects", Some(&token("player"))).await;
    assert_eq!(status, 200);
    let page: ObjectsPage = serde_json::from_slice(&body).unwrap();
    let next = page.next_after.expect("more pages");
    let path = format!("/api/canvases/many/objects?after={next}");
    let (status, _, body) = http_get(g.addr, &path, Some(&token("player"))).await;
    assert_eq!(status, 200);
    let second: ObjectsPage = serde_json::from_slice(&body).unwrap();
    assert!(second.objects.iter().all(|o| o.id > next));
    g.stop().await;
}

/// Reads whole messages off a raw socket until the ack with `id`; every
/// frame is checked against the fragment size. Returns the ack's JSON and
/// the frames it came in.
async fn raw_ack(ws: &mut RawWs, id: u64) -> (serde_json::Value, Vec<RawFrame>) {
    let mut frames = Vec::new();
    loop {
        let frame = ws.frame().await;
        assert!(
            frame.payload.len() <= 4096,
            "a frame of {} bytes",
            frame.payload.len()
        );
        let (fin, opcode) = (frame.fin, frame.opcode);
        if opcode >= 8 {
            continue; // a ping
        }
        frames.push(frame);
        if !fin {
            continue;
        }
        let whole: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
        let msg: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        if msg["type"] == "ack" && msg["id"] == id {
            return (msg, frames);
        }
        frames.clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_reply_arrives_as_fragments_of_at_most_4_kib() {
    let g = Gateway::start(settings("fragments", None, &[])).await;
    let mut c = g.client("writer").await;
    join_ok(&mut c, 1, "wide", false).await;
    for i in 0..20 {
        c.send(&wide_draw(100 + i)).await;
        assert!(expect_ack(&mut c, 100 + i).await.is_some());
    }
    let mut ws = RawWs::upgrade(g.addr, "raw").await;
    let send = |msg: ClientMessage| serde_json::to_string(&msg).unwrap();
    ws.send_text(&send(join(1, "wide", false))).await;
    raw_ack(&mut ws, 1).await;
    ws.send_text(&send(ClientMessage::History(HistoryRequest {
        id: Some(RequestId::Num(2)),
        canvas: canvas("wide"),
        since: 0,
        limit: None,
    })))
    .await;
    let (ack, frames) = raw_ack(&mut ws, 2).await;
    // One message over many frames: text first, continuations after, only
    // the last final.
    assert_eq!(ack["result"]["events"].as_array().unwrap().len(), 20);
    assert!(frames.len() > 10, "{} frames", frames.len());
    assert_eq!(frames[0].opcode, 1);
    assert!(frames[1..].iter().all(|f| f.opcode == 0));
    assert!(frames[..frames.len() - 1].iter().all(|f| !f.fin));
    g.stop().await;
}
