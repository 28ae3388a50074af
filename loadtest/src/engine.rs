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

use crate::client::{self, Ws};
use crate::payload::{self, Event, Geometry, Kind};
use crate::proc::{self, CpuTime};
use crate::stats::{Latency, Recorder, Samples, SecondStats, Summary};
use crate::track::{self, Counts, Stream};
use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
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
    /// How long publishers publish, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Longest wait for outstanding acks and deliveries after publishing
    /// stops, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain_secs: f64,
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
    deliveries: Recorder,
    stop: CancellationToken,
}

impl Shared {
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

/// Who to open: a URL, a user and a canvas.
struct Spec {
    url: usize,
    user: String,
    canvas: usize,
}

struct Opened {
    ws: Ws,
    joined: Joined,
}

/// Results of the connection phase.
#[derive(Default)]
struct OpenStats {
    failed: u64,
    first_error: Option<String>,
    connect: Samples,
    join: Samples,
}

impl OpenStats {
    fn fail(&mut self, e: &anyhow::Error) {
        self.failed += 1;
        self.first_error.get_or_insert_with(|| format!("{e:#}"));
    }
}

async fn open_one(
    urls: &[String],
    secret: &str,
    encoding: Encoding,
    canvases: &[CanvasId],
    spec: &Spec,
    resume: Option<(u64, String)>,
) -> anyhow::Result<(Opened, Duration, Duration)> {
    let token = client::token_for(secret, &spec.user)?;
    let t0 = Instant::now();
    let url = &urls[spec.url % urls.len()];
    let mut ws = client::connect(url, &token, encoding)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let connected = t0.elapsed();
    let joined = client::join(&mut ws, encoding, &canvases[spec.canvas], resume).await?;
    Ok((Opened { ws, joined }, connected, t0.elapsed() - connected))
}

/// Opens every spec at the target's connection rate; failed ones are `None`.
async fn open_all(
    target: &Target,
    encoding: Encoding,
    canvases: &Arc<Vec<CanvasId>>,
    specs: Vec<Spec>,
    bar: &ProgressBar,
) -> anyhow::Result<(Vec<Option<Opened>>, OpenStats)> {
    let limiter = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(target.connect_rate.max(1)),
    ));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let urls = Arc::new(target.urls.clone());
    let mut attempts = JoinSet::new();
    let n = specs.len();
    for (i, spec) in specs.into_iter().enumerate() {
        ticker.tick().await;
        let permit = limiter.clone().acquire_owned().await?;
        let (urls, canvases, secret) = (urls.clone(), canvases.clone(), target.secret.clone());
        attempts.spawn(async move {
            let r = open_one(&urls, &secret, encoding, &canvases, &spec, None).await;
            drop(permit);
            (i, r)
        });
    }
    let mut opened: Vec<Option<Opened>> = (0..n).map(|_| None).collect();
    let mut stats = OpenStats::default();
    while let Some(done) = attempts.join_next().await {
        let (i, result) = done?;
        bar.inc(1);
        match result {
            Ok((o, connect, join)) => {
                stats.connect.record(connect);
                stats.join.record(join);
                opened[i] = Some(o);
            }
            Err(e) => stats.fail(&e),
        }
    }
    Ok((opened, stats))
}

/// A member's state: what it expects and what it received.
struct Member {
    canvas: usize,
    url: usize,
    user: String,
    /// Durable kinds: one stream of canvas sequence numbers. Cursors: one
    /// stream per publisher of the canvas.
    streams: Vec<Stream>,
    /// Per publisher of the canvas: the last counter seen (to unwrap).
    last: Vec<u64>,
    /// Sequence numbers up to here are replays (no latency recorded).
    replay_until: u64,
    epoch: String,
    /// Which recorder shard this member uses.
    shard: usize,
}

/// What a member reports when the run ends.
#[derive(Default)]
struct MemberOutcome {
    counts: Counts,
    resyncs: u64,
    disconnects: u64,
    resumes: ResumeStats,
}

