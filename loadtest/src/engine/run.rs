//! A run's phases, in order: check the load, open every connection, start
//! the members and publishers (and any extra load), publish for the
//! duration, drain, then gather what every task measured into a [`Report`].

use super::member::{Member, MemberOutcome, member_task};
use super::open::{OpenStats, Opened, Spec, open_all};
use super::publisher::{Pace, PublisherOutcome, Sink, publisher_reader, publisher_writer};
use super::*;

/// Runs a scenario; `progress` shows progress bars on stderr.
pub async fn run(
    scenario: &'static str,
    load: &Load,
    extra: Extra,
    progress: bool,
) -> anyhow::Result<Report> {
    check(scenario, load, &extra)?;
    let floor = if load.floor {
        Some(crate::floor::before_run(load.members * load.canvases).await?)
    } else {
        None
    };
    let target = &load.target;
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
    let (opened, publishers, open, geometry) = connect(load, encoding, &canvases, progress).await?;
    let sh = Arc::new(Shared::new(encoding, load, geometry, &canvases));
    let members = spawn_members(opened, load, &sh, &extra);

    let duration = Duration::from_secs_f64(load.duration_secs.max(0.0));
    let cpu_before = cpu_time(&target.pids)?;
    let redis_before = cpu_time(&target.redis_pids)?;
    let writes_before = crate::scrape::frames_and_writes(&target.admins).await;
    let started = Instant::now();
    let until = started + duration;
    let (pace, window) = Pace::of(load, &extra);
    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    for (j, o) in publishers.into_iter().enumerate() {
        let Some(o) = o else { continue };
        let (sink, stream) = o.ws.split();
        let permits = Arc::new(Semaphore::new(window));
        readers.spawn(publisher_reader(stream, j, sh.clone(), permits.clone()));
        writers.spawn(publisher_writer(sink, j, sh.clone(), pace, permits, until));
    }
    let side = SideLoads::start(
        target,
        encoding,
        &canvases,
        extra,
        members.signals,
        &sh,
        until,
    )?;

    let published = publish(&sh, writers, started, until, progress).await?;
    let publish_secs = started.elapsed().as_secs_f64();
    let drained = drain(&sh, load, &members.expected_start).await;
    let measured = Measured {
        run_secs: started.elapsed().as_secs_f64(),
        publish_secs,
        cpu: match (cpu_before, cpu_time(&target.pids)?) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        },
        redis_cpu: match (redis_before, cpu_time(&target.redis_pids)?) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        },
        rss: proc::total_rss(&target.pids)?,
        writes: match (
            writes_before,
            crate::scrape::frames_and_writes(&target.admins).await,
        ) {
            (Some(b), Some(a)) => Some((a.0 - b.0, a.1 - b.1)),
            _ => None,
        },
        drained,
        period: pace.period,
    };
    let (churn, flood) = side.finish(&sh, publish_secs).await?;
    let mut gathered = gather(members.tasks, readers).await?;
    drop(published.sinks);
    for e in published.writer_errors {
        *gathered.errors.entry(e).or_default() += 1;
    }
    let expected = expected(&sh, load, &members.expected_start);
    let mut report = report(scenario, load, &sh, open, gathered, measured, expected);
    report.churn = churn;
    report.flood = flood;
    report.resume = match (extra, report.resume.take()) {
        (Extra::Resume { .. }, resume) => resume,
        _ => None,
    };
    report.floor_cpu_us_per_write = floor;
    if let Some(path) = &load.plot {
        crate::plot::write_svg(path, &report)?;
    }
    Ok(report)
}

/// Refuses a load that cannot run.
fn check(scenario: &str, load: &Load, extra: &Extra) -> anyhow::Result<()> {
    anyhow::ensure!(!load.target.urls.is_empty(), "give at least one --url");
    anyhow::ensure!(load.canvases > 0, "--canvases must be at least 1");
    anyhow::ensure!(load.publishers > 0, "--publishers must be at least 1");
    anyhow::ensure!(
        load.rate > 0.0 || matches!(extra, Extra::ClosedLoop { .. }),
        "--rate must be positive"
    );
    anyhow::ensure!(
        load.strokes_per_sec == 0.0 || (load.strokes_per_sec > 0.0 && load.kind != Kind::Draw),
        "--strokes-per-sec must be positive, beside --kind cursor or chat"
    );
    if matches!(extra, Extra::Resume { .. } | Extra::ClosedLoop { .. }) {
        anyhow::ensure!(
            load.kind.durable(),
            "{scenario} needs a durable kind (draw or chat)"
        );
    }
    Ok(())
}

/// Opens the members, then the publishers; the canvases' geometry from the
/// first that joined.
async fn connect(
    load: &Load,
    encoding: Encoding,
    canvases: &Arc<Vec<CanvasId>>,
    progress: bool,
) -> anyhow::Result<(
    Vec<Option<Opened>>,
    Vec<Option<Opened>>,
    OpenStats,
    Geometry,
)> {
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
    let (mut opened, open) = open_all(&load.target, encoding, canvases, specs, &ramp).await?;
    ramp.finish_and_clear();
    let publishers = opened.split_off(members);
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
    Ok((opened, publishers, open, geometry))
}

