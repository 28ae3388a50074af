//! Auto-creation is rate limited per user: canvases created by using them
//! beyond EASEL_AUTO_CREATE_RATE are refused with E004 (HTTP 429) and
//! nothing is created; existing canvases and other users are unaffected.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use testkit::{PostgresServer, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_creating_canvases_by_use_is_slowed_down() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let g = gateway_with_db("gw", Some(&redis), &pg, &["--auto-create-rate=0.01/s:3"]).await;
    let mut c = g.client("churner").await;
    for (i, name) in ["new-1", "new-2", "new-3"].into_iter().enumerate() {
        join_ok(&mut c, i as u64, name, false).await;
    }
    c.send(&join(10, "new-4", false)).await;
    let err = expect_error(&mut c).await;
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert!(err.retry_after_ms.unwrap() > 0);
    // Over REST too, and nothing was created.
    let (status, headers, _) = http_get(
        g.addr,
        "/api/canvases/new-5/snapshot",
        Some(&token("churner")),
    )
    .await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        pg.psql("SELECT count(*) FROM canvases WHERE id LIKE 'new-%'"),
        "3"
    );
    // Known canvases, and other users, are unaffected.
    join_ok(&mut c, 11, "new-1", false).await;
    let mut other = g.client("other").await;
    join_ok(&mut other, 1, "new-4", false).await;
    let metrics = testkit::http::scrape(g.admin).await;
    let sample = |name| testkit::http::sample(&metrics, name);
    assert_eq!(
        sample("easel_gateway_canvases_auto_created_total"),
        Some(4.0)
    );
    assert_eq!(
        sample("easel_gateway_canvases_auto_create_refused_total"),
        Some(2.0)
    );
    g.stop().await;
}
