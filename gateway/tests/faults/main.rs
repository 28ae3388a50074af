//! The fault suite (`make test-faults`): each case runs a steady writer
//! (chat with operation keys, resent until acked) through real gateways on
//! private Redis and PostgreSQL processes with a persister, injects one
//! fault, and checks in Postgres that every acked write is stored exactly
//! once under the seq its ack named, with losses only within the window
//! docs/OPERATIONS.md ("Durability") documents for the Redis setting. Each
//! case writes its row of the report under target/tmp/faults/.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod check;
#[path = "../common/mod.rs"]
mod common;
mod proxy;
mod writer;

use common::*;
use std::time::{Duration, Instant};
use testkit::{PostgresServer, RedisServer, eventually};
use writer::Writer;

/// Writes per second.
const RATE: f64 = 40.0;
/// The persister's lag on this machine is far below this: a write acked
/// this long before a Redis crash has been persisted.
const LAG_WINDOW: Duration = Duration::from_secs(2);

/// One gateway with a database and a persister on `redis`, and the writer
/// writing through the gateway.
struct Steady {
    redis: RedisServer,
    pg: PostgresServer,
    gateway: Gateway,
    persister: RunningPersister,
    writer: Writer,
}

impl Steady {
    async fn start(case: &str, redis: RedisServer, persister_flags: &[&str]) -> Steady {
        let pg = PostgresServer::start();
        let gateway = gateway_with_db("a", Some(&redis), &pg, &[]).await;
        let persister = RunningPersister::start(&redis, &pg, persister_flags).await;
        let writer = Writer::start(vec![gateway.addr], case, RATE);
        Steady {
            redis,
            pg,
            gateway,
            persister,
            writer,
        }
    }

    /// Stops the writer, checks and reports; `crash`: when Redis lost data.
    async fn finish(self, case: &str, crash: Option<Instant>) {
        let written = self.writer.finish().await;
        let window = crash.map(|at| (at, LAG_WINDOW));
        let o = check::outcome(&self.pg, case, &written, window).await;
        check::report(case, &o, &written);
        self.persister.stop().await;
        self.gateway.stop().await;
        drop(self.redis);
    }
}

/// Writes for `secs`.
async fn run_for(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

/// Redis killed and restarted (per `redis_args`, and `between`, run on
/// the stopped server's files, e.g. cutting an AOF's tail).
async fn redis_crash(case: &str, redis_args: &[&str], between: impl FnOnce(&RedisServer)) {
    let mut run = Steady::start(case, RedisServer::start_with(redis_args), &[]).await;
    run_for(3.0).await;
    run.redis.kill();
    // The crash is over once every node is dead: on a cluster the nodes are
    // killed one after another, and a write acked by one still alive after
    // the first died may be lost with it (it is within the window of this
    // moment, not of the first kill).
    let crash = Instant::now();
    between(&run.redis);
    run.redis.restart();
    run_for(3.0).await;
    run.finish(case, Some(crash)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_without_persistence() {
    redis_crash("redis_no_persistence", &[], |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_back_from_an_old_rdb_snapshot() {
    // A snapshot taken a second and a half before the crash, as a `save`
    // rule would.
    let case = "redis_old_rdb";
    let mut run = Steady::start(case, RedisServer::start(), &[]).await;
    run_for(1.5).await;
    for out in run.redis.command_everywhere(&["SAVE"]) {
        assert_eq!(out.trim(), "OK");
    }
    run_for(1.5).await;
    run.redis.kill();
    // When every node is dead (see `redis_crash`).
    let crash = Instant::now();
    run.redis.restart();
    run_for(3.0).await;
    run.finish(case, Some(crash)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_aof_everysec_after_a_host_crash() {
    // A host crash loses what the AOF had not fsynced: cut its tail.
    let args = ["--appendonly", "yes", "--appendfsync", "everysec"];
    redis_crash("redis_aof_everysec_crash", &args, |redis| {
        let dir = redis.dir().join("appendonlydir");
        let incr = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .expect("an incremental AOF file");
        let len = std::fs::metadata(&incr).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&incr).unwrap();
        file.set_len(len * 3 / 4).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_by_sigstop() {
    let case = "redis_sigstop";
    let run = Steady::start(case, RedisServer::start(), &[]).await;
    run_for(1.5).await;
    run.redis.pause();
    run_for(3.0).await;
    run.redis.resume();
    run_for(2.0).await;
    run.finish(case, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_while() {
    let case = "postgres_down";
    let mut run = Steady::start(case, RedisServer::start(), &[]).await;
    run_for(1.5).await;
    run.pg.kill();
    run_for(3.0).await;
    run.pg.restart();
    run_for(2.0).await;
    run.finish(case, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persister_killed_and_replaced() {
    let case = "persister_killed";
    let run = Steady::start(case, RedisServer::start(), &["--consumer=p1"]).await;
    run_for(1.5).await;
    let Steady {
        redis,
        pg,
        gateway,
        persister,
        writer,
    } = run;
    persister.kill().await;
    run_for(2.0).await;
    // Its successor takes over its pending entries (same consumer name).
    let persister = RunningPersister::start(&redis, &pg, &["--consumer=p1"]).await;
    run_for(2.0).await;
    let run = Steady {
        redis,
        pg,
        gateway,
        persister,
        writer,
    };
    run.finish(case, None).await;
}

/// A gateway process the writer starts on, killed (`freeze`: frozen
/// with SIGSTOP for 4 s instead); the writer moves to an in-process one.
async fn gateway_fault(case: &str, freeze: bool) {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let other = gateway_with_db("b", Some(&redis), &pg, &[]).await;
    let port = testkit::free_port();
    let (mut child, addr) = spawn_gateway_process("victim", &redis, port);
    eventually(Duration::from_secs(15), "the victim gateway up", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    let persister = RunningPersister::start(&redis, &pg, &[]).await;
    let w = Writer::start(vec![addr, other.addr], case, RATE);
    run_for(1.5).await;
    if freeze {
        signal(child.id(), "-STOP");
        run_for(4.0).await;
        signal(child.id(), "-CONT");
    } else {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    run_for(2.0).await;
    let written = w.finish().await;
    let o = check::outcome(&pg, case, &written, None).await;
    check::report(case, &o, &written);
    let _ = child.kill();
    let _ = child.wait();
    persister.stop().await;
    other.stop().await;
}

fn signal(pid: u32, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed() {
    gateway_fault("gateway_killed", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_frozen_by_sigstop() {
    gateway_fault("gateway_sigstop", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_cut_off_from_redis() {
    let case = "gateway_partitioned";
    // One server: a proxy fronts one port, and a cluster's clients reach
    // its nodes at the addresses the nodes announce, around the proxy.
    let redis = RedisServer::start_single(&[]);
    let pg = PostgresServer::start();
    let upstream = format!("127.0.0.1:{}", redis.port()).parse().unwrap();
    let proxy = proxy::Proxy::start(upstream).await;
    let via_proxy = format!("--redis-url=redis://{}", proxy.addr);
    let g = gateway_with_db("a", None, &pg, &[&via_proxy]).await;
    let persister = RunningPersister::start(&redis, &pg, &[]).await;
    let w = Writer::start(vec![g.addr], case, RATE);
    run_for(1.5).await;
    proxy.cut();
    run_for(3.0).await;
    proxy.restore();
    run_for(3.0).await;
    let written = w.finish().await;
    let o = check::outcome(&pg, case, &written, None).await;
    check::report(case, &o, &written);
    persister.stop().await;
    g.stop().await;
}
