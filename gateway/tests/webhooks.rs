//! Signed webhooks from the persister to a real HTTP receiver: batches of
//! the asked-for kinds arrive signed, each event id is taken once after
//! failed attempts are retried, a receiver that hangs does not delay the
//! real-time fan-out, a queue over its limit drops its oldest events, and
//! the gateways' feed brings presence changes and refusals.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::*;
use parking_lot::Mutex;
use shared::protocol::{ClientMessage, ObjectCreate, ServerMessage};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use testkit::{PostgresServer, RedisServer};
use tokio::sync::Semaphore;

const SECRET: &str = "webhook-secret-for-the-test-0123";

/// The app's receiver: what it took, and how it behaves.
#[derive(Default)]
struct Receiver {
    /// Event id to event, for the events of requests answered 204.
    taken: Mutex<BTreeMap<String, serde_json::Value>>,
    /// Ids taken more than once (a 2xx resent).
    repeats: Mutex<Vec<String>>,
    /// Events per request, every request.
    batches: Mutex<Vec<usize>>,
    /// Requests to fail with 500 before answering 204.
    fail_first: AtomicU32,
    /// When set, each request waits for a permit first.
    gate: Option<Arc<Semaphore>>,
    bad_signatures: AtomicU32,
    /// Requests that reached the receiver (before the gate).
    arrived: AtomicU32,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    r.arrived.fetch_add(1, Ordering::SeqCst);
    if let Some(gate) = &r.gate {
        gate.acquire().await.unwrap().forget();
    }
    let signed = headers["x-easel-signature"].to_str().unwrap().to_owned();
    let t: u64 = signed
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    let fresh = (shared::now_ms() / 1000).abs_diff(t) < 300;
    if !fresh || persister::webhooks::signature(SECRET.as_bytes(), t, &body) != signed {
        r.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let events = batch["events"].as_array().unwrap();
    r.batches.lock().push(events.len());
    if r.fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    for e in events {
        let id = e["id"].as_str().unwrap().to_owned();
        if r.taken
            .lock()
            .insert(id.clone(), e["event"].clone())
            .is_some()
        {
            r.repeats.lock().push(id);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Serves `receiver` on `listener`.
fn serve(receiver: Arc<Receiver>, listener: tokio::net::TcpListener) {
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    (l, at)
}

fn hook_flags(at: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut flags = vec![
        format!("--webhook-url=http://{at}/hooks"),
        format!("--webhook-secret={SECRET}"),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

async fn start_persister(
    redis: &RedisServer,
    pg: &PostgresServer,
    flags: &[String],
) -> RunningPersister {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    RunningPersister::start(redis, pg, &flags).await
}

fn object(id: u64, canvas: &str) -> ClientMessage {
    ClientMessage::ObjectCreate(ObjectCreate {
        id: Some(shared::RequestId::Num(id)),
        canvas: shared::CanvasId::new(canvas).unwrap(),
        key: None,
        kind: "token".into(),
        x: 1.0,
        y: 1.0,
        w: 1.0,
        h: 1.0,
        props: Default::default(),
    })
}

async fn wait_taken(r: &Receiver, n: usize) {
    testkit::eventually(Duration::from_secs(90), "the webhook events", || async {
        r.taken.lock().len() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_signed_in_batches_and_each_event_once_after_retries() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let receiver = Arc::new(Receiver {
        fail_first: AtomicU32::new(2),
        ..Receiver::default()
    });
    let (l, at) = listener().await;
    serve(receiver.clone(), l);
    let g = gateway_with_db("wh", Some(&redis), &pg, &[]).await;
    let persister = start_persister(&redis, &pg, &hook_flags(at, &["--webhook-batch=5"])).await;

    let mut c = g.client("ada").await;
    join_ok(&mut c, 1, "hooked", false).await;
    for i in 0..12 {
        c.send(&chat(10 + i, "hooked", &format!("line {i}"))).await;
        expect_ack(&mut c, 10 + i).await;
    }
    c.send(&draw(30, "hooked", 1, 1, 2)).await;
    expect_ack(&mut c, 30).await;
    c.send(&object(31, "hooked")).await;
    expect_ack(&mut c, 31).await;

    wait_taken(&receiver, 13).await;
    let taken = receiver.taken.lock().clone();
    // Chats are seq 1..=12, the draw 13 (not asked for), the object 14.
    let mut want: Vec<String> = (1..=12).map(|s| format!("hooked:{s}")).collect();
    want.push("hooked:14".into());
    want.sort();
    assert_eq!(taken.keys().cloned().collect::<Vec<_>>(), want);
    assert_eq!(taken["hooked:3"]["type"], "chat");
    assert_eq!(taken["hooked:3"]["text"], "line 2");
    assert_eq!(taken["hooked:3"]["seq"], 3);
    assert_eq!(taken["hooked:3"]["author"]["id"], "ada");
    assert_eq!(taken["hooked:14"]["type"], "object_created");
    assert!(
        receiver.repeats.lock().is_empty(),
        "{:?}",
        receiver.repeats.lock()
    );
    assert!(receiver.batches.lock().iter().all(|&n| n <= 5));
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    // Two failed requests, retried: nothing is left queued.
    assert_eq!(receiver.fail_first.load(Ordering::SeqCst), 0);
    testkit::eventually(Duration::from_secs(10), "an empty queue", || async {
        pg.psql("SELECT count(*) FROM webhook_outbox") == "0"
    })
    .await;
    persister.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_hangs_does_not_delay_fan_out() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let gate = Arc::new(Semaphore::new(0));
    let receiver = Arc::new(Receiver {
        gate: Some(gate.clone()),
        ..Receiver::default()
    });
    let (l, at) = listener().await;
    serve(receiver.clone(), l);
    let g = gateway_with_db("wh-slow", Some(&redis), &pg, &[]).await;
    let persister = start_persister(
        &redis,
        &pg,
        &hook_flags(at, &["--webhook-timeout-ms=60000"]),
    )
    .await;
    let mut ada = g.client("ada").await;
    let mut bob = g.client("bob").await;
    join_ok(&mut ada, 1, "busy", false).await;
    join_ok(&mut bob, 1, "busy", false).await;
    for i in 0..5 {
        ada.send(&chat(10 + i, "busy", "first")).await;
        expect_ack(&mut ada, 10 + i).await;
    }
    // The first batch is at the receiver, which holds it.
    testkit::eventually(
        Duration::from_secs(15),
        "a request at the receiver",
        || async { receiver.arrived.load(Ordering::SeqCst) > 0 },
    )
    .await;
    // Meanwhile the canvas goes on: bob gets every chat ada sends.
    let mut seen = 0;
    for i in 0..20 {
        ada.send(&chat(20 + i, "busy", "while the hook hangs"))
            .await;
        expect_ack(&mut ada, 20 + i).await;
    }
    while seen < 25 {
        if let ServerMessage::Chat(_) = bob.recv().await {
            seen += 1;
        }
    }
    assert!(
        receiver.taken.lock().is_empty(),
        "the receiver let nothing through yet"
    );
    // Released, everything arrives.
    gate.add_permits(1000);
    wait_taken(&receiver, 25).await;
    persister.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_over_its_limit_drops_its_oldest_events() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    // Nobody listens at the address yet.
    let (l, at) = listener().await;
    drop(l);
    let g = gateway_with_db("wh-full", Some(&redis), &pg, &[]).await;
    let flags = hook_flags(at, &["--webhook-queue-limit=5", "--webhook-timeout-ms=200"]);
    let persister = start_persister(&redis, &pg, &flags).await;
    let mut c = g.client("ada").await;
    join_ok(&mut c, 1, "full", false).await;
    for i in 0..10 {
        c.send(&chat(10 + i, "full", "x")).await;
        expect_ack(&mut c, 10 + i).await;
    }
    testkit::eventually(
        Duration::from_secs(20),
        "the queue at its limit",
        || async {
            pg.psql("SELECT string_agg(event_id, ',' ORDER BY id) FROM webhook_outbox")
                == "full:6,full:7,full:8,full:9,full:10"
        },
    )
    .await;
    // The receiver comes up: the newest five arrive (after the backoff).
    let receiver = Arc::new(Receiver::default());
    let l = tokio::net::TcpListener::bind(at).await.unwrap();
    serve(receiver.clone(), l);
    wait_taken(&receiver, 5).await;
    let ids: Vec<String> = receiver.taken.lock().keys().cloned().collect();
    assert_eq!(ids, ["full:10", "full:6", "full:7", "full:8", "full:9"]);
    persister.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_feed_brings_presence_changes_and_refusals() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let receiver = Arc::new(Receiver::default());
    let (l, at) = listener().await;
    serve(receiver.clone(), l);
    let presence = [
        "--webhook-feed",
        "--presence-grace-ms=300",
        "--presence-sweep-ms=100",
        "--presence-ttl-secs=2",
    ];
    let a = gateway_with_db("feed-a", Some(&redis), &pg, &presence).await;
    let b = gateway_with_db("feed-b", Some(&redis), &pg, &presence).await;
    let persister = start_persister(&redis, &pg, &hook_flags(at, &[])).await;

    let mut ann = a.client("ann").await;
    join_ok(&mut ann, 1, "room", false).await;
    let mut bob = b.client("bob").await;
    join_ok(&mut bob, 1, "room", false).await;
    let watcher = token_with("watcher", Some(shared::auth::Role::Spectator), &[]);
    let mut watcher =
        testkit::ws::WsClient::connect_ok(b.addr, testkit::ws::Connect::token(&watcher))
            .await
            .0;
    join_ok(&mut watcher, 1, "room", false).await;
    watcher.send(&draw(2, "room", 1, 1, 1)).await;
    assert_eq!(
        expect_error(&mut watcher).await.code,
        shared::ErrorCode::Forbidden
    );
    drop(ann);
    drop(bob);
    drop(watcher);

    let kinds = || {
        let mut kinds: Vec<String> = receiver
            .taken
            .lock()
            .values()
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["user"]["id"].as_str().unwrap_or("-")
                )
            })
            .collect();
        kinds.sort();
        kinds
    };
    testkit::eventually(Duration::from_secs(30), "the presence webhooks", || async {
        kinds().len() >= 9
    })
    .await;
    assert_eq!(
        kinds(),
        [
            "canvas_occupied -",
            "canvas_vacated -",
            "member_joined ann",
            "member_joined bob",
            "member_joined watcher",
            "member_left ann",
            "member_left bob",
            "member_left watcher",
            "refused watcher",
        ]
    );
    let events = receiver.taken.lock().clone();
    let refused = events.values().find(|e| e["type"] == "refused").unwrap();
    assert_eq!(
        (refused["command"].as_str(), refused["code"].as_str()),
        (Some("draw"), Some("E008"))
    );
    assert!(
        events.keys().all(|id| id.starts_with("feed:")),
        "{:?}",
        events.keys()
    );
    persister.stop().await;
    a.stop().await;
    b.stop().await;
}
