//! Replies too large for one frame: a `history` page over 256-pixel draws
//! (about 700 KB as one page of 100) used to drop the connection with no
//! reply. Pages now end at their byte budget and say where to continue.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

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