/// The running members, where each canvas's stream starts for them, and
/// (for `resume`) the signals that make one drop and resume.
struct Members {
    tasks: JoinSet<MemberOutcome>,
    expected_start: Vec<(usize, u64)>,
    signals: Vec<Arc<Notify>>,
}

fn spawn_members(
    opened: Vec<Option<Opened>>,
    load: &Load,
    sh: &Arc<Shared>,
    extra: &Extra,
) -> Members {
    let urls = Arc::new(load.target.urls.clone());
    let secret = Arc::new(load.target.secret.clone());
    let mut members = Members {
        tasks: JoinSet::new(),
        expected_start: Vec::new(),
        signals: Vec::new(),
    };
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
        members.expected_start.push((canvas, o.joined.seq + 1));
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
            members.signals.push(s.clone());
        }
        let task = member_task(o.ws, m, sh.clone(), urls.clone(), secret.clone(), signal);
        members.tasks.spawn(task);
    }
    members
}

/// What runs beside the publishers: churn, a flood, or resumes.
struct SideLoads {
    churn: Option<tokio::task::JoinHandle<ChurnStats>>,
    flood: Option<tokio::task::JoinHandle<crate::flood::FloodStats>>,
    resumer: Option<tokio::task::JoinHandle<()>>,
}

impl SideLoads {
    fn start(
        target: &Target,
        encoding: Encoding,
        canvases: &Arc<Vec<CanvasId>>,
        extra: Extra,
        signals: Vec<Arc<Notify>>,
        sh: &Shared,
        until: Instant,
    ) -> anyhow::Result<Self> {
        let churn = match extra {
            Extra::Churn { per_sec } => Some(tokio::spawn(super::churn::churn_task(
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
        let resumer =
            match extra {
                Extra::Resume { per_sec } if !signals.is_empty() => Some(tokio::spawn(
                    resume_members(signals, per_sec, until, sh.stop.clone()),
                )),
                _ => None,
            };
        Ok(SideLoads {
            churn,
            flood,
            resumer,
        })
    }

    /// Waits for the side loads; stops the members' resumes.
    async fn finish(
        self,
        sh: &Shared,
        publish_secs: f64,
    ) -> anyhow::Result<(Option<ChurnStats>, Option<crate::flood::FloodStats>)> {
        let churn = match self.churn {
            Some(h) => {
                let mut c = h.await?;
                c.cycles_per_sec = c.cycles as f64 / publish_secs.max(1e-9);
                Some(c)
            }
            None => None,
        };
        let flood = match self.flood {
            Some(h) => Some(h.await?),
            None => None,
        };
        sh.stop.cancel();
        if let Some(r) = self.resumer {
            r.await?;
        }
        Ok((churn, flood))
    }
}

/// Tells a random member to drop and resume, `per_sec` times a second.
async fn resume_members(
    signals: Vec<Arc<Notify>>,
    per_sec: f64,
    until: Instant,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec.max(0.001)));
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
}

/// The publishers' sinks (kept open until the end) and why any stopped.
struct Published {
    sinks: Vec<Sink>,
    writer_errors: Vec<String>,
}

/// Waits out the publishing, showing progress, then for every writer.
async fn publish(
    sh: &Shared,
    mut writers: JoinSet<anyhow::Result<Sink>>,
    started: Instant,
    until: Instant,
    progress: bool,
) -> anyhow::Result<Published> {
    let pbar = bar(
        (until - started).as_secs().max(1),
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
    let mut published = Published {
        sinks: Vec::new(),
        writer_errors: Vec::new(),
    };
    while let Some(w) = writers.join_next().await {
        match w? {
            Ok(sink) => published.sinks.push(sink),
            Err(e) => published
                .writer_errors
                .push(format!("publisher stopped: {e:#}")),
        }
    }
    pbar.finish_and_clear();
    Ok(published)
}

/// Deliveries the members should have received by now.
fn expected(sh: &Shared, load: &Load, expected_start: &[(usize, u64)]) -> u64 {
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
                        sh.sent[p].load(Ordering::Relaxed) - sh.rejected[p].load(Ordering::Relaxed)
                    })
                    .sum::<u64>()
            })
            .sum()
    }
}

/// Waits until every send is answered and every expected delivery has
/// arrived, within the drain time; whether it all came.
async fn drain(sh: &Shared, load: &Load, expected_start: &[(usize, u64)]) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(load.drain_secs.max(0.0));
    let answered = || Shared::sum(&sh.acked) + Shared::sum(&sh.rejected) >= Shared::sum(&sh.sent);
    while !answered() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !answered() {
        return false;
    }
    if load.kind.durable() {
        while sh.delivered.load(Ordering::Relaxed) < expected(sh, load, expected_start) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        return true;
    }
    // Coalesced cursors make the count unknowable in advance: wait for
    // deliveries to stop (every gateway sends a connection's last
    // position within 1/EASEL_CURSOR_HZ, well under the quiet period).
    let quiet = Duration::from_millis(500);
    let mut last = sh.delivered.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = sh.delivered.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    true
}

