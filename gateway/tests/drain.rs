//! Graceful drain of a real gateway process: SIGTERM turns it unready at
//! once, it serves on for the drain delay, then closes every client with
//! 1012 at moments spread over the drain window and exits within the grace
//! period; the clients resume on the other gateway without losing an acked
//! event.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::protocol::{AckResult, ServerMessage};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use testkit::RedisServer;
use testkit::ws::{Connect, WsClient};

const DELAY: Duration = Duration::from_millis(800);
const WINDOW: Duration = Duration::from_millis(2_500);
const GRACE_SECS: u64 = 6;
const CLIENTS: usize = 12;

async fn readyz(admin: SocketAddr) -> Option<u16> {
    tokio::time::timeout(
        Duration::from_secs(2),
        testkit::http::status(admin, "/readyz"),
    )
    .await
    .ok()
    .flatten()
}

/// A client of the draining gateway: the canvas position it joined at, and
/// the events it applied.
struct Member {
    client: WsClient,
    user: String,
    epoch: String,
    last: u64,
}

impl Member {
    async fn join(addr: SocketAddr, user: &str) -> Member {
        let mut client = WsClient::connect_ok(addr, Connect::token(&token(user)))
            .await
            .0;
        client.send(&join(1, "drain", false)).await;
        let joined = expect_joined(&mut client, 1).await;
        Member {
            client,
            user: user.to_owned(),
            epoch: joined.epoch,
            last: joined.seq,
        }
    }

    /// Applies a draw, which must be the next sequence number.
    fn apply(&mut self, msg: &ServerMessage) {
        match msg {
            ServerMessage::Draw(d) => {
                let seq = d.seq.unwrap();
                assert_eq!(seq, self.last + 1, "{}: gap or duplicate", self.user);
                self.last = seq;
            }
            other => panic!("{}: unexpected {other:?}", self.user),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_spread_out_and_clients_resume_elsewhere() {
    let redis = RedisServer::start();
    let b = Gateway::start(settings("drain-b", Some(&redis), &[])).await;

    let port = testkit::free_port();
    let admin_port = testkit::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("EASEL_NODE_ID", "drain-a")
        .env("EASEL_JWT_SECRET", SECRET)
        .env("EASEL_REDIS_URL", redis.url())
        .env("EASEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("EASEL_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("EASEL_DRAIN_DELAY_MS", DELAY.as_millis().to_string())
        .env("EASEL_DRAIN_WINDOW_MS", WINDOW.as_millis().to_string())
        .env("EASEL_SHUTDOWN_GRACE_SECS", GRACE_SECS.to_string())
        // As the in-process gateway: no presence events among the draws.
        .env("EASEL_PRESENCE_EVENTS_MAX", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let a_admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    testkit::eventually(Duration::from_secs(15), "gateway A ready", || async {
        readyz(a_admin).await == Some(200)
    })
    .await;

    let mut members = Vec::new();
    for i in 0..CLIENTS {
        members.push(Member::join(a, &format!("m{i}")).await);
    }

    // A writer on B draws without pause until told to stop; `acked` is the
    // last sequence number it was acked.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = b.client("writer").await;
    join_ok(&mut writer, 1, "drain", false).await;
    let writing = tokio::spawn({
        let (acked, stop) = (acked.clone(), stop.clone());
        async move {
            let mut id = 100;
            while !stop.load(Ordering::Relaxed) {
                writer
                    .send(&draw(id, "drain", (id % 100) as i64, 0, (id % 32) as i64))
                    .await;
                match expect_ack(&mut writer, id).await {
                    Some(AckResult::Published(p)) => acked.store(p.seq, Ordering::Relaxed),
                    other => panic!("draw not acked with a seq: {other:?}"),
                }
                id += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    testkit::eventually(Duration::from_secs(10), "events flowing", || async {
        acked.load(Ordering::Relaxed) >= 20
    })
    .await;

    // Every member reads until its close frame, noting when it came.
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut m| {
            tokio::spawn(async move {
                let closed = m.client.closed().await;
                let at = Instant::now();
                for msg in &closed.before {
                    m.apply(msg);
                }
                (m, closed.code, at)
            })
        })
        .collect();

    let sigterm = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    testkit::eventually(Duration::from_secs(2), "A unready", || async {
        readyz(a_admin).await == Some(503)
    })
    .await;
    let unready = Instant::now();
    assert!(
        unready - sigterm < DELAY,
        "readiness flipped after the delay"
    );
    // Still serving during the delay: a late client connects and joins.
    let late = Member::join(a, "late").await;
    let late_reader = tokio::spawn(async move {
        let mut m = late;
        let closed = m.client.closed().await;
        let at = Instant::now();
        for msg in &closed.before {
            m.apply(msg);
        }
        (m, closed.code, at)
    });

    let mut drained = Vec::new();
    for r in readers.into_iter().chain([late_reader]) {
        drained.push(r.await.unwrap());
    }
    let mut times = Vec::new();
    for (m, code, at) in &drained {
        assert_eq!(*code, Some(1012), "{}", m.user);
        let after = *at - sigterm;
        assert!(after >= DELAY, "{} closed {after:?} after SIGTERM", m.user);
        assert!(
            after < DELAY + WINDOW + Duration::from_secs(1),
            "{} closed {after:?} after SIGTERM",
            m.user
        );
        times.push(after);
    }
    // Spread out: 13 uniform draws span less than a third of the window
    // with a probability near 1e-5.
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    assert!(
        last - first > WINDOW / 3,
        "closes not spread: {first:?}..{last:?}"
    );
    assert!(unready < sigterm + first, "readiness flipped after a close");

    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sigterm.elapsed() < Duration::from_secs(GRACE_SECS + 1),
            "gateway did not exit within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit}");

    // Every member resumes on B from what it applied, and ends with every
    // acked event, in order, none twice.
    let mut resumed = Vec::new();
    for (mut m, _, _) in drained {
        m.client = WsClient::connect_ok(b.addr, Connect::token(&token(&m.user)))
            .await
            .0;
        m.client.send(&resume(2, "drain", m.last, &m.epoch)).await;
        let joined = expect_joined(&mut m.client, 2).await;
        assert_eq!(
            joined.resume,
            Some(shared::protocol::ResumeOutcome::Replayed),
            "{}",
            m.user
        );
        resumed.push(m);
    }
    stop.store(true, Ordering::Relaxed);
    writing.await.unwrap();
    let fin = acked.load(Ordering::Relaxed);
    for mut m in resumed {
        while m.last < fin {
            let msg = m.client.recv().await;
            m.apply(&msg);
        }
        assert_eq!(m.last, fin, "{}", m.user);
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_does_not_hold_the_exit_past_the_grace() {
    let redis = RedisServer::start();
    let flags = ["--shutdown-grace-secs=2", "--presence-sweep-ms=100"];
    let g = Gateway::start(settings("drain-stall", Some(&redis), &flags)).await;
    ready(&g).await;
    // Many canvases (8 per connection at most): a presence sweep calls
    // Redis once for each.
    let mut clients = Vec::new();
    for n in 0..5 {
        let mut c = g.client(&format!("many-{n}")).await;
        for i in 0..8 {
            join_ok(&mut c, i + 1, &format!("stall-{n}-{i}"), false).await;
        }
        clients.push(c);
    }
    // Redis stops answering: every call now waits out its timeout, so a
    // sweep takes 80 s; the stop must not wait for one.
    redis.pause();
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), g.stop())
        .await
        .expect("the gateway stops");
    let took = stopping.elapsed();
    redis.resume();
    assert!(took < Duration::from_secs(8), "stopping took {took:?}");
}
