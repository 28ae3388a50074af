//! The `idle` scenario: open N authenticated connections at a set rate,
//! hold them (answering pings), and measure the gateway's resident memory
//! per connection.

use crate::client;
use crate::proc;
use crate::stats::Samples;
use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use shared::codec::Encoding;
use shared::protocol::{ClientMessage, Draw, HistoryRequest, PixelInput};
use shared::{CanvasId, RequestId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Flags of the `idle` scenario.
#[derive(Debug, Clone, Args)]
pub struct IdleOptions {
    /// Gateway WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// HS256 secret the gateway verifies tokens with.
    #[arg(long, env = "EASEL_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Connections to open.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// New connections per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// How long to hold the connections once all are open, seconds.
    #[arg(long, default_value_t = 5)]
    pub hold_secs: u64,
    /// Gateway process id on this machine, to measure its memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Use MessagePack instead of JSON.
    #[arg(long)]
    pub msgpack: bool,
    /// The first connection's user is `load-N` (then N+1, ...): load
    /// testers run side by side take distinct ranges, so that no user is
    /// spread over their gateways.
    #[arg(long, default_value_t = 0)]
    pub first_user: usize,
    /// Join this canvas once connected (the connection counts once
    /// joined): the join path's cost, and memory per joined member.
    #[arg(long)]
    pub join: Option<String>,
    /// With --join: before the ramp, a connection of its own publishes
    /// this many draws of 256 pixels (about 6 KB each as JSON) to the
    /// canvas, so that there is history to read (lift the gateway's pixel
    /// rate limits for more than a few).
    #[arg(long, default_value_t = 0)]
    pub prefill: usize,
    /// With --join: once joined, each connection asks for one page of
    /// history from the start and waits for it (the largest reply a member
    /// gets: up to three times the gateway's message size).
    #[arg(long)]
    pub history: bool,
}

/// What the scenario measured.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub ramp_secs: f64,
    /// Connections the gateway closed (or that broke) before the hold
    /// ended: none, unless the gateway or the machine could not keep up.
    pub dropped: usize,
    pub connect_p50_ms: Option<f64>,
    pub connect_p99_ms: Option<f64>,
    /// The join alone (with --join), from sending it to its ack.
    pub join_p50_ms: Option<f64>,
    pub join_p99_ms: Option<f64>,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub rss_per_connection_bytes: Option<f64>,
}

impl IdleReport {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} ms"));
        let mib =
            |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1} MiB", v as f64 / 1048576.0));
        let mut s = String::new();
        s += &format!("connections opened       {}\n", self.opened);
        s += &format!("connections failed       {}\n", self.failed);
        if let Some(e) = &self.first_error {
            s += &format!("first error              {e}\n");
        }
        s += &format!("ramp                     {:.2} s\n", self.ramp_secs);
        s += &format!("dropped before the end   {}\n", self.dropped);
        s += &format!(
            "connect p50 / p99        {} / {}\n",
            ms(self.connect_p50_ms),
            ms(self.connect_p99_ms)
        );
        if self.join_p50_ms.is_some() {
            s += &format!(
                "join p50 / p99           {} / {}\n",
                ms(self.join_p50_ms),
                ms(self.join_p99_ms)
            );
        }
        s += &format!(
            "gateway RSS before/after {} / {}\n",
            mib(self.rss_before_bytes),
            mib(self.rss_after_bytes)
        );
        if let Some(per) = self.rss_per_connection_bytes {
            s += &format!("RSS per idle connection  {:.2} KiB\n", per / 1024.0);
        }
        s
    }
}

