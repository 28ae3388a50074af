//! The Redis bus against a real, private redis-server.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use fanout::{BusSettings, ConnControl, Fanout, JoinGate, Member, Outbound};
use shared::busframe::BusHeader;
use shared::codec::{self, Encoding};
use shared::protocol::{Author, ChatEvent, ResyncReason, ServerMessage};
use shared::{CanvasId, keys};
use std::sync::Arc;
use std::time::Duration;
use testkit::{RedisServer, eventually};
use tokio_util::sync::CancellationToken;
use tungstenite::Message;

/// The gateway's settings for `redis`: on a Redis Cluster
/// (`EASEL_TEST_REDIS=cluster`), sharded pub/sub over RESP3.
fn settings(redis: &RedisServer) -> BusSettings {
    let mut s = BusSettings::new(redis.url()).unwrap();
    s.health_interval = Duration::from_millis(200);
    s.subscribe_timeout = Duration::from_secs(2);
    s.publish_timeout = Duration::from_millis(500);
    if redis.is_cluster() {
        let client = redis::cluster::ClusterClientBuilder::new(vec![s.connection.clone()])
            .connection_timeout(s.subscribe_timeout)
            .response_timeout(s.subscribe_timeout)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .build()
            .unwrap();
        s.cluster = Some(client);
    }
    s
}

/// A pool for PUBLISH, as the gateway shares the store's.
fn pool(connection: &redis::ConnectionInfo) -> deadpool_redis::Pool {
    let manager = deadpool_redis::Manager::new(connection.clone()).unwrap();
    deadpool_redis::Pool::builder(manager)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .unwrap()
}

/// A node's fan-out on `s`.
async fn bus(node: &str, s: &BusSettings, shutdown: &CancellationToken) -> Fanout {
    let publisher = match &s.cluster {
        Some(client) => fanout::Publisher::Cluster(client.get_async_connection().await.unwrap()),
        None => fanout::Publisher::Single(pool(&s.connection)),
    };
    Fanout::redis(node, s, publisher, shutdown.clone())
        .await
        .unwrap()
}

fn member(conn: u64) -> (Member, Arc<Outbound>) {
    member_with_queue(conn, 64)
}

fn member_with_queue(conn: u64, queue: usize) -> (Member, Arc<Outbound>) {
    let tx = Arc::new(Outbound::new(queue));
    let rx = tx.clone();
    (
        Member {
            conn,
            encoding: Encoding::Json,
            echo: false,
            tx,
            control: Arc::new(ConnControl::new()),
            gate: JoinGate::open(),
            gm: false,
            signals_only: false,
        },
        rx,
    )
}

fn chat(canvas: &CanvasId, text: &str) -> ServerMessage {
    ServerMessage::Chat(ChatEvent {
        canvas: canvas.clone(),
        seq: None,
        author: Author {
            id: "u".into(),
            name: None,
        },
        ts: 0,
        text: text.into(),
    })
}

fn header(node: &str, conn: u64) -> BusHeader {
    BusHeader {
        node: node.into(),
        conn,
        ingest_us: shared::now_us(),
        gm_only: false,
        control: false,
    }
}

async fn next_message(rx: &Arc<Outbound>) -> ServerMessage {
    let (frame, _ingest_us) = tokio::time::timeout(Duration::from_secs(5), rx.take())
        .await
        .expect("no frame within 5 s");
    let Message::Text(text) = frame else {
        panic!("expected a text frame, got {frame:?}")
    };
    codec::decode_server(Encoding::Json, text.as_bytes()).unwrap()
}

/// How many subscribers `canvas`'s channel has (on a cluster, its shard
/// channel on the master serving it).
async fn numsub(redis: &RedisServer, canvas: &CanvasId) -> i64 {
    let channel = keys::canvas_channel(canvas);
    if redis.is_cluster() {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
        let client = redis::cluster::ClusterClient::new(vec![redis.url()]).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("SHARDNUMSUB").arg(&channel);
        let route = Route::with_slot(Slot::for_key(&channel), SlotAddr::Master);
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
        let reply = conn.route_command(cmd, routing).await.unwrap();
        let (_, n): (String, i64) = redis::from_redis_value(reply).unwrap();
        return n;
    }
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn events_cross_nodes_once_and_not_back_to_their_sender() {
    let redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let a = bus("node-a", &settings(&redis), &shutdown).await;
    let b = bus("node-b", &settings(&redis), &shutdown).await;
    let canvas = CanvasId::new("shared").unwrap();
    let (sender, sender_rx) = member(1);
    let (receiver, receiver_rx) = member(1);
    a.join(&canvas, sender).await.unwrap();
    b.join(&canvas, receiver).await.unwrap();

    for i in 0..50 {
        a.publish(
            &canvas,
            &header("node-a", 1),
            &chat(&canvas, &i.to_string()),
        )
        .await
        .unwrap();
    }
    for i in 0..50 {
        match next_message(&receiver_rx).await {
            ServerMessage::Chat(c) => assert_eq!(c.text, i.to_string(), "out of order"),
            other => panic!("unexpected {other:?}"),
        }
    }
    // A marker from b proves a's member would have seen its own events by now.
    b.publish(&canvas, &header("node-b", 7), &chat(&canvas, "marker"))
        .await
        .unwrap();
    match next_message(&sender_rx).await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "marker", "sender got its own event"),
        other => panic!("unexpected {other:?}"),
    }
    match next_message(&receiver_rx).await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "marker", "duplicate delivery"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(receiver_rx.try_take().is_none(), "duplicate delivery");
    shutdown.cancel();
}

