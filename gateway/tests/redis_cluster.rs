//! Easel on a Redis Cluster (3 masters, 3 replicas): canvases spread over
//! the masters, events cross gateways over sharded pub/sub, and the
//! persister finds and stores every canvas's log whichever master holds it.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::*;
use std::collections::BTreeSet;
use std::time::Duration;
use testkit::ws::WsClient;
use testkit::{PostgresServer, RedisCluster};

/// Enough canvases that every master holds some.
const CANVASES: [&str; 6] = ["k-1", "k-2", "k-3", "k-4", "k-5", "k-6"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_and_a_persister_share_canvases_over_every_master() {
    let cluster = RedisCluster::start();
    let pg = PostgresServer::start();
    let url = Some(cluster.url());
    let a = gateway_with_db_at("kc-a", url.as_deref(), &pg, &[]).await;
    let b = gateway_with_db_at("kc-b", url.as_deref(), &pg, &[]).await;
    let persister = RunningPersister::start_at(&cluster.url(), &pg.url(), &[]).await;
    let masters: BTreeSet<usize> = CANVASES
        .iter()
        .map(|c| cluster.master_of(&format!("easel:{{c:{c}}}:meta")))
        .collect();
    assert_eq!(masters.len(), 3, "the canvases span every master");

    let mut writer = a.client("writer").await;
    let mut reader = b.client("reader").await;
    for (i, canvas) in CANVASES.iter().enumerate() {
        let id = i as u64 * 10;
        join_ok(&mut writer, id + 1, canvas, false).await;
        reader.send(&join(id + 2, canvas, false)).await;
        let start = expect_joined(&mut reader, id + 2).await;
        // A durable draw and an ephemeral cursor cross to the other gateway.
        writer.send(&draw(id + 3, canvas, 1, 1, 3)).await;
        expect_ack(&mut writer, id + 3).await;
        match reader.recv().await {
            ServerMessage::Draw(d) => assert_eq!(d.seq, Some(start.seq + 1), "{canvas}"),
            other => panic!("{canvas}: expected the draw, got {other:?}"),
        }
        writer.send(&cursor(None, canvas, 5.0, 6.0)).await;
        match reader.recv().await {
            ServerMessage::Cursor(c) => assert_eq!(c.canvas.as_str(), *canvas),
            other => panic!("{canvas}: expected the cursor, got {other:?}"),
        }
    }
    // The persister stores each canvas's draw, whichever master has it.
    for canvas in CANVASES {
        testkit::eventually(Duration::from_secs(15), canvas, || async {
            stored_events(&pg, canvas) == 1
        })
        .await;
    }
    persister.stop().await;
    a.stop().await;
    b.stop().await;
}

/// Waits (at most 10 s, skipping other messages) for a `resync` telling
/// the client its bus reconnected.
async fn expect_bus_resync(reader: &mut WsClient) {
    let resynced = async {
        loop {
            if let ServerMessage::Resync(r) = reader.recv().await {
                return r.reason;
            }
        }
    };
    let reason = tokio::time::timeout(Duration::from_secs(10), resynced)
        .await
        .expect("the reader is told to resync");
    assert_eq!(reason, ResyncReason::BusReconnected);
}

/// Draws one pixel; the seq it was acknowledged with, or `None` if the
/// write was refused (Redis unavailable or the replica missing: the client
/// may retry).
async fn try_draw(c: &mut WsClient, id: u64, canvas: &str) -> Option<u64> {
    c.send(&draw(id, canvas, (id % 100) as i64, 0, (id % 32) as i64))
        .await;
    loop {
        match c.recv().await {
            ServerMessage::Ack(a) if a.id == shared::RequestId::Num(id) => {
                return match a.result {
                    Some(AckResult::Published(p)) => Some(p.seq),
                    _ => None,
                };
            }
            ServerMessage::Error(e) if e.id == Some(shared::RequestId::Num(id)) => return None,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failing_over_mid_traffic_resyncs_members_and_loses_no_acked_write() {
    let cluster = RedisCluster::start();
    let pg = PostgresServer::start();
    // Acks wait for the replica: what was acknowledged survives the master
    // (and, while the promoted master has no replica, writes are refused).
    let flags = ["--durable-ack-replicas=1"];
    let a = gateway_with_db_at("kf-a", Some(&cluster.url()), &pg, &flags).await;
    let persister = RunningPersister::start_at(&cluster.url(), &pg.url(), &[]).await;
    let canvas = "fo";
    let mut writer = a.client("writer").await;
    join_ok(&mut writer, 1, canvas, false).await;
    let mut reader = a.client("reader").await;
    join_ok(&mut reader, 1, canvas, false).await;

    let mut acked = Vec::new();
    let mut id = 100;
    while acked.len() < 20 {
        id += 1;
        acked.extend(try_draw(&mut writer, id, canvas).await);
    }
    let master = cluster.master_of(&format!("easel:{{c:{canvas}}}:meta"));
    let failing = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.fail_over(master);
        cluster
    });
    // Keep writing through the failover until 20 more are acknowledged.
    let before = acked.len();
    while acked.len() < before + 20 {
        id += 1;
        acked.extend(try_draw(&mut writer, id, canvas).await);
    }
    let _cluster = failing.await.unwrap();

    // The reader was told to resync (its events may have been lost).
    expect_bus_resync(&mut reader).await;

    // No seq acknowledged twice, and every acknowledged one is stored.
    let unique: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(unique.len(), acked.len(), "a seq was reused: {acked:?}");
    // Writes the failover left unanswered may be stored too, so wait for
    // the acknowledged seqs themselves, not for a count.
    let stored_seqs = || {
        let stored = pg.psql(&format!(
            "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM events WHERE canvas_id = '{canvas}'"
        ));
        stored
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect::<BTreeSet<u64>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut lost: Vec<u64> = unique.difference(&stored_seqs()).copied().collect();
    while !lost.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lost = unique.difference(&stored_seqs()).copied().collect();
    }
    assert!(
        lost.is_empty(),
        "acked and lost: {lost:?} (acked {acked:?})"
    );
    persister.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_promoted_behind_postgres_is_rebuilt_not_written_over() {
    let cluster = RedisCluster::start();
    let pg = PostgresServer::start();
    let a = gateway_with_db_at("kb-a", Some(&cluster.url()), &pg, &[]).await;
    let persister = RunningPersister::start_at(&cluster.url(), &pg.url(), &[]).await;
    let canvas = "behind";
    let mut writer = a.client("writer").await;
    writer.send(&join(1, canvas, false)).await;
    let start = expect_joined(&mut writer, 1).await;
    let mut id = 10;
    let mut draw_until_acked = async |writer: &mut WsClient| loop {
        id += 1;
        if let Some(seq) = try_draw(writer, id, canvas).await {
            return seq;
        }
    };
    for _ in 0..5 {
        draw_until_acked(&mut writer).await;
    }
    // The replica stops following (frozen, its link cut: nothing the
    // master sends from now on reaches it): the next 5 reach the master
    // and Postgres only.
    let master = cluster.master_of(&format!("easel:{{c:{canvas}}}:meta"));
    let replica = cluster.replica_of(master);
    cluster.nodes()[replica].pause();
    cluster.nodes()[master].command(&["CLIENT", "KILL", "TYPE", "replica"]);
    let mut last = 0;
    for _ in 0..5 {
        last = draw_until_acked(&mut writer).await;
    }
    assert_eq!(last, start.seq + 10);
    testkit::eventually(Duration::from_secs(15), "10 stored", || async {
        stored_events(&pg, canvas) == 10
    })
    .await;
    // The master dies; the replica, 5 behind, is promoted.
    let failing = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.kill(master);
        cluster.nodes()[replica].resume();
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    });
    let _cluster = failing.await.unwrap();
    // The next write is not seq 6 again: the canvas was rebuilt from
    // Postgres on the new master first, under a new epoch.
    let next = draw_until_acked(&mut writer).await;
    assert_eq!(next, last + 1, "the promoted replica handed out a used seq");
    testkit::eventually(Duration::from_secs(15), "11 stored", || async {
        stored_events(&pg, canvas) == 11
    })
    .await;
    let mut late = a.client("late").await;
    late.send(&join(2, canvas, false)).await;
    let joined = expect_joined(&mut late, 2).await;
    assert_ne!(joined.epoch, start.epoch, "a rebuild starts a new epoch");
    persister.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canvas_whose_slot_moves_is_resubscribed_on_its_new_master() {
    let cluster = RedisCluster::start();
    let url = Some(cluster.url());
    let a = Gateway::start(settings_at("km-a", url.as_deref(), &[])).await;
    let b = Gateway::start(settings_at("km-b", url.as_deref(), &[])).await;
    ready(&a).await;
    ready(&b).await;
    let canvas = "moving";
    let mut writer = a.client("writer").await;
    join_ok(&mut writer, 1, canvas, false).await;
    let mut reader = b.client("reader").await;
    join_ok(&mut reader, 1, canvas, false).await;
    let key = format!("easel:{{c:{canvas}}}:meta");
    let from = cluster.master_of(&key);
    let to = (0..cluster.nodes().len())
        .find(|&i| {
            i != from
                && cluster.nodes()[i]
                    .info("replication")
                    .contains("role:master")
        })
        .unwrap();
    let moving = tokio::task::spawn_blocking(move || {
        cluster.move_slot(&key, to);
        cluster
    });
    let _cluster = moving.await.unwrap();
    // The old master dropped the reader's subscription: its gateway
    // subscribes again on the new one and has the reader resync.
    expect_bus_resync(&mut reader).await;
    // Draws reach the reader again, through the new master.
    let mut id = 10;
    let seq = loop {
        id += 1;
        if let Some(seq) = try_draw(&mut writer, id, canvas).await {
            break seq;
        }
    };
    loop {
        match reader.recv().await {
            ServerMessage::Draw(d) if d.seq == Some(seq) => break,
            ServerMessage::Draw(_) | ServerMessage::Resync(_) => {}
            other => panic!("expected the draw, got {other:?}"),
        }
    }
    a.stop().await;
    b.stop().await;
}