/// Runs the scenario.
pub async fn run(opts: &IdleOptions) -> anyhow::Result<IdleReport> {
    let encoding = if opts.msgpack {
        Encoding::Msgpack
    } else {
        Encoding::Json
    };
    let canvas = opts
        .join
        .as_deref()
        .map(CanvasId::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--join: {e}"))?;
    if let Some(canvas) = canvas.as_ref().filter(|_| opts.prefill > 0) {
        prefill(opts, encoding, canvas).await?;
    }
    let rss_before = opts.pid.map(proc::rss_bytes).transpose()?;
    let limiter = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let interval = Duration::from_secs_f64(1.0 / f64::from(opts.rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    // Each connection reads from the moment it is in, so the gateway's
    // pings are answered during a long ramp too (a connection silent past
    // the idle timeout would be closed), until the hold ends.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel();
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..opts.connections {
        ticker.tick().await;
        let permit = limiter.clone().acquire_owned().await?;
        let token = client::token(&opts.secret, opts.first_user + n)?;
        let url = opts.url.clone();
        let canvas = canvas.clone();
        let opened = opened_tx.clone();
        let mut done = done_rx.clone();
        let dropped = dropped.clone();
        let history = opts.history;
        attempts.spawn(async move {
            let t0 = Instant::now();
            let result = async {
                let mut ws = client::connect(&url, &token, encoding).await?;
                let mut joined_in = None;
                if let Some(canvas) = &canvas {
                    let j0 = Instant::now();
                    client::join(&mut ws, encoding, canvas, None).await?;
                    joined_in = Some(j0.elapsed());
                    if history {
                        client::request(&mut ws, encoding, 3, &history_page(canvas)).await?;
                    }
                }
                anyhow::Ok((ws, joined_in))
            }
            .await;
            drop(permit);
            let ws = match result {
                Ok((ws, joined_in)) => {
                    let _ = opened.send((t0.elapsed(), Ok(joined_in)));
                    ws
                }
                Err(e) => {
                    let _ = opened.send((t0.elapsed(), Err(e)));
                    return;
                }
            };
            let mut ws = ws;
            let ended = tokio::select! {
                _ = done.wait_for(|d| *d) => false,
                _ = async { while let Some(Ok(_)) = ws.next().await {} } => true,
            };
            if ended {
                dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    drop(opened_tx);
    let mut connect_times = Samples::default();
    let mut join_times = Samples::default();
    let mut failed = 0;
    let mut first_error = None;
    for _ in 0..opts.connections {
        let Some((took, result)) = opened_rx.recv().await else {
            anyhow::bail!("a connection task ended without reporting");
        };
        match result {
            Ok(joined_in) => {
                connect_times.record(took);
                if let Some(j) = joined_in {
                    join_times.record(j);
                }
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let ramp = started.elapsed();
    tokio::time::sleep(Duration::from_secs(opts.hold_secs)).await;
    let rss_after = opts.pid.map(proc::rss_bytes).transpose()?;
    let opened = opts.connections - failed;
    let _ = done_tx.send(true);
    while attempts.join_next().await.is_some() {}
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(IdleReport {
        opened,
        failed,
        first_error,
        ramp_secs: ramp.as_secs_f64(),
        dropped: dropped.load(std::sync::atomic::Ordering::Relaxed),
        connect_p50_ms: connect_times.quantile(0.5).map(ms),
        connect_p99_ms: connect_times.quantile(0.99).map(ms),
        join_p50_ms: join_times.quantile(0.5).map(ms),
        join_p99_ms: join_times.quantile(0.99).map(ms),
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        rss_per_connection_bytes: match (rss_before, rss_after) {
            (Some(b), Some(a)) if opened > 0 => Some((a.saturating_sub(b)) as f64 / opened as f64),
            _ => None,
        },
    })
}

/// Publishes `opts.prefill` draws of 256 pixels to `canvas` from a
/// connection of its own (user `load-prefill`), each acked.
async fn prefill(opts: &IdleOptions, encoding: Encoding, canvas: &CanvasId) -> anyhow::Result<()> {
    let token = client::token_for(&opts.secret, "load-prefill")?;
    let mut ws = client::connect(&opts.url, &token, encoding).await?;
    client::join(&mut ws, encoding, canvas, None).await?;
    for i in 0..opts.prefill {
        let id = 10 + i as u64;
        let draw = ClientMessage::Draw(Draw {
            id: Some(RequestId::Num(id)),
            canvas: canvas.clone(),
            key: None,
            pixels: (0..256)
                // Four rows of a 64-wide canvas (the auto-created size).
                .map(|k| PixelInput {
                    x: k % 64,
                    y: (k / 64 + 4 * i as i64) % 64,
                    color: (k + i as i64) % 16,
                })
                .collect(),
        });
        client::request(&mut ws, encoding, id, &draw)
            .await
            .context("--prefill")?;
    }
    Ok(())
}

/// One page of `canvas`'s history from the start, at the default limit.
fn history_page(canvas: &CanvasId) -> ClientMessage {
    ClientMessage::History(HistoryRequest {
        id: Some(RequestId::Num(3)),
        canvas: canvas.clone(),
        since: 0,
        limit: None,
    })
}