/// Resume outcomes and latency (connect + join on the next gateway).
#[derive(Debug, Default, Clone, Serialize)]
pub struct ResumeStats {
    pub attempted: u64,
    pub replayed: u64,
    pub epoch_changed: u64,
    pub history_unavailable: u64,
    pub ahead: u64,
    pub failed: u64,
    #[serde(skip)]
    latency: Samples,
    pub latency_summary: Option<Summary>,
}

impl ResumeStats {
    fn merge(&mut self, o: ResumeStats) {
        self.attempted += o.attempted;
        self.replayed += o.replayed;
        self.epoch_changed += o.epoch_changed;
        self.history_unavailable += o.history_unavailable;
        self.ahead += o.ahead;
        self.failed += o.failed;
        self.latency.merge(o.latency);
    }
}

impl Member {
    fn observe(&mut self, sh: &Shared, ev: &Event<'_>) -> bool {
        let Some(tag) = payload::read(ev, sh.geometry) else {
            return false;
        };
        let nc = sh.canvases.len();
        if tag.publisher % nc != self.canvas || tag.publisher >= sh.sent.len() {
            self.streams[0].counts.unexpected += 1;
            return false;
        }
        let local = tag.publisher / nc;
        let n = track::unwrap(tag.raw, sh.kind.modulus(sh.geometry), self.last[local]);
        self.last[local] = n;
        let fresh = match (sh.kind.durable(), tag.seq) {
            (true, Some(seq)) => self.streams[0].observe(seq),
            (true, None) => {
                self.streams[0].counts.unexpected += 1;
                return false;
            }
            (false, _) => self.streams[local].observe(n),
        };
        let fresh = matches!(fresh, track::Seen::InOrder | track::Seen::OutOfOrder);
        let replay = tag.seq.is_some_and(|s| s <= self.replay_until);
        if let Some(sent) = sh.sent_time(tag.publisher, n).filter(|_| fresh && !replay) {
            let now = sh.now_us();
            sh.deliveries
                .record(self.shard, now / 1_000_000, now.saturating_sub(sent));
        }
        if fresh {
            sh.delivered.fetch_add(1, Ordering::Relaxed);
        }
        fresh
    }

    fn finish(&self, sh: &Shared) -> Counts {
        let mut counts = Counts::default();
        if sh.kind.durable() {
            let end = sh.canvas_end[self.canvas].load(Ordering::Relaxed);
            counts.add(self.streams[0].finish(end));
        } else {
            // Cursors may be coalesced by the gateway: gaps are expected,
            // but the last position must arrive. Rejected sends were never
            // delivered to anyone.
            for (local, p) in sh.publishers_of(self.canvas).enumerate() {
                counts.add(self.streams[local].finish_coalesced(
                    sh.sent[p].load(Ordering::Relaxed),
                    sh.rejected[p].load(Ordering::Relaxed),
                ));
            }
        }
        counts
    }
}

async fn member_task(
    mut ws: Ws,
    mut m: Member,
    sh: Arc<Shared>,
    urls: Arc<Vec<String>>,
    secret: Arc<String>,
    resume: Option<Arc<Notify>>,
) -> MemberOutcome {
    let mut out = MemberOutcome::default();
    let never = Notify::new();
    let signal = resume.as_deref().unwrap_or(&never);
    // Both futures live across iterations: making and registering new ones
    // for every frame was a measurable share of the load tester's CPU.
    let stop = sh.stop.cancelled();
    tokio::pin!(stop);
    let dropped = signal.notified();
    tokio::pin!(dropped);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut dropped => {
                dropped.set(signal.notified());
                drop(ws);
                out.resumes.attempted += 1;
                match resume_member(&mut m, &sh, &urls, &secret, &mut out.resumes).await {
                    Some(new) => ws = new,
                    None => break,
                }
            }
            frame = ws.next() => {
                let bytes: &[u8] = match &frame {
                    Some(Ok(Message::Text(t))) => t.as_bytes(),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(_)) => continue,
                    _ => { out.disconnects += 1; break; }
                };
                match Event::decode(sh.encoding, bytes) {
                    Ok(ev) if ev.kind == "resync" => out.resyncs += 1,
                    Ok(ev) => { m.observe(&sh, &ev); }
                    Err(_) => m.streams[0].counts.unexpected += 1,
                }
            }
        }
    }
    out.counts = m.finish(&sh);
    out
}

