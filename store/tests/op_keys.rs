//! Operation keys: a keyed durable operation resent within the window is
//! answered as the first was and not applied again, on the memory log and
//! on Redis across two logs (two gateways) sharing a private redis-server.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use shared::CanvasId;
use shared::busframe::BusHeader;
use shared::protocol::{Author, ObjectState, Pixel, ServerMessage};
use std::sync::Arc;
use std::time::Duration;
use store::{
    Change, Log, LogSettings, ObjectChange, ObjectOp, OpKey, PixelChange, RedisPool, Written,
};
use testkit::RedisServer;

const WINDOW: Duration = Duration::from_secs(60);

async fn redis_log(redis: &RedisServer) -> Log {
    let pool = RedisPool::connect(redis.url(), 2, Duration::from_secs(2))
        .await
        .unwrap();
    let settings = LogSettings {
        log_max_events: 1000,
        backlog_limit: 0,
        ack_replicas: 0,
    };
    Log::redis(pool, settings, None)
}

fn header() -> BusHeader {
    BusHeader {
        node: "n".into(),
        conn: 1,
        ingest_us: 0,
        gm_only: false,
        control: false,
    }
}

fn key(user: &str, key: &str, window: Duration) -> OpKey {
    OpKey {
        user: user.into(),
        key: key.into(),
        window,
    }
}

fn draw(canvas: &CanvasId, x: u32) -> (ServerMessage, Change) {
    let event = ServerMessage::Draw(shared::protocol::DrawEvent {
        canvas: canvas.clone(),
        seq: None,
        author: Author {
            id: "u".into(),
            name: None,
        },
        ts: 0,
        pixels: vec![Pixel { x, y: 0, color: 1 }],
    });
    let change = Change::Pixels(PixelChange {
        bits: 5,
        cell_count: 16,
        cells: vec![(x, 1)],
    });
    (event, change)
}

async fn keyed_draw(log: &Log, canvas: &CanvasId, x: u32, k: &OpKey) -> Written {
    let (event, change) = draw(canvas, x);
    log.publish_keyed(canvas, &header(), &event, Some(&change), Some(k))
        .await
        .unwrap()
}

fn create(canvas: &CanvasId, id: &str) -> (ServerMessage, Change) {
    let object = ObjectState {
        id: id.into(),
        kind: "token".into(),
        x: 1.0,
        y: 1.0,
        w: 1.0,
        h: 1.0,
        props: Default::default(),
        likes: 0,
        owner: "u".into(),
    };
    let event = ServerMessage::ObjectCreated(shared::protocol::ObjectCreated {
        canvas: canvas.clone(),
        seq: None,
        author: Author {
            id: "u".into(),
            name: None,
        },
        ts: 0,
        object: object.clone(),
    });
    let change = Change::Object(ObjectChange {
        op: ObjectOp::Create(object),
        user: "u".into(),
        gm: false,
        max_objects: 10,
    });
    (event, change)
}

/// The checks, against two handles on one log (two gateways, or the same
/// memory log twice).
async fn resends_are_answered_not_applied(a: &Log, b: &Log) {
    let canvas = CanvasId::new("keyed").unwrap();
    let h = header();
    let k1 = key("alice", "op-1", WINDOW);
    assert_eq!(keyed_draw(a, &canvas, 3, &k1).await, Written::Applied(1));
    // The resend, through the other gateway and with other content: the
    // first operation's answer, nothing applied.
    let repeat = keyed_draw(b, &canvas, 4, &k1).await;
    assert_eq!(
        repeat,
        Written::Repeated {
            seq: 1,
            object: None
        }
    );
    assert_eq!(a.position(&canvas).await.unwrap().seq, 1, "no new event");
    let snapshot = b.snapshot(&canvas, 5, 16).await.unwrap();
    assert_eq!(snapshot.cells[3], 1);
    assert_eq!(snapshot.cells[4], 0, "the resend was not applied");
    assert_eq!(a.events(&canvas, 0, 10, 10).await.unwrap().len(), 1);

    // Keys are per user, and unkeyed operations are never repeats.
    let k2 = key("bob", "op-1", WINDOW);
    assert_eq!(keyed_draw(b, &canvas, 5, &k2).await, Written::Applied(2));
    let (event, change) = draw(&canvas, 6);
    let unkeyed = a.publish_keyed(&canvas, &h, &event, Some(&change), None);
    assert_eq!(unkeyed.await.unwrap(), Written::Applied(3));

    // A repeated create answers with the object the first one made.
    let k3 = key("alice", "create-1", WINDOW);
    let (event, change) = create(&canvas, "obj-first");
    let first = a.publish_keyed(&canvas, &h, &event, Some(&change), Some(&k3));
    assert_eq!(first.await.unwrap(), Written::Applied(4));
    let (event, change) = create(&canvas, "obj-second");
    let again = b.publish_keyed(&canvas, &h, &event, Some(&change), Some(&k3));
    assert_eq!(
        again.await.unwrap(),
        Written::Repeated {
            seq: 4,
            object: Some("obj-first".into())
        }
    );
    let (_, objects) = a.objects(&canvas, true).await.unwrap();
    assert_eq!(objects.len(), 1, "one object, not two");

    // After its window a key names a new operation.
    let short = key("alice", "op-short", Duration::from_millis(100));
    assert_eq!(keyed_draw(a, &canvas, 7, &short).await, Written::Applied(5));
    assert!(matches!(
        keyed_draw(b, &canvas, 7, &short).await,
        Written::Repeated { seq: 5, .. }
    ));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(keyed_draw(b, &canvas, 8, &short).await, Written::Applied(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_log_answers_a_resent_key_across_gateways() {
    let redis = RedisServer::start();
    let (a, b) = (redis_log(&redis).await, redis_log(&redis).await);
    resends_are_answered_not_applied(&a, &b).await;
}

#[tokio::test]
async fn memory_log_answers_a_resent_key() {
    let log = Arc::new(Log::memory(
        1000,
        Arc::new(|_: &CanvasId, _: &bytes::Bytes| {}),
    ));
    resends_are_answered_not_applied(&log, &log).await;
}
