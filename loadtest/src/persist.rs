//! Persister benchmarks: fill canvas logs through the real durable publish
//! script (optionally at a fixed rate), and wait for the persister to catch
//! up while measuring its drain rate from the canvases' persisted marks.

use clap::Args;
use serde::Serialize;
use shared::busframe::BusHeader;
use shared::protocol::{Author, DrawEvent, Pixel, ServerMessage};
use shared::{CanvasId, keys};
use std::time::{Duration, Instant};
use store::{Change, Log, LogSettings, PixelChange, RedisPool};

/// Flags shared by `persist-fill` and `persist-wait`.
#[derive(Debug, Clone, Args)]
pub struct PersistOptions {
    /// Redis holding the canvas logs.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Canvases to spread events over (`<prefix>-0` ..).
    #[arg(long, default_value_t = 8)]
    pub canvases: usize,
    /// Canvas id prefix.
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Events in total.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events per second in total while filling; 0 for as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long `persist-wait` waits at most, seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// What a phase measured.
#[derive(Debug, Serialize)]
pub struct PersistReport {
    pub phase: &'static str,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

impl PersistReport {
    /// A one-line summary.
    pub fn line(&self) -> String {
        format!(
            "{:<6} {} events in {:.2} s = {:.0} events/s\n",
            self.phase, self.events, self.seconds, self.events_per_second
        )
    }
}

fn canvases(opts: &PersistOptions) -> anyhow::Result<Vec<CanvasId>> {
    (0..opts.canvases.max(1))
        .map(|i| CanvasId::new(&format!("{}-{i}", opts.prefix)).map_err(anyhow::Error::from))
        .collect()
}

/// Publishes `events` durable one-pixel draws across the canvases.
pub async fn fill(opts: &PersistOptions) -> anyhow::Result<PersistReport> {
    // Leave trimming to the persister, and never refuse: this measures it.
    let settings = LogSettings {
        log_max_events: 100_000,
        backlog_limit: usize::MAX / 2,
        ack_replicas: 0,
    };
    let pool = RedisPool::connect(
        opts.redis_url.as_str(),
        opts.canvases.max(1) * 2,
        Duration::from_secs(2),
    )
    .await?;
    let log = std::sync::Arc::new(Log::redis(pool, settings, None));
    let ids = canvases(opts)?;
    let per_canvas = opts.events / ids.len();
    let per_canvas_rate = opts.rate as f64 / ids.len() as f64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for canvas in ids {
        let log = log.clone();
        tasks.spawn(async move {
            let header = BusHeader {
                node: "loadtest".into(),
                conn: 0,
                ingest_us: 0,
                gm_only: false,
                control: false,
            };
            let t0 = Instant::now();
            for i in 0..per_canvas {
                if per_canvas_rate > 0.0 {
                    let due = t0 + Duration::from_secs_f64(i as f64 / per_canvas_rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let x = (i % 1024) as u32;
                let event = ServerMessage::Draw(DrawEvent {
                    canvas: canvas.clone(),
                    seq: None,
                    author: Author {
                        id: "loadtest".into(),
                        name: None,
                    },
                    ts: shared::now_ms(),
                    pixels: vec![Pixel {
                        x,
                        y: 0,
                        color: (i % 32) as u8,
                    }],
                });
                let change = Change::Pixels(PixelChange {
                    bits: 5,
                    cell_count: 1024 * 1024,
                    cells: vec![(x, (i % 32) as u8)],
                });
                let header = BusHeader {
                    ingest_us: shared::now_us(),
                    ..header.clone()
                };
                log.publish_durable(&canvas, &header, &event, Some(&change))
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let events = (per_canvas * opts.canvases.max(1)) as u64;
    Ok(PersistReport {
        phase: "fill",
        events,
        seconds,
        events_per_second: events as f64 / seconds,
    })
}

/// Waits until every canvas's persisted mark reaches its last sequence
/// number; the rate is measured from the first progress seen, so the
/// persister's start-up is not counted.
pub async fn wait(opts: &PersistOptions) -> anyhow::Result<PersistReport> {
    let client = redis::Client::open(opts.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let ids = canvases(opts)?;
    let deadline = Instant::now() + Duration::from_secs(opts.timeout_secs);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let mut head = 0u64;
        let mut persisted = 0u64;
        for c in &ids {
            let (s, p): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
                .arg(keys::canvas_meta(c))
                .arg("seq")
                .arg("persisted")
                .query_async(&mut conn)
                .await?;
            head += s.unwrap_or(0);
            persisted += p.unwrap_or(0);
        }
        let now = Instant::now();
        if first.is_none() && persisted > 0 {
            first = Some((now, persisted));
        }
        if head > 0 && persisted >= head {
            let (t0, p0) = first.unwrap_or((now, 0));
            let seconds = now.duration_since(t0).as_secs_f64().max(1e-3);
            let events = head - p0;
            return Ok(PersistReport {
                phase: "drain",
                events,
                seconds,
                events_per_second: events as f64 / seconds,
            });
        }
        anyhow::ensure!(
            now < deadline,
            "persister did not catch up: {persisted} of {head} persisted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
