//! The persister against private Redis and Postgres processes.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use shared::busframe::BusHeader;
use shared::protocol::{Author, DrawEvent, Pixel, ServerMessage};
use shared::{CanvasId, keys};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use store::{Change, Log, LogSettings, PixelChange, RedisPool, StoreError};
use testkit::{PostgresServer, RedisServer, eventually};
use tokio_util::sync::CancellationToken;

fn draw_event(canvas: &CanvasId, x: u32) -> ServerMessage {
    ServerMessage::Draw(DrawEvent {
        canvas: canvas.clone(),
        seq: None,
        author: Author {
            id: "tester".into(),
            name: None,
        },
        ts: 0,
        pixels: vec![Pixel {
            x,
            y: 0,
            color: (x % 32) as u8,
        }],
    })
}

async fn publisher(redis: &str, backlog_limit: usize) -> Arc<Log> {
    let pool = RedisPool::connect(redis, 4, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let settings = LogSettings {
        log_max_events: 100_000,
        backlog_limit,
        ack_replicas: 0,
    };
    Arc::new(Log::redis(pool, settings, None))
}

/// Publishes `n` durable events on `canvas`; returns the acked seqs.
async fn publish(f: &Log, canvas: &CanvasId, n: u32) -> Vec<u64> {
    let header = BusHeader {
        node: "test-node".into(),
        conn: 1,
        ingest_us: shared::now_us(),
        gm_only: false,
        control: false,
    };
    let mut seqs = Vec::new();
    for i in 0..n {
        let x = i % 64;
        let change = Change::Pixels(PixelChange {
            bits: 5,
            cell_count: 64,
            cells: vec![(x, (x % 32) as u8)],
        });
        seqs.push(
            f.publish_durable(canvas, &header, &draw_event(canvas, x), Some(&change))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    seqs
}

fn count(pg: &PostgresServer, canvas: &str) -> u64 {
    let exists = pg.psql("SELECT to_regclass('easel.events') IS NOT NULL");
    if exists != "t" {
        return 0;
    }
    pg.psql(&format!(
        "SELECT count(*) FROM events WHERE canvas_id = '{canvas}'"
    ))
    .parse()
    .unwrap()
}

/// The stored seqs of a canvas, in order.
fn stored_seqs(pg: &PostgresServer, canvas: &str) -> Vec<u64> {
    pg.psql(&format!(
        "SELECT seq FROM events WHERE canvas_id = '{canvas}' ORDER BY seq"
    ))
    .lines()
    .map(|l| l.parse().unwrap())
    .collect()
}

fn args(redis: &str, pg: &PostgresServer, consumer: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "persister".to_owned(),
        format!("--redis-url={redis}"),
        format!("--database-url={}", pg.url()),
        format!("--consumer={consumer}"),
        "--discover-interval-ms=100".to_owned(),
        "--block-ms=100".to_owned(),
        "--batch-size=200".to_owned(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Runs the persister in this process.
async fn start_in_process(
    redis: &str,
    pg: &PostgresServer,
    consumer: &str,
    extra: &[&str],
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let (stop, handle, _) = start_with_admin(redis, pg, consumer, extra).await;
    (stop, handle)
}

/// [`start_in_process`], also returning the admin address.
async fn start_with_admin(
    redis: &str,
    pg: &PostgresServer,
    consumer: &str,
    extra: &[&str],
) -> (
    CancellationToken,
    tokio::task::JoinHandle<()>,
    std::net::SocketAddr,
) {
    use clap::Parser;
    let settings = persister::Config::try_parse_from(args(redis, pg, consumer, extra))
        .unwrap()
        .into_settings()
        .unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move { persister::run(settings, admin, token).await.unwrap() });
    (shutdown, handle, admin_addr)
}

/// Runs the persister binary (so it can be killed with SIGKILL).
fn start_process(redis: &str, pg: &PostgresServer, consumer: &str, extra: &[&str]) -> Child {
    let a = args(redis, pg, consumer, extra);
    Command::new(env!("CARGO_BIN_EXE_persister"))
        .args(&a[1..])
        .arg(format!("--admin-listen=127.0.0.1:{}", testkit::free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_persisted_once_and_the_stream_trimmed_below_it() {
    let redis = RedisServer::start();
    persisted_once_and_trimmed(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_persisted_once_and_the_stream_trimmed_below_it_on_a_redis_cluster() {
    let cluster = testkit::RedisCluster::start();
    persisted_once_and_trimmed(&cluster.url()).await;
}

async fn persisted_once_and_trimmed(url: &str) {
    let pg = PostgresServer::start();
    let f = publisher(url, 0).await;
    let canvases: Vec<CanvasId> = ["a", "b", "c"]
        .iter()
        .map(|c| CanvasId::new(c).unwrap())
        .collect();
    for c in &canvases {
        publish(&f, c, 300).await;
    }
    let (stop, handle) = start_in_process(
        url,
        &pg,
        "p1",
        &["--keep-events=50", "--snapshot-every=100"],
    )
    .await;
    for c in &canvases {
        eventually(Duration::from_secs(30), "all events persisted", || async {
            count(&pg, c.as_str()) == 300
        })
        .await;
        assert_eq!(
            stored_seqs(&pg, c.as_str()),
            (1..=300).collect::<Vec<u64>>()
        );
    }
    // The mark reaches the head; the stream keeps about `keep` events.
    let mut conn = connect(url).await;
    for c in &canvases {
        eventually(
            Duration::from_secs(10),
            "persisted mark at the head",
            || {
                let mut conn = conn.clone();
                let c = c.clone();
                async move {
                    let p: Option<u64> = redis::cmd("HGET")
                        .arg(keys::canvas_meta(&c))
                        .arg("persisted")
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    p == Some(300)
                }
            },
        )
        .await;
        let len: u64 = redis::cmd("XLEN")
            .arg(keys::canvas_log(c))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((50..300).contains(&len), "stream holds {len} entries");
    }
    // A snapshot was stored with the state Redis holds.
    let snap_seq: u64 = pg
        .psql("SELECT seq FROM canvas_snapshots WHERE canvas_id = 'a'")
        .parse()
        .unwrap();
    assert!(snap_seq >= 100);
    // Stored payloads decode back to the events.
    let kinds = pg.psql("SELECT DISTINCT kind FROM events");
    assert_eq!(kinds, "draw");
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_and_exits_and_a_successor_loses_nothing() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let f = publisher(&redis.url(), 0).await;
    let canvas = CanvasId::new("term").unwrap();
    let mut p = start_process(&redis.url(), &pg, "first", &[]);
    let writer = {
        let f = f.clone();
        let canvas = canvas.clone();
        tokio::spawn(async move { publish(&f, &canvas, 2000).await })
    };
    eventually(Duration::from_secs(30), "persisting has begun", || async {
        count(&pg, "term") > 100
    })
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &p.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = p.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "persister did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit}");
    let acked = writer.await.unwrap();
    // Another replica (another consumer) claims what the first left pending.
    let (stop, handle) =
        start_in_process(&redis.url(), &pg, "second", &["--claim-idle-ms=200"]).await;
    eventually(
        Duration::from_secs(60),
        "every acked event persisted",
        || async { count(&pg, "term") == acked.len() as u64 },
    )
    .await;
    assert_eq!(stored_seqs(&pg, "term"), acked);
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_persister_loses_and_duplicates_nothing() {
    let redis = RedisServer::start();
    killed_persister_scenario(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_persister_loses_and_duplicates_nothing_on_a_redis_cluster() {
    let cluster = testkit::RedisCluster::start();
    killed_persister_scenario(&cluster.url()).await;
}

async fn killed_persister_scenario(url: &str) {
    let pg = PostgresServer::start();
    let f = publisher(url, 0).await;
    let canvas = CanvasId::new("burst").unwrap();
    let mut p = start_process(url, &pg, "solo", &[]);
    let writer = {
        let f = f.clone();
        let canvas = canvas.clone();
        tokio::spawn(async move { publish(&f, &canvas, 3000).await })
    };
    eventually(Duration::from_secs(30), "persisting has begun", || async {
        count(&pg, "burst") > 100
    })
    .await;
    kill9(&mut p);
    let acked = writer.await.unwrap();
    // Same consumer name: it reads its own pending entries first.
    let mut p = start_process(url, &pg, "solo", &[]);
    eventually(
        Duration::from_secs(60),
        "every acked event persisted",
        || async { count(&pg, "burst") == acked.len() as u64 },
    )
    .await;
    assert_eq!(stored_seqs(&pg, "burst"), acked);
    kill9(&mut p);
}

/// A connection to the single server or the cluster at `url`.
async fn connect(url: &str) -> store::managed::Managed {
    let client = redis::Client::open(url).unwrap();
    store::managed::connect(&client, None, Duration::from_secs(5))
        .await
        .unwrap()
}

/// Entries of `canvas` delivered to `consumer` and not acknowledged.
async fn pending_for(redis: &str, canvas: &CanvasId, consumer: &str) -> u64 {
    let mut conn = connect(redis).await;
    let entries: redis::RedisResult<Vec<redis::Value>> = redis::cmd("XPENDING")
        .arg(keys::canvas_log(canvas))
        .arg(persister::GROUP)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .arg(consumer)
        .query_async(&mut conn)
        .await;
    entries.map(|e| e.len() as u64).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_replica_claims_the_dead_ones_work() {
    let redis = RedisServer::start();
    claim_scenario(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_replica_claims_the_dead_ones_work_on_a_redis_cluster() {
    let cluster = testkit::RedisCluster::start();
    claim_scenario(&cluster.url()).await;
}

async fn claim_scenario(url: &str) {
    let mut pg = PostgresServer::start();
    let f = publisher(url, 0).await;
    let canvases: Vec<CanvasId> = (0..4)
        .map(|i| CanvasId::new(&format!("c{i}")).unwrap())
        .collect();
    // "two" starts only once "one" is dead: alive, it could claim the
    // batch "one" holds while Postgres is down (both retry their commits)
    // and leave "one" holding nothing, so the test would race the claim it
    // sets out to check.
    let mut one = start_process(url, &pg, "one", &["--claim-idle-ms=1000"]);
    let mut writers = Vec::new();
    for c in &canvases {
        let f = f.clone();
        let c = c.clone();
        writers.push(tokio::spawn(async move { publish(&f, &c, 800).await }));
    }
    eventually(
        Duration::from_secs(30),
        "the first replica at work",
        || async { count(&pg, "c0") > 50 },
    )
    .await;
    // With Postgres down, the replica holds a batch it read but cannot
    // commit. Kill it while it provably holds one: only a claim by
    // "two" can get those entries into Postgres.
    pg.kill();
    // Writes go on after Postgres is gone (on a slow machine the first
    // ones may all be stored already), so the replica reads entries it
    // cannot commit.
    let mut acked: Vec<Vec<u64>> = Vec::new();
    for w in writers {
        acked.push(w.await.unwrap());
    }
    for round in 0.. {
        let mut n = 0;
        for c in &canvases {
            n += pending_for(url, c, "one").await;
        }
        if n > 0 {
            break;
        }
        assert!(
            one.try_wait().unwrap().is_none(),
            "replica one exited before it held unacknowledged entries"
        );
        assert!(round < 300, "one never held unacknowledged entries");
        for (c, seqs) in canvases.iter().zip(&mut acked) {
            seqs.extend(publish(&f, c, 5).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill9(&mut one);
    let mut two = start_process(url, &pg, "two", &["--claim-idle-ms=1000"]);
    pg.restart();
    for (c, acked) in canvases.iter().zip(acked) {
        eventually(
            Duration::from_secs(60),
            "all persisted by the survivor",
            || async { count(&pg, c.as_str()) == acked.len() as u64 },
        )
        .await;
        assert_eq!(stored_seqs(&pg, c.as_str()), acked);
    }
    kill9(&mut two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_while_loses_nothing() {
    let redis = RedisServer::start();
    let mut pg = PostgresServer::start();
    let f = publisher(&redis.url(), 0).await;
    let canvas = CanvasId::new("pgdown").unwrap();
    let (stop, handle) = start_in_process(&redis.url(), &pg, "p", &[]).await;
    publish(&f, &canvas, 100).await;
    eventually(
        Duration::from_secs(30),
        "first events persisted",
        || async { count(&pg, "pgdown") == 100 },
    )
    .await;
    pg.kill();
    // Writes go on (acked, kept in Redis) while Postgres is down.
    let more = publish(&f, &canvas, 400).await;
    assert_eq!(*more.last().unwrap(), 500);
    pg.restart();
    eventually(
        Duration::from_secs(60),
        "caught up after the outage",
        || async { count(&pg, "pgdown") == 500 },
    )
    .await;
    assert_eq!(stored_seqs(&pg, "pgdown"), (1..=500).collect::<Vec<u64>>());
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_refuses_writes_until_the_persister_catches_up() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let f = publisher(&redis.url(), 50).await;
    let canvas = CanvasId::new("full").unwrap();
    assert_eq!(publish(&f, &canvas, 50).await.len(), 50);
    let header = BusHeader {
        node: "n".into(),
        conn: 1,
        ingest_us: 0,
        gm_only: false,
        control: false,
    };
    let refused = f
        .publish_durable(&canvas, &header, &draw_event(&canvas, 1), None)
        .await;
    assert!(
        matches!(refused, Err(StoreError::BacklogFull { backlog: 50 })),
        "{refused:?}"
    );
    // Refused means not applied: the sequence did not move.
    assert_eq!(f.position(&canvas).await.unwrap().seq, 50);
    let (stop, handle) = start_in_process(&redis.url(), &pg, "p", &[]).await;
    eventually(Duration::from_secs(30), "writes accepted again", || async {
        f.publish_durable(&canvas, &header, &draw_event(&canvas, 1), None)
            .await
            .is_ok()
    })
    .await;
    assert!(count(&pg, "full") >= 50);
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_persisted() {
    use testkit::http::{sample, scrape};
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let f = publisher(&redis.url(), 0).await;
    let canvas = CanvasId::new("metered").unwrap();
    publish(&f, &canvas, 250).await;
    let (stop, handle, admin) = start_with_admin(&redis.url(), &pg, "p1", &[]).await;
    eventually(Duration::from_secs(30), "all events persisted", || async {
        count(&pg, "metered") == 250
    })
    .await;
    // Caught up: a blocking read found nothing more, so lag reads 0.
    eventually(Duration::from_secs(10), "lag back to 0", || async {
        sample(&scrape(admin).await, "easel_persister_lag_seconds") == Some(0.0)
    })
    .await;
    let text = scrape(admin).await;
    let get =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(get("easel_persister_events_persisted_total"), 250.0);
    assert_eq!(get("easel_persister_events_duplicate_total"), 0.0);
    // Batches of at most 200 (--batch-size): at least two.
    let batches = get("easel_persister_batches_total");
    assert!(batches >= 2.0, "{batches}");
    assert_eq!(get("easel_persister_batch_size_count"), batches);
    assert_eq!(get("easel_persister_batch_size_sum"), 250.0);
    assert_eq!(get("easel_persister_commit_seconds_count"), batches);
    assert_eq!(get("easel_persister_backlog_events"), 0.0);
    assert_eq!(get("easel_persister_backlog_max_events"), 0.0);
    assert_eq!(get("easel_persister_streams"), 1.0);
    assert_eq!(get(r#"easel_persister_errors_total{kind="redis"}"#), 0.0);
    assert_eq!(get(r#"easel_persister_errors_total{kind="postgres"}"#), 0.0);
    assert!(text.contains("process_open_fds"), "{text}");
    assert!(get("easel_process_cpu_limit_cores") >= 1.0);
    assert!(get("easel_process_memory_limit_bytes") > 0.0);
    let (status, _, _) = testkit::http::get(admin, "/readyz", None).await;
    assert_eq!(status, 200);
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_sequence_number_is_divergence_kept_not_a_duplicate() {
    use testkit::http::{sample, scrape};
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let f = publisher(&redis.url(), 0).await;
    let canvas = CanvasId::new("diverge").unwrap();
    publish(&f, &canvas, 5).await;
    let (stop, handle, admin) = start_with_admin(&redis.url(), &pg, "p1", &[]).await;
    eventually(Duration::from_secs(30), "5 persisted", || async {
        count(&pg, "diverge") == 5
    })
    .await;
    let before = pg.psql("SELECT md5(string_agg(payload::text, ',' ORDER BY seq)) FROM events");
    // Redis loses everything and nothing rebuilds the canvas (a publisher
    // without a history): seqs 1..3 are reused for other events.
    let mut conn = connect(&redis.url()).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    assert_eq!(publish(&f, &canvas, 3).await, vec![1, 2, 3]);
    eventually(
        Duration::from_secs(30),
        "the divergence counted",
        || async {
            sample(
                &scrape(admin).await,
                "easel_persister_events_diverged_total",
            ) == Some(3.0)
        },
    )
    .await;
    let text = scrape(admin).await;
    assert_eq!(
        sample(&text, "easel_persister_events_duplicate_total"),
        Some(0.0),
        "not counted as replays"
    );
    assert_eq!(
        pg.psql("SELECT md5(string_agg(payload::text, ',' ORDER BY seq)) FROM events"),
        before,
        "the stored events are untouched"
    );
    assert_eq!(
        pg.psql("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM diverged_events WHERE canvas_id = 'diverge'"),
        "1,2,3",
        "the diverged events are kept"
    );
    stop.cancel();
    handle.await.unwrap();
}
