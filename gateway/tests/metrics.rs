//! /metrics counts what happened: a known number of connections and
//! messages through two gateways on one Redis, then each gateway's
//! counters and gauges are read back.

mod common;

use common::*;
use shared::protocol::{AckResult, ServerMessage};
use std::net::SocketAddr;
use std::time::Duration;
use testkit::http::{sample, scrape};
use testkit::{RedisServer, eventually};

async fn value(admin: SocketAddr, series: &str) -> f64 {
    let text = scrape(admin).await;
    sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test]
async fn counters_and_gauges_match_the_traffic_on_two_gateways() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings(
        "metrics-a",
        Some(&redis),
        &["--backlog-limit=5000"],
    ))
    .await;
    let b = Gateway::start(settings("metrics-b", Some(&redis), &[])).await;

    // Three connections on A, two on B, all on one canvas; one of A's also
    // joins a second canvas.
    let mut on_a = Vec::new();
    for i in 0..3 {
        let mut c = a.client(&format!("ua{i}")).await;
        join_ok(&mut c, 1, "metrics", false).await;
        on_a.push(c);
    }
    join_ok(&mut on_a[0], 2, "metrics-2", false).await;
    let mut on_b = Vec::new();
    for i in 0..2 {
        let mut c = b.client(&format!("ub{i}")).await;
        join_ok(&mut c, 1, "metrics", false).await;
        on_b.push(c);
    }

    // A's first client draws 4 times and chats twice: 6 events, delivered
    // to the 2 other members on A and the 2 on B.
    for id in 10..14 {
        on_a[0].send(&draw(id, "metrics", 1, 1, 2)).await;
        expect_ack(&mut on_a[0], id).await;
    }
    for id in 20..22 {
        on_a[0].send(&chat(id, "metrics", "hi")).await;
        expect_ack(&mut on_a[0], id).await;
    }
    for c in on_a[1..].iter_mut().chain(on_b.iter_mut()) {
        for _ in 0..6 {
            match c.recv().await {
                ServerMessage::Draw(_) | ServerMessage::Chat(_) => {}
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }
    // One invalid draw: an error reply, counted by code.
    on_a[1].send(&draw(30, "metrics", 5000, 1, 2)).await;
    expect_error(&mut on_a[1]).await;

    // On A: a plain GET of /ws (refused upgrade) and a bad token (an auth
    // failure after the upgrade, closed with 4001).
    let (status, _, _) = http_get(a.addr, "/ws", None).await;
    assert_eq!(status, 426);
    let mut bad = testkit::ws::WsClient::connect(a.addr, testkit::ws::Connect::token("not-a-jwt"))
        .await
        .expect("upgrade");
    assert_eq!(bad.closed().await.code, Some(4001));

    // A resume on B after the first event.
    let mut r = b.client("ub-resume").await;
    join_ok(&mut r, 1, "metrics", false).await;
    r.send(&leave(2, "metrics")).await;
    expect_ack(&mut r, 2).await;
    // A second member on B learns the canvas position (and stays open).
    let mut probe = b.client("ub-probe").await;
    probe.send(&join(1, "metrics", false)).await;
    let joined = match expect_ack(&mut probe, 1).await {
        Some(AckResult::Joined(j)) => j,
        other => panic!("{other:?}"),
    };
    r.send(&resume(3, "metrics", joined.seq - 1, &joined.epoch))
        .await;
    expect_joined(&mut r, 3).await;

    // Close one of B's original connections from the client side.
    let mut closing = on_b.pop().expect("client").into_inner();
    closing.close(None).await.expect("close");
    drop(closing);

    let deadline = Duration::from_secs(10);
    eventually(deadline, "B counts the closed connection", || async {
        sample(
            &scrape(b.admin).await,
            r#"easel_gateway_connections_closed_total{reason="normal"}"#,
        ) == Some(1.0)
    })
    .await;

    // A: 4 opened, 3 open, messages by type, the error, deliveries to its
    // 2 other members (12), 2 canvases, 4 memberships.
    // The bad token's connection was opened, then closed.
    eventually(deadline, "A counts the refused token's close", || async {
        sample(
            &scrape(a.admin).await,
            r#"easel_gateway_connections_closed_total{reason="auth_failed"}"#,
        ) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(a.admin, "easel_gateway_connections_opened_total").await,
        4.0
    );
    assert_eq!(value(a.admin, "easel_gateway_connections_open").await, 3.0);
    let text = scrape(a.admin).await;
    for (series, want) in [
        (r#"easel_gateway_messages_received_total{type="join"}"#, 4.0),
        (r#"easel_gateway_messages_received_total{type="draw"}"#, 5.0),
        (r#"easel_gateway_messages_received_total{type="chat"}"#, 2.0),
        (r#"easel_gateway_errors_total{code="invalid_value"}"#, 1.0),
        ("easel_gateway_deliveries_total", 12.0),
        ("easel_gateway_joined_canvases", 2.0),
        ("easel_gateway_local_members", 4.0),
        ("easel_gateway_bus_connected", 1.0),
        // 2 canvases and the user channels of ua0..ua2.
        ("easel_gateway_bus_subscriptions", 5.0),
        ("easel_gateway_slow_consumer_disconnects_total", 0.0),
        // Replies: 4 connections welcomed (the bad token's was not), acks
        // for 4 joins and 6 events, the invalid draw's and bad token's errors.
        (r#"easel_gateway_messages_sent_total{type="welcome"}"#, 3.0),
        (r#"easel_gateway_messages_sent_total{type="ack"}"#, 10.0),
        (r#"easel_gateway_messages_sent_total{type="error"}"#, 2.0),
        (r#"easel_gateway_errors_total{code="auth_failed"}"#, 1.0),
        (
            r#"easel_gateway_auth_failures_total{reason="malformed"}"#,
            1.0,
        ),
        (
            r#"easel_gateway_upgrades_refused_total{reason="not_websocket"}"#,
            1.0,
        ),
        // One Redis round trip per published event.
        (
            r#"easel_gateway_bus_publish_seconds_count{durability="durable"}"#,
            6.0,
        ),
        ("easel_gateway_backlog_limit_events", 5000.0),
        // Every live delivery is timed from its ingest, all within 13 s.
        ("easel_gateway_fanout_latency_seconds_count", 12.0),
        (
            r#"easel_gateway_fanout_latency_seconds_bucket{le="13.1072"}"#,
            12.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }

    // B: 2 + resume client + probe = 4 opened, 1 closed, 3 open; its 2
    // original members got 6 events each (nothing was published after the
    // others joined); one resume, replayed.
    let text = scrape(b.admin).await;
    for (series, want) in [
        ("easel_gateway_connections_opened_total", 4.0),
        ("easel_gateway_connections_open", 3.0),
        ("easel_gateway_deliveries_total", 12.0),
        (r#"easel_gateway_resumes_total{outcome="replayed"}"#, 1.0),
        ("easel_gateway_joined_canvases", 1.0),
        ("easel_gateway_local_members", 3.0),
        (
            r#"easel_gateway_connections_closed_total{reason="normal"}"#,
            1.0,
        ),
        // Live events only: the resume's replay is history, not fan-out.
        ("easel_gateway_fanout_latency_seconds_count", 12.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    assert!(sample(&text, "easel_process_cpu_limit_cores").is_some_and(|c| c >= 1.0));
    assert!(sample(&text, "easel_process_memory_limit_bytes").is_some_and(|b| b > 0.0));
    // The canvas, and the user channels of ub0, ub-resume and ub-probe.
    assert_eq!(sample(&text, "easel_gateway_bus_subscriptions"), Some(4.0));
    // Bytes: at least the events B wrote to its two members (each frame
    // over 20 bytes), and what its clients sent.
    let sent = sample(&text, "easel_gateway_sent_bytes_total").expect("sent bytes");
    assert!(sent > 12.0 * 20.0, "{sent}");
    let received = sample(&text, "easel_gateway_received_bytes_total").expect("received");
    assert!(received > 0.0, "{received}");
    let sum = sample(&text, "easel_gateway_fanout_latency_seconds_sum").expect("sum");
    assert!(sum > 0.0 && sum < 12.0 * 13.0, "{sum}");
    drop((on_a, on_b, r, probe));
    a.stop().await;
    b.stop().await;
}