/// Reconnects a dropped member to the next gateway, resuming after the last
/// sequence number it saw. Retries until the run stops.
async fn resume_member(
    m: &mut Member,
    sh: &Shared,
    urls: &[String],
    secret: &str,
    stats: &mut ResumeStats,
) -> Option<Ws> {
    m.url += 1;
    let spec = Spec {
        url: m.url,
        user: m.user.clone(),
        canvas: m.canvas,
    };
    loop {
        let since = m.streams[0]
            .max()
            .unwrap_or(m.replay_until)
            .max(m.replay_until);
        let t0 = Instant::now();
        let attempt = open_one(
            urls,
            secret,
            sh.encoding,
            &sh.canvases,
            &spec,
            Some((since, m.epoch.clone())),
        );
        let result = tokio::select! {
            _ = sh.stop.cancelled() => return None,
            r = attempt => r,
        };
        match result {
            Ok((o, _, _)) => {
                stats.latency.record(t0.elapsed());
                match o.joined.resume {
                    Some(ResumeOutcome::Replayed) => stats.replayed += 1,
                    Some(ResumeOutcome::EpochChanged) => stats.epoch_changed += 1,
                    Some(ResumeOutcome::HistoryUnavailable) => stats.history_unavailable += 1,
                    Some(ResumeOutcome::Ahead) => stats.ahead += 1,
                    None => {}
                }
                m.replay_until = o.joined.seq;
                m.epoch = o.joined.epoch;
                return Some(o.ws);
            }
            Err(_) => {
                stats.failed += 1;
                tokio::select! {
                    _ = sh.stop.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// What a publisher reports.
#[derive(Default)]
struct PublisherOutcome {
    ack_latency: Latency,
    errors: BTreeMap<String, u64>,
}

/// Reads a publisher's replies until the run stops.
async fn publisher_reader(
    mut stream: futures_util::stream::SplitStream<Ws>,
    j: usize,
    sh: Arc<Shared>,
    window: Arc<Semaphore>,
) -> PublisherOutcome {
    let mut out = PublisherOutcome::default();
    let canvas = j % sh.canvases.len();
    loop {
        let frame = tokio::select! {
            _ = sh.stop.cancelled() => break,
            f = stream.next() => f,
        };
        let Some(Ok(frame)) = frame else {
            *out.errors.entry("disconnected".into()).or_default() += 1;
            break;
        };
        match client::decode(sh.encoding, &frame) {
            Some(Ok(ServerMessage::Ack(a))) => {
                let RequestId::Num(n) = a.id else { continue };
                if let Some(sent) = sh.sent_time(j, n) {
                    out.ack_latency.record_us(sh.now_us().saturating_sub(sent));
                }
                if let Some(AckResult::Published(p)) = a.result {
                    sh.canvas_end[canvas].fetch_max(p.seq + 1, Ordering::Relaxed);
                }
                sh.acked[j].fetch_add(1, Ordering::Relaxed);
                window.add_permits(1);
            }
            Some(Ok(ServerMessage::Error(e))) => {
                *out.errors.entry(e.code.as_str().to_owned()).or_default() += 1;
                if e.id.is_some() {
                    sh.rejected[j].fetch_add(1, Ordering::Relaxed);
                    window.add_permits(1);
                }
            }
            Some(Err(e)) => {
                *out.errors.entry(format!("{e:#}")).or_default() += 1;
                break;
            }
            _ => {}
        }
    }
    out
}

/// Sends numbered messages until `until`: paced at `period`, or closed-loop
/// with at most `window` unanswered.
async fn publisher_writer(
    mut sink: futures_util::stream::SplitSink<Ws, tokio_tungstenite::tungstenite::Message>,
    j: usize,
    sh: Arc<Shared>,
    period: Option<Duration>,
    window: Arc<Semaphore>,
    until: Instant,
) -> anyhow::Result<futures_util::stream::SplitSink<Ws, tokio_tungstenite::tungstenite::Message>> {
    let canvas = &sh.canvases[j % sh.canvases.len()];
    let mut ticker = period.map(|p| {
        let mut t = tokio::time::interval(p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let deadline = tokio::time::Instant::from_std(until);
    for n in 0u64.. {
        let ready = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => window.acquire().await.map(|p| p.forget()).unwrap_or(()),
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = sh.stop.cancelled() => break,
            _ = ready => {}
        }
        if Instant::now() >= until {
            break;
        }
        let msg = client::frame(sh.encoding, &sh.kind.command(canvas, n, n, sh.geometry))?;
        sh.mark_sent(j, n);
        sink.send(msg).await?;
        sh.sent[j].store(n + 1, Ordering::Relaxed);
    }
    Ok(sink)
}

/// Churn: connect, join, leave, disconnect at a steady rate until `until`.
async fn churn_task(
    target: Target,
    encoding: Encoding,
    canvases: Arc<Vec<CanvasId>>,
    per_sec: f64,
    until: Instant,
) -> ChurnStats {
    let stats = Arc::new(Mutex::new(ChurnStats::default()));
    let limiter = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec.max(0.001)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let urls = Arc::new(target.urls.clone());
    let mut cycles = JoinSet::new();
    for i in 0usize.. {
        ticker.tick().await;
        if Instant::now() >= until {
            break;
        }
        let Ok(permit) = limiter.clone().acquire_owned().await else {
            break;
        };
        let (urls, canvases, secret, stats) = (
            urls.clone(),
            canvases.clone(),
            target.secret.clone(),
            stats.clone(),
        );
        cycles.spawn(async move {
            let spec = Spec {
                url: i,
                user: format!("lt-c{i}"),
                canvas: i % canvases.len(),
            };
            let t0 = Instant::now();
            let result = async {
                let (mut o, _, _) =
                    open_one(&urls, &secret, encoding, &canvases, &spec, None).await?;
                client::leave(&mut o.ws, encoding, &canvases[spec.canvas]).await?;
                o.ws.close(None).await?;
                anyhow::Ok(())
            }
            .await;
            drop(permit);
            let mut s = stats.lock();
            match result {
                Ok(()) => {
                    s.cycles += 1;
                    s.latency.record(t0.elapsed());
                }
                Err(e) => {
                    s.failed += 1;
                    s.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        });
    }
    while cycles.join_next().await.is_some() {}
    let mut s = std::mem::take(&mut *stats.lock());
    s.cycle_summary = s.latency.summary();
    s
}

/// Connect/join/leave/disconnect cycles on top of the load.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ChurnStats {
    pub cycles: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub cycles_per_sec: f64,
    #[serde(skip)]
    latency: Samples,
    pub cycle_summary: Option<Summary>,
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub kind: Kind,
    pub encoding: Encoding,
    pub gateways: usize,
    pub canvases: usize,
    pub members: usize,
    pub publishers: usize,
    pub target_rate: Option<f64>,
    pub publish_secs: f64,
    pub connections_opened: u64,
    pub connections_failed: u64,
    pub first_error: Option<String>,
    pub connect: Option<Summary>,
    pub join: Option<Summary>,
    pub sent: u64,
    pub sent_per_sec: f64,
    pub acked: u64,
    pub acked_per_sec: f64,
    pub rejected: u64,
    pub errors: BTreeMap<String, u64>,
    pub ack_latency: Option<Summary>,
    pub deliveries: u64,
    pub expected_deliveries: u64,
    pub deliveries_per_sec: f64,
    pub latency: Option<Summary>,
    pub correctness: Counts,
    pub resyncs: u64,
    pub member_disconnects: u64,
    pub drained: bool,
    pub churn: Option<ChurnStats>,
    pub resume: Option<ResumeStats>,
    pub flood: Option<crate::flood::FloodStats>,
    pub gateway_cpu_secs: Option<f64>,
    pub cpu_us_per_delivery: Option<f64>,
    pub user_cpu_us_per_delivery: Option<f64>,
    pub system_cpu_us_per_delivery: Option<f64>,
    pub gateway_rss_bytes: Option<u64>,
    pub timeline: Vec<SecondStats>,
    #[serde(skip)]
    pub distribution: Vec<(f64, u64)>,
}

impl Report {
    /// Whether nothing was lost, duplicated or reordered, and every
    /// connection opened.
    pub fn is_clean(&self) -> bool {
        self.correctness.is_clean()
            && self.connections_failed == 0
            && self.member_disconnects == 0
            && self.drained
            && self
                .flood
                .as_ref()
                .is_none_or(|f| f.missing_retry_after == 0)
    }

    /// A human-readable summary table.
    pub fn table(&self) -> String {
        let opt = |s: &Option<Summary>| s.as_ref().map_or("-".into(), Summary::line);
        let mut t = String::new();
        let mut row = |k: &str, v: String| t += &format!("{k:<26}{v}\n");
        row(
            "scenario",
            format!("{} ({:?}, {:?})", self.scenario, self.kind, self.encoding),
        );
        row(
            "shape",
            format!(
                "{} canvases x {} members, {} publishers, {} gateways",
                self.canvases, self.members, self.publishers, self.gateways
            ),
        );
        row(
            "connections opened/failed",
            format!("{} / {}", self.connections_opened, self.connections_failed),
        );
        if let Some(e) = &self.first_error {
            row("first error", e.clone());
        }
        row("connect p50/p95/p99/max", opt(&self.connect));
        row("join p50/p95/p99/max", opt(&self.join));
        row(
            "sent",
            format!(
                "{} in {:.1} s ({:.0}/s)",
                self.sent, self.publish_secs, self.sent_per_sec
            ),
        );
        row(
            "acked / rejected",
            format!(
                "{} ({:.0}/s) / {}",
                self.acked, self.acked_per_sec, self.rejected
            ),
        );
        if !self.errors.is_empty() {
            row("errors", format!("{:?}", self.errors));
        }
        row("ack latency", opt(&self.ack_latency));
        row(
            "deliveries",
            format!(
                "{} of {} expected ({:.0}/s)",
                self.deliveries, self.expected_deliveries, self.deliveries_per_sec
            ),
        );
        row("latency p50/p95/p99/max", opt(&self.latency));
        row(
            "lost/dup/out-of-order",
            format!(
                "{} / {} / {} (unexpected {}, coalesced {})",
                self.correctness.lost,
                self.correctness.duplicated,
                self.correctness.out_of_order,
                self.correctness.unexpected,
                self.correctness.coalesced
            ),
        );
        row(
            "resyncs / disconnects",
            format!("{} / {}", self.resyncs, self.member_disconnects),
        );
        if let Some(f) = &self.flood {
            row(
                "flood sent/acked",
                format!("{} / {} ({} connections)", f.sent, f.acked, f.connections),
            );
            row(
                "flood refused (E004)",
                format!(
                    "{} (without retry_after_ms: {}; other errors: {})",
                    f.rate_limited, f.missing_retry_after, f.other_errors
                ),
            );
            row(
                "flood closed 4029/other",
                format!("{} / {}", f.closed_for_abuse, f.other_closes),
            );
        }
        if let Some(c) = &self.churn {
            row(
                "churn cycles/failed",
                format!("{} / {} ({:.1}/s)", c.cycles, c.failed, c.cycles_per_sec),
            );
            row("churn cycle latency", opt(&c.cycle_summary));
            if let Some(e) = &c.first_error {
                row("churn first error", e.clone());
            }
        }
        if let Some(r) = &self.resume {
            row(
                "resumes",
                format!(
                    "{} (replayed {}, epoch changed {}, unavailable {}, failed attempts {})",
                    r.attempted, r.replayed, r.epoch_changed, r.history_unavailable, r.failed
                ),
            );
            row("resume latency", opt(&r.latency_summary));
        }
        if let Some(cpu) = self.gateway_cpu_secs {
            row("gateway CPU", format!("{cpu:.2} s"));
        }
        if let (Some(us), Some(user), Some(sys)) = (
            self.cpu_us_per_delivery,
            self.user_cpu_us_per_delivery,
            self.system_cpu_us_per_delivery,
        ) {
            row(
                "gateway CPU / delivery",
                format!("{us:.2} µs (user {user:.2}, system {sys:.2})"),
            );
        }
        if let Some(rss) = self.gateway_rss_bytes {
            row("gateway RSS", format!("{:.1} MiB", rss as f64 / 1048576.0));
        }
        row(
            "verdict",
            if self.is_clean() {
                "clean".into()
            } else {
                "NOT CLEAN".into()
            },
        );
        t
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

/// Runs a scenario; `progress` shows progress bars on stderr.
pub async fn run(
    scenario: &'static str,
    load: &Load,
    extra: Extra,
    progress: bool,
) -> anyhow::Result<Report> {
    let target = &load.target;
    anyhow::ensure!(!target.urls.is_empty(), "give at least one --url");
    anyhow::ensure!(load.canvases > 0, "--canvases must be at least 1");
    anyhow::ensure!(load.publishers > 0, "--publishers must be at least 1");
    anyhow::ensure!(
        load.rate > 0.0 || matches!(extra, Extra::ClosedLoop { .. }),
        "--rate must be positive"
    );
    if matches!(extra, Extra::Resume { .. }) || matches!(extra, Extra::ClosedLoop { .. }) {
        anyhow::ensure!(
            load.kind.durable(),
            "{scenario} needs a durable kind (draw or chat)"
        );
    }
    let encoding = if target.msgpack {
        Encoding::Msgpack
    } else {
        Encoding::Json
    };
    let canvases: Arc<Vec<CanvasId>> = Arc::new(
        (0..load.canvases)
            .map(|i| CanvasId::new(&format!("{}-{i}", target.canvas_prefix)))
            .collect::<Result<_, _>>()
            .context("canvas prefix")?,
    );
    let members = load.canvases * load.members;
    let mut specs: Vec<Spec> = (0..members)
        .map(|i| Spec {
            url: i,
            user: format!("lt-m{i}"),
            canvas: i % load.canvases,
        })
        .collect();
    specs.extend((0..load.publishers).map(|j| Spec {
        url: members + j,
        user: payload::publisher_user(j),
        canvas: j % load.canvases,
    }));
    let ramp = bar(
        specs.len() as u64,
        progress,
        "connecting {bar:40} {pos}/{len} {per_sec} {elapsed}",
    );
    let (mut opened, open) = open_all(target, encoding, &canvases, specs, &ramp).await?;
    ramp.finish_and_clear();
    let publishers: Vec<Option<Opened>> = opened.split_off(members);
    let geometry = opened
        .iter()
        .chain(publishers.iter())
        .flatten()
        .map(|o| Geometry {
            width: o.joined.width,
            height: o.joined.height,
            palette: o.joined.palette_size,
        })
        .next()
        .with_context(|| {
            format!(
                "no connection opened: {}",
                open.first_error.as_deref().unwrap_or("?")
            )
        })?;

    let atomics = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
    let sh = Arc::new(Shared {
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
        deliveries: Recorder::new(64),
        stop: CancellationToken::new(),
    });

    // Members: what each expects from here on.
    let urls = Arc::new(target.urls.clone());
    let secret = Arc::new(target.secret.clone());
    let mut member_tasks = JoinSet::new();
    let mut expected_start: Vec<(usize, u64)> = Vec::new();
    let mut signals: Vec<Arc<Notify>> = Vec::new();
    for (i, o) in opened.into_iter().enumerate() {
        let Some(o) = o else { continue };
        let canvas = i % load.canvases;
        sh.canvas_end[canvas].fetch_max(o.joined.seq + 1, Ordering::Relaxed);
        let per_canvas = sh.publishers_of(canvas).count();
        let streams = if load.kind.durable() {
            vec![Stream::starting_at(o.joined.seq + 1)]
        } else {
            (0..per_canvas.max(1))
                .map(|_| Stream::starting_at(0))
                .collect()
        };
        expected_start.push((canvas, o.joined.seq + 1));
        let m = Member {
            canvas,
            url: i,
            user: format!("lt-m{i}"),
            streams,
            last: vec![0; per_canvas.max(1)],
            replay_until: o.joined.seq,
            epoch: o.joined.epoch.clone(),
            shard: i,
        };
        let signal = matches!(extra, Extra::Resume { .. }).then(|| Arc::new(Notify::new()));
        if let Some(s) = &signal {
            signals.push(s.clone());
        }
        member_tasks.spawn(member_task(
            o.ws,
            m,
            sh.clone(),
            urls.clone(),
            secret.clone(),
            signal,
        ));
    }

    // Publishers.
    let duration = Duration::from_secs_f64(load.duration_secs.max(0.0));
    let cpu_before = cpu_time(&target.pids)?;
    let started = Instant::now();
    let until = started + duration;
    let (period, window) = match extra {
        Extra::ClosedLoop { window } => (None, window.max(1)),
        _ => (
            Some(Duration::from_secs_f64(load.publishers as f64 / load.rate)),
            0,
        ),
    };
    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    for (j, o) in publishers.into_iter().enumerate() {
        let Some(o) = o else { continue };
        let (sink, stream) = o.ws.split();
        let permits = Arc::new(Semaphore::new(window));
        readers.spawn(publisher_reader(stream, j, sh.clone(), permits.clone()));
        writers.spawn(publisher_writer(
            sink,
            j,
            sh.clone(),
            period,
            permits,
            until,
        ));
    }
    let churn = match extra {
        Extra::Churn { per_sec } => Some(tokio::spawn(churn_task(
            target.clone(),
            encoding,
            canvases.clone(),
            per_sec,
            until,
        ))),
        _ => None,
    };
    let flood = match extra {
        Extra::Flood {
            connections,
            per_sec,
        } => Some(tokio::spawn(crate::flood::run(
            target.urls[0].clone(),
            Arc::new(target.secret.to_string()),
            encoding,
            CanvasId::new(&format!("{}-flood", target.canvas_prefix))?,
            connections,
            per_sec,
            until.into(),
        ))),
        _ => None,
    };
    let resumer = match extra {
        Extra::Resume { per_sec } if !signals.is_empty() => {
            let stop = sh.stop.clone();
            Some(tokio::spawn(async move {
                let mut ticker =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec.max(0.001)));
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = ticker.tick() => {}
                    }
                    if Instant::now() >= until {
                        break;
                    }
                    let i = rand::rng().random_range(0..signals.len());
                    signals[i].notify_one();
                }
            }))
        }
        _ => None,
    };

    // Publish, showing progress.
    let pbar = bar(
        duration.as_secs().max(1),
        progress,
        "publishing {bar:40} {pos}/{len}s {msg}",
    );
    let mut last_delivered = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500).min(until - Instant::now())).await;
        let delivered = sh.delivered.load(Ordering::Relaxed);
        pbar.set_position(started.elapsed().as_secs());
        pbar.set_message(format!(
            "sent {} acked {} delivered {} (+{}/0.5 s)",
            Shared::sum(&sh.sent),
            Shared::sum(&sh.acked),
            delivered,
            delivered - last_delivered
        ));
        last_delivered = delivered;
    }
    let mut sinks = Vec::new();
    let mut writer_errors: Vec<String> = Vec::new();
    while let Some(w) = writers.join_next().await {
        match w? {
            Ok(sink) => sinks.push(sink),
            Err(e) => writer_errors.push(format!("publisher stopped: {e:#}")),
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();
    pbar.finish_and_clear();

    // Drain: every send answered, then every expected delivery received.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(load.drain_secs.max(0.0));
    let answered = || Shared::sum(&sh.acked) + Shared::sum(&sh.rejected) >= Shared::sum(&sh.sent);
    while !answered() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let expected = || -> u64 {
        if load.kind.durable() {
            expected_start
                .iter()
                .map(|&(c, start)| {
                    sh.canvas_end[c]
                        .load(Ordering::Relaxed)
                        .saturating_sub(start)
                })
                .sum()
        } else {
            expected_start
                .iter()
                .map(|&(c, _)| {
                    sh.publishers_of(c)
                        .map(|p| {
                            sh.sent[p].load(Ordering::Relaxed)
                                - sh.rejected[p].load(Ordering::Relaxed)
                        })
                        .sum::<u64>()
                })
                .sum()
        }
    };
    let mut drained = answered();
    if load.kind.durable() {
        while drained && sh.delivered.load(Ordering::Relaxed) < expected() {
            if Instant::now() >= drain_deadline {
                drained = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        // Coalesced cursors make the count unknowable in advance: wait for
        // deliveries to stop (every gateway sends a connection's last
        // position within 1/EASEL_CURSOR_HZ, well under the quiet period).
        let quiet = Duration::from_millis(500);
        let mut last = sh.delivered.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while drained && since.elapsed() < quiet {
            if Instant::now() >= drain_deadline {
                drained = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = sh.delivered.load(Ordering::Relaxed);
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
    }
    let run_secs = started.elapsed().as_secs_f64();
    let cpu_after = cpu_time(&target.pids)?;
    let rss = if target.pids.is_empty() {
        None
    } else {
        let mut total = 0;
        for &pid in &target.pids {
            total += proc::rss_bytes(pid)?;
        }
        Some(total)
    };
    let churn = match churn {
        Some(h) => {
            let mut c = h.await?;
            c.cycles_per_sec = c.cycles as f64 / publish_secs.max(1e-9);
            Some(c)
        }
        None => None,
    };
    let flood = match flood {
        Some(h) => Some(h.await?),
        None => None,
    };
    sh.stop.cancel();
    if let Some(r) = resumer {
        r.await?;
    }

    let mut correctness = Counts::default();
    let (mut resyncs, mut disconnects) = (0, 0);
    let mut resume = ResumeStats::default();
    while let Some(m) = member_tasks.join_next().await {
        let m = m?;
        correctness.add(m.counts);
        resyncs += m.resyncs;
        disconnects += m.disconnects;
        resume.merge(m.resumes);
    }
    let mut ack_latency = Latency::default();
    let mut errors = BTreeMap::new();
    while let Some(p) = readers.join_next().await {
        let p = p?;
        ack_latency.merge(&p.ack_latency);
        for (k, v) in p.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    drop(sinks);
    for e in writer_errors {
        *errors.entry(e).or_default() += 1;
    }

    let mut connect = open.connect;
    let mut join = open.join;
    let latency = sh.deliveries.total();
    let deliveries = sh.delivered.load(Ordering::Relaxed);
    let sent = Shared::sum(&sh.sent);
    let acked = Shared::sum(&sh.acked);
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let per_delivery = |part: fn(&CpuTime) -> f64| {
        cpu.as_ref()
            .filter(|_| deliveries > 0)
            .map(|c| part(c) * 1e6 / deliveries as f64)
    };
    resume.latency_summary = resume.latency.summary();
    let report = Report {
        scenario,
        kind: load.kind,
        encoding,
        gateways: target.urls.len(),
        canvases: load.canvases,
        members: load.members,
        publishers: load.publishers,
        target_rate: period.map(|_| load.rate),
        publish_secs,
        connections_opened: connect.len() as u64,
        connections_failed: open.failed,
        first_error: open.first_error,
        connect: connect.summary(),
        join: join.summary(),
        sent,
        sent_per_sec: sent as f64 / publish_secs.max(1e-9),
        acked,
        acked_per_sec: acked as f64 / publish_secs.max(1e-9),
        rejected: Shared::sum(&sh.rejected),
        errors,
        ack_latency: ack_latency.summary(),
        deliveries,
        // Coalesced cursors were never meant to arrive.
        expected_deliveries: expected() - correctness.coalesced,
        deliveries_per_sec: deliveries as f64 / run_secs.max(1e-9),
        latency: latency.summary(),
        correctness,
        resyncs,
        member_disconnects: disconnects,
        drained,
        churn,
        resume: matches!(extra, Extra::Resume { .. }).then_some(resume),
        flood,
        gateway_cpu_secs: cpu.map(|c| c.total()),
        cpu_us_per_delivery: per_delivery(|c| c.total()),
        user_cpu_us_per_delivery: per_delivery(|c| c.user),
        system_cpu_us_per_delivery: per_delivery(|c| c.system),
        gateway_rss_bytes: rss,
        timeline: sh.deliveries.timeline(),
        distribution: latency.buckets(),
    };
    if let Some(path) = &load.plot {
        crate::plot::write_svg(path, &report)?;
    }
    Ok(report)
}
