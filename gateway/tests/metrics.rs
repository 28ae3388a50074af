//! /metrics counts what happened: a known number of connections and
//! messages through two gateways on one Redis, then each gateway's
//! counters and gauges are read back.

mod common;

use common::*;
use shared::protocol::{AckResult, ServerMessage};
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{RedisServer, eventually};

/// The value of one sample line (`name{labels} value`) in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(admin: SocketAddr) -> String {
    let (status, _, body) = http_get(admin, "/metrics", None).await;
    assert_eq!(status, 200);
    String::from_utf8(body).expect("utf-8 exposition")
}

async fn value(admin: SocketAddr, series: &str) -> f64 {
    let text = scrape(admin).await;
    sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn sample_reads_exact_series_only() {
    let text = "a_total 3\na_total{code=\"x\"} 4\nab_total 5\n";
    assert_eq!(sample(text, "a_total"), Some(3.0));
    assert_eq!(sample(text, "a_total{code=\"x\"}"), Some(4.0));
    assert_eq!(sample(text, "b_total"), None);
}

#[tokio::test]
async fn counters_and_gauges_match_the_traffic_on_two_gateways() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("metrics-a", Some(&redis), &[])).await;
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

    // A: 3 opened, 3 open, messages by type, the error, deliveries to its
    // 2 other members (12), 2 canvases, 4 memberships.
    assert_eq!(
        value(a.admin, "easel_gateway_connections_opened_total").await,
        3.0
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
        ("easel_gateway_slow_consumer_disconnects_total", 0.0),
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
    let sum = sample(&text, "easel_gateway_fanout_latency_seconds_sum").expect("sum");
    assert!(sum > 0.0 && sum < 12.0 * 13.0, "{sum}");
    drop((on_a, on_b, r, probe));
    a.stop().await;
    b.stop().await;
}