/// What the members and publishers' readers measured.
struct Gathered {
    correctness: Counts,
    resyncs: u64,
    disconnects: u64,
    resume: ResumeStats,
    ack_latency: Latency,
    errors: BTreeMap<String, u64>,
}

async fn gather(
    mut members: JoinSet<MemberOutcome>,
    mut readers: JoinSet<PublisherOutcome>,
) -> anyhow::Result<Gathered> {
    let mut g = Gathered {
        correctness: Counts::default(),
        resyncs: 0,
        disconnects: 0,
        resume: ResumeStats::default(),
        ack_latency: Latency::default(),
        errors: BTreeMap::new(),
    };
    while let Some(m) = members.join_next().await {
        let m = m?;
        g.correctness.add(m.counts);
        g.resyncs += m.resyncs;
        g.disconnects += m.disconnects;
        g.resume.merge(m.resumes);
    }
    while let Some(p) = readers.join_next().await {
        let p = p?;
        g.ack_latency.merge(&p.ack_latency);
        for (k, v) in p.errors {
            *g.errors.entry(k).or_default() += v;
        }
    }
    Ok(g)
}

/// Timing and resources of the run.
struct Measured {
    run_secs: f64,
    publish_secs: f64,
    cpu: Option<CpuTime>,
    /// Redis's CPU over the same window.
    redis_cpu: Option<CpuTime>,
    rss: Option<u64>,
    /// The gateways' frames written and socket writes over the run.
    writes: Option<(f64, f64)>,
    drained: bool,
    /// The publishers' pacing (none: closed loop).
    period: Option<Duration>,
}

fn report(
    scenario: &'static str,
    load: &Load,
    sh: &Shared,
    open: OpenStats,
    mut g: Gathered,
    m: Measured,
    expected: u64,
) -> Report {
    let (mut connect, mut join) = (open.connect, open.join);
    let latency = sh.deliveries.total();
    let deliveries = sh.delivered.load(Ordering::Relaxed);
    let to_publishers = sh.to_publishers.load(Ordering::Relaxed);
    let strokes_sent = sh.strokes_sent.load(Ordering::Relaxed);
    let strokes_delivered = sh.strokes_delivered.load(Ordering::Relaxed);
    // Every frame a gateway wrote for the load: to members and publishers.
    let events = deliveries + to_publishers + strokes_delivered;
    let (sent, acked) = (Shared::sum(&sh.sent), Shared::sum(&sh.acked));
    let per_delivery = |part: fn(&CpuTime) -> f64| {
        m.cpu
            .as_ref()
            .filter(|_| deliveries > 0)
            .map(|c| part(c) * 1e6 / deliveries as f64)
    };
    g.resume.latency_summary = g.resume.latency.summary();
    Report {
        scenario,
        kind: load.kind,
        encoding: sh.encoding,
        gateways: load.target.urls.len(),
        canvases: load.canvases,
        members: load.members,
        publishers: load.publishers,
        target_rate: m.period.map(|_| load.rate),
        publish_secs: m.publish_secs,
        connections_opened: connect.len() as u64,
        connections_failed: open.failed,
        first_error: open.first_error,
        connect: connect.summary(),
        join: join.summary(),
        sent,
        sent_per_sec: sent as f64 / m.publish_secs.max(1e-9),
        acked,
        acked_per_sec: acked as f64 / m.publish_secs.max(1e-9),
        rejected: Shared::sum(&sh.rejected),
        errors: g.errors,
        ack_latency: g.ack_latency.summary(),
        deliveries,
        // Coalesced cursors were never meant to arrive.
        expected_deliveries: expected - g.correctness.coalesced,
        deliveries_per_sec: deliveries as f64 / m.run_secs.max(1e-9),
        latency: latency.summary(),
        correctness: g.correctness,
        resyncs: g.resyncs,
        member_disconnects: g.disconnects,
        drained: m.drained,
        churn: None,
        resume: Some(g.resume),
        flood: None,
        gateway_cpu_secs: m.cpu.map(|c| c.total()),
        cpu_us_per_delivery: per_delivery(|c| c.total()),
        user_cpu_us_per_delivery: per_delivery(|c| c.user),
        system_cpu_us_per_delivery: per_delivery(|c| c.system),
        redis_cpu_us_per_delivery: m
            .redis_cpu
            .filter(|_| deliveries > 0)
            .map(|c| c.total() * 1e6 / deliveries as f64),
        gateway_rss_bytes: m.rss,
        to_publishers,
        strokes_sent,
        strokes_expected: strokes_sent * load.members as u64,
        strokes_delivered,
        cpu_us_per_event: m
            .cpu
            .filter(|_| events > 0)
            .map(|c| c.total() * 1e6 / events as f64),
        floor_cpu_us_per_write: None,
        frames_per_write: m
            .writes
            .filter(|&(_, writes)| writes > 0.0)
            .map(|(frames, writes)| frames / writes),
        timeline: sh.deliveries.timeline(),
        distribution: latency.buckets(),
    }
}
