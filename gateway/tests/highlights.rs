//! Highlights (mentions): a position or a user, for a while, from one
//! gateway to the members on another; bad ones get E007 and reach no one.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::RequestId;
use shared::protocol::{ClientMessage, HighlightSend, ServerMessage};
use testkit::RedisServer;

fn highlight(
    id: u64,
    x: Option<f64>,
    y: Option<f64>,
    user: Option<&str>,
    ms: u32,
) -> ClientMessage {
    ClientMessage::Highlight(HighlightSend {
        id: Some(RequestId::Num(id)),
        canvas: canvas("hl"),
        x,
        y,
        user: user.map(str::to_owned),
        duration_ms: ms,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlights_cross_gateways_and_bad_ones_reach_no_one() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("hl-a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("hl-b", Some(&redis), &[])).await;
    let mut bob = a.client("bob").await;
    let mut ada = b.client("ada").await;
    join_ok(&mut bob, 1, "hl", false).await;
    join_ok(&mut ada, 1, "hl", false).await;

    bob.send(&highlight(10, None, None, Some("ada"), 5000))
        .await;
    assert_eq!(expect_ack(&mut bob, 10).await, None);
    bob.send(&highlight(11, Some(12.5), Some(40.0), None, 100))
        .await;
    expect_ack(&mut bob, 11).await;

    // Out of range, two targets, none, off the canvas: E007, not published.
    for (id, bad) in [
        (20, highlight(20, None, None, Some("ada"), 99)),
        (21, highlight(21, None, None, Some("ada"), 60_001)),
        (22, highlight(22, Some(1.0), Some(1.0), Some("ada"), 1000)),
        (23, highlight(23, None, None, None, 1000)),
        (24, highlight(24, Some(100.5), Some(1.0), None, 1000)),
    ] {
        bob.send(&bad).await;
        let e = expect_error(&mut bob).await;
        assert_eq!(
            (e.code, e.id),
            (ErrorCode::InvalidValue, Some(RequestId::Num(id)))
        );
    }
    // Not joined: E010.
    bob.send(&ClientMessage::Highlight(HighlightSend {
        id: Some(RequestId::Num(30)),
        canvas: canvas("elsewhere"),
        x: None,
        y: None,
        user: Some("ada".into()),
        duration_ms: 1000,
    }))
    .await;
    assert_eq!(expect_error(&mut bob).await.code, ErrorCode::NotJoined);
    bob.send(&chat(40, "hl", "marker")).await;
    expect_ack(&mut bob, 40).await;

    match ada.recv().await {
        ServerMessage::Highlight(h) => {
            assert_eq!(h.author.id, "bob");
            assert_eq!(h.user.as_deref(), Some("ada"));
            assert_eq!((h.x, h.y, h.duration_ms), (None, None, 5000));
            assert!(h.ts > 0);
        }
        other => panic!("{other:?}"),
    }
    match ada.recv().await {
        ServerMessage::Highlight(h) => {
            assert_eq!(
                (h.x, h.y, h.user, h.duration_ms),
                (Some(12.5), Some(40.0), None, 100)
            );
        }
        other => panic!("{other:?}"),
    }
    match ada.recv().await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "marker", "a bad highlight was published"),
        other => panic!("a bad highlight was published: {other:?}"),
    }
    a.stop().await;
    b.stop().await;
}
