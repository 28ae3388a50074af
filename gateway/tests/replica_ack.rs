//! `EASEL_DURABLE_ACK_REPLICAS`: a durable write is acked only once a Redis
//! replica has it; a replica that does not confirm in time turns the ack
//! into E012 "may or may not have been applied", and the resend under the
//! same key is answered once the replica has it, applied once.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::*;
use shared::{CanvasId, ErrorCode, RequestId, keys};
use testkit::{RedisCluster, RedisServer};

/// The reply to request `id` (events in between are skipped).
async fn reply(c: &mut testkit::WsClient, id: u64) -> Result<u64, ErrorReply> {
    loop {
        match c.recv().await {
            ServerMessage::Ack(a) if a.id == RequestId::Num(id) => match a.result {
                Some(AckResult::Published(p)) => return Ok(p.seq),
                other => panic!("unexpected ack {other:?}"),
            },
            ServerMessage::Error(e) if e.id == Some(RequestId::Num(id)) => return Err(e),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_wait_for_a_replica_and_a_silent_one_means_resend() {
    if testkit::cluster_mode() {
        // The replica of the master serving the canvas's slot.
        let cluster = RedisCluster::start();
        let master = cluster.master_of(&keys::canvas_meta(&CanvasId::new("r").unwrap()));
        let replica = &cluster.nodes()[cluster.replica_of(master)];
        silent_replica(&cluster.url(), replica).await;
    } else {
        let primary = RedisServer::start();
        let replica = RedisServer::start_replica_of(&primary);
        silent_replica(&primary.url(), &replica).await;
    }
}

/// The scenario on the Redis at `url`, whose `replica` holds canvas "r".
async fn silent_replica(url: &str, replica: &RedisServer) {
    let flags = ["--durable-ack-replicas=1"];
    let g = Gateway::start(settings_at("a", Some(url), &flags)).await;
    let mut c = g.client("alice").await;
    join_ok(&mut c, 1, "r", false).await;
    c.send(&keyed_draw(2, "r", 1, "first")).await;
    assert_eq!(reply(&mut c, 2).await.unwrap(), 1);

    // The replica stops confirming: the write is applied on the primary,
    // but its ack cannot promise it survives a failover.
    replica.pause();
    c.send(&keyed_draw(3, "r", 2, "second")).await;
    let err = reply(&mut c, 3).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains("same key"), "{}", err.message);
    replica.resume();

    // Resent under its key: the first application's seq, once confirmed.
    c.send(&keyed_draw(4, "r", 2, "second")).await;
    assert_eq!(reply(&mut c, 4).await.unwrap(), 2);
    c.send(&keyed_draw(5, "r", 3, "third")).await;
    assert_eq!(reply(&mut c, 5).await.unwrap(), 3, "nothing applied twice");
    let metrics = testkit::http::scrape(g.admin).await;
    let unknown = testkit::http::sample(&metrics, "easel_gateway_durable_writes_unknown_total");
    assert_eq!(unknown, Some(1.0));
    g.stop().await;
}
