//! The load engine behind the `fanout`, `churn`, `durable` and `resume`
//! scenarios.
//!
//! It opens members (receivers) and publishers on C canvases, spread
//! round-robin over the gateway URLs; publishers send numbered messages at a
//! fixed total rate (or, closed-loop, as fast as acks allow); members check
//! every delivery against the sender's counter or the canvas's sequence
//! number and record its latency from send to receive on this process's
//! clock. On top of that load, `churn` connects, joins, leaves and
//! disconnects at a steady rate, and `resume` drops members and has them
//! resume on another gateway.

mod churn;
mod member;
mod open;
mod publisher;
mod run;

pub use crate::report::{ChurnStats, Report, ResumeStats};
pub use run::run;

use crate::client::{self, Ws};
use crate::payload::{self, Event, Geometry, Kind};
use crate::proc::{self, CpuTime};
use crate::stats::{Latency, Recorder, Samples};
use crate::track::{self, Counts, Stream};
use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rand::Rng;
use shared::CanvasId;
use shared::RequestId;
use shared::codec::Encoding;
use shared::protocol::{AckResult, Joined, ResumeOutcome, ServerMessage};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Where to connect and how.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Gateway WebSocket URLs (comma-separated or repeated); connections are
    /// spread over them round-robin.
    #[arg(
        long = "url",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    pub urls: Vec<String>,
    /// HS256 secret the gateways verify tokens with.
    #[arg(long, env = "EASEL_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Use MessagePack instead of JSON.
    #[arg(long)]
    pub msgpack: bool,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 2000)]
    pub connect_rate: u32,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Gateway process ids on this machine (comma-separated): their CPU time
    /// and memory are read from /proc.
    #[arg(long = "pid", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Redis process ids on this machine (comma-separated; every node of a
    /// cluster): their CPU time is read from /proc too.
    #[arg(long = "redis-pid", value_delimiter = ',')]
    pub redis_pids: Vec<u32>,
    /// The gateways' admin listeners, host:port (comma-separated): frames
    /// written and socket writes are read from their /metrics.
    #[arg(long = "admin", value_delimiter = ',')]
    pub admins: Vec<String>,
    /// Canvas ids are `<prefix>-<n>`.
    #[arg(long, default_value = "load")]
    pub canvas_prefix: String,
}

/// The load itself.
#[derive(Debug, Clone, Args)]
pub struct Load {
    #[command(flatten)]
    pub target: Target,
    /// Canvases.
    #[arg(long, default_value_t = 1)]
    pub canvases: usize,
    /// Receiving members per canvas.
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Publishing connections in all, spread over the canvases.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Messages per second from all publishers together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// What publishers send.
    #[arg(long, value_enum, default_value = "draw")]
    pub kind: Kind,
    /// Strokes per second from all publishers together, besides `--kind`
    /// (cursor or chat): each a 16-pixel draw without a request id. The
    /// whiteboard: cursors at 30 Hz and 2 strokes/s per participant.
    #[arg(long, default_value_t = 0.0)]
    pub strokes_per_sec: f64,
    /// How long publishers publish, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Longest wait for outstanding acks and deliveries after publishing
    /// stops, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain_secs: f64,
    /// Measure the floor (`loadtest floor`: one write per member, no Easel)
    /// with as many members, up to 5,000, just before the run, and state
    /// the gateways' CPU per delivery and per event as ratios to it.
    #[arg(long)]
    pub floor: bool,
    /// Draw latency over time and its distribution into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// What runs on top of the publishing load.
#[derive(Debug, Clone, Copy, Default)]
pub enum Extra {
    /// Nothing: the `fanout` scenario.
    #[default]
    None,
    /// Connect, join, leave and disconnect this many times per second.
    Churn { per_sec: f64 },
    /// Publishers keep this many writes in flight instead of pacing.
    ClosedLoop { window: usize },
    /// Drop this many members per second; each resumes on the next gateway.
    Resume { per_sec: f64 },
    /// This many abusive connections flood the first gateway with draws on
    /// a canvas of their own (crate::flood).
    Flood { connections: usize, per_sec: f64 },
}

/// Send times kept per publisher: a ring indexed by counter. Messages in
/// flight per publisher must stay below this.
const SEND_RING: usize = 1 << 14;

/// State every task of a run shares.
struct Shared {
    encoding: Encoding,
    kind: Kind,
    geometry: Geometry,
    canvases: Vec<CanvasId>,
    /// The run's clock: send and receive times are measured from here.
    epoch: Instant,
    /// Per publisher: send time (µs since `epoch`, +1) by counter.
    sent_at: Vec<Box<[AtomicU64]>>,
    sent: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    rejected: Vec<AtomicU64>,
    /// Per canvas: one past the highest acked sequence number.
    canvas_end: Vec<AtomicU64>,
    delivered: AtomicU64,
    /// Events the publishers' connections received (they are members too:
    /// a whiteboard's every participant draws and watches), not checked.
    to_publishers: AtomicU64,
    /// Strokes sent (`--strokes-per-sec`), and received by members.
    strokes_sent: AtomicU64,
    strokes_delivered: AtomicU64,
    deliveries: Recorder,
    stop: CancellationToken,
}

impl Shared {
    fn new(encoding: Encoding, load: &Load, geometry: Geometry, canvases: &[CanvasId]) -> Self {
        let atomics = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Shared {
            encoding,
            kind: load.kind,
            geometry,
            canvases: canvases.to_vec(),
            epoch: Instant::now(),
            sent_at: (0..load.publishers)
                .map(|_| atomics(SEND_RING).into_boxed_slice())
                .collect(),
            sent: atomics(load.publishers),
            acked: atomics(load.publishers),
            rejected: atomics(load.publishers),
            canvas_end: atomics(load.canvases),
            delivered: AtomicU64::new(0),
            to_publishers: AtomicU64::new(0),
            strokes_sent: AtomicU64::new(0),
            strokes_delivered: AtomicU64::new(0),
            deliveries: Recorder::new(64),
            stop: CancellationToken::new(),
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    fn mark_sent(&self, publisher: usize, n: u64) {
        self.sent_at[publisher][n as usize % SEND_RING].store(self.now_us(), Ordering::Relaxed);
    }

    fn sent_time(&self, publisher: usize, n: u64) -> Option<u64> {
        let ring = self.sent_at.get(publisher)?;
        let t = ring[n as usize % SEND_RING].load(Ordering::Relaxed);
        (t != 0).then_some(t)
    }

    fn publishers_of(&self, canvas: usize) -> impl Iterator<Item = usize> + '_ {
        (canvas..self.sent.len()).step_by(self.canvases.len())
    }

    fn sum(v: &[AtomicU64]) -> u64 {
        v.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}

fn bar(len: u64, visible: bool, template: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        b.set_style(style.progress_chars("=> "));
    }
    b
}

fn cpu_time(pids: &[u32]) -> anyhow::Result<Option<CpuTime>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut total = CpuTime::default();
    for &pid in pids {
        total = total + proc::cpu_time(pid)?;
    }
    Ok(Some(total))
}
