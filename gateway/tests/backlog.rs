//! With a persister configured, a canvas whose unpersisted backlog reaches
//! the limit refuses durable writes with E013 (not applied), and accepts
//! them again once the persister has caught up.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::protocol::*;
use std::time::Duration;
use testkit::{PostgresServer, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_with_e013_while_the_backlog_is_full() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let g = Gateway::start(settings(
        "bk",
        Some(&redis),
        &["--backlog-limit=20", "--auto-create-canvases"],
    ))
    .await;
    let mut c = g.client("u").await;
    join_ok(&mut c, 0, "b", false).await;
    for i in 1..=20 {
        c.send(&draw(i, "b", 1, 1, 1)).await;
        expect_ack(&mut c, i).await;
    }
    c.send(&chat(21, "b", "one too many")).await;
    let e = expect_error(&mut c).await;
    assert_eq!(e.code, ErrorCode::BacklogFull);
    assert_eq!(e.id, Some(shared::RequestId::Num(21)));
    assert!(e.retry_after_ms.is_some_and(|ms| ms > 0));
    // The refusal is a metric as well as an error.
    let (_, _, metrics) = http_get(g.admin, "/metrics", None).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("easel_gateway_durable_writes_refused_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"easel_gateway_errors_total{code="backlog_full"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("easel_gateway_connections_open 1"),
        "{metrics}"
    );

    let persister = RunningPersister::start(&redis, &pg, &[]).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut id = 100;
    loop {
        id += 1;
        c.send(&chat(id, "b", "retry")).await;
        match c.recv().await {
            ServerMessage::Ack(a) => {
                assert_eq!(
                    a.result,
                    Some(AckResult::Published(Published {
                        seq: 21,
                        object: None
                    })),
                    "the refused write was not applied"
                );
                break;
            }
            ServerMessage::Error(e) => {
                assert_eq!(e.code, ErrorCode::BacklogFull);
                assert!(std::time::Instant::now() < deadline, "never accepted again");
                tokio::time::sleep(Duration::from_millis(e.retry_after_ms.unwrap().min(200))).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    persister.stop().await;
    g.stop().await;
}