#[tokio::test]
async fn last_leave_unsubscribes_the_node() {
    let redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let a = bus("node-a", &settings(&redis), &shutdown).await;
    let canvas = CanvasId::new("c1").unwrap();
    let (m1, _rx1) = member(1);
    let (m2, _rx2) = member(2);
    a.join(&canvas, m1).await.unwrap();
    a.join(&canvas, m2).await.unwrap();
    assert_eq!(
        numsub(&redis, &canvas).await,
        1,
        "one subscription per node"
    );
    assert!(a.leave(&canvas, 1));
    assert_eq!(numsub(&redis, &canvas).await, 1);
    assert!(a.leave(&canvas, 2));
    eventually(Duration::from_secs(5), "unsubscribed", || async {
        numsub(&redis, &canvas).await == 0
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn a_redis_restart_resubscribes_and_tells_members_to_resync() {
    let mut redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let a = bus("node-a", &settings(&redis), &shutdown).await;
    let b = bus("node-b", &settings(&redis), &shutdown).await;
    let canvas = CanvasId::new("c2").unwrap();
    let (m, rx) = member(1);
    b.join(&canvas, m).await.unwrap();

    redis.kill();
    eventually(
        Duration::from_secs(5),
        "b notices the lost connection",
        || async { !b.is_connected() },
    )
    .await;
    assert!(
        a.publish(&canvas, &header("node-a", 1), &chat(&canvas, "lost"))
            .await
            .is_err(),
        "publishing to a dead redis must fail, not pretend"
    );
    redis.restart();

    match next_message(&rx).await {
        ServerMessage::Resync(r) => {
            assert_eq!(r.canvas, canvas);
            assert_eq!(r.reason, ResyncReason::BusReconnected);
        }
        other => panic!("expected resync, got {other:?}"),
    }
    assert_eq!(
        b.hub()
            .stats()
            .bus_reconnects
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    eventually(Duration::from_secs(5), "resubscribed", || async {
        numsub(&redis, &canvas).await == 1
    })
    .await;
    // The publish pool recovers too.
    let mut delivered = false;
    for _ in 0..50 {
        if a.publish(&canvas, &header("node-a", 1), &chat(&canvas, "back"))
            .await
            .is_ok()
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "publish never recovered");
    match next_message(&rx).await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "back"),
        other => panic!("unexpected {other:?}"),
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_join_while_redis_is_down_fails_and_leaves_no_member() {
    let mut redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let a = bus("node-a", &settings(&redis), &shutdown).await;
    redis.kill();
    eventually(Duration::from_secs(5), "disconnected", || async {
        !a.is_connected()
    })
    .await;
    let canvas = CanvasId::new("c3").unwrap();
    let (m, _rx) = member(1);
    assert!(a.join(&canvas, m).await.is_err());
    assert_eq!(a.hub().member_count(&canvas), 0);
    shutdown.cancel();
}

#[tokio::test]
async fn startup_fails_clearly_without_redis() {
    let port = testkit::free_port();
    let mut s = BusSettings::new(format!("redis://127.0.0.1:{port}")).unwrap();
    s.subscribe_timeout = Duration::from_millis(500);
    let err = Fanout::redis(
        "n",
        &s,
        fanout::Publisher::Single(pool(&s.connection)),
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("must fail");
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn a_healthy_connection_is_pinged_but_never_reconnected() {
    let redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let mut s = settings(&redis);
    s.health_interval = Duration::from_millis(20);
    let a = bus("node-a", &s, &shutdown).await;
    let canvas = CanvasId::new("steady").unwrap();
    let (m, rx) = member(1);
    a.join(&canvas, m).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "ten health pings answered",
        || async {
            a.hub()
                .stats()
                .bus_pings
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 10
        },
    )
    .await;
    assert_eq!(
        a.hub()
            .stats()
            .bus_reconnects
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(
        rx.try_take().is_none(),
        "a healthy member was told to resync"
    );
    shutdown.cancel();
}
