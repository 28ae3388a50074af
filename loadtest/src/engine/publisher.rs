//! Publishers: a writer paced (or windowed) and a reader of acks.

use super::*;

/// A publisher's sending half.
pub(super) type Sink = futures_util::stream::SplitSink<Ws, Message>;

/// What a publisher reports.
#[derive(Default)]
pub(super) struct PublisherOutcome {
    pub(super) ack_latency: Latency,
    pub(super) errors: BTreeMap<String, u64>,
}

/// Reads a publisher's replies until the run stops.
pub(super) async fn publisher_reader(
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
            Some(Ok(
                ServerMessage::Draw(_) | ServerMessage::Cursor(_) | ServerMessage::Chat(_),
            )) => {
                sh.to_publishers.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    out
}

/// How a publisher paces what it sends.
#[derive(Clone, Copy)]
pub(super) struct Pace {
    /// Between numbered messages (none: closed loop, on the window).
    pub(super) period: Option<Duration>,
    /// Between strokes (none: no strokes).
    pub(super) strokes: Option<Duration>,
}

impl Pace {
    /// Each publisher's pace for this load, and its window (closed loop).
    pub(super) fn of(load: &Load, extra: &Extra) -> (Pace, usize) {
        let publishers = load.publishers.max(1) as f64;
        let strokes = (load.strokes_per_sec > 0.0)
            .then(|| Duration::from_secs_f64(publishers / load.strokes_per_sec));
        let (period, window) = match extra {
            Extra::ClosedLoop { window } => (None, (*window).max(1)),
            _ => (Some(Duration::from_secs_f64(publishers / load.rate)), 0),
        };
        (Pace { period, strokes }, window)
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    t
}

/// Sends numbered messages until `until`: paced, or closed-loop with at
/// most `window` unanswered; and strokes beside them if asked.
pub(super) async fn publisher_writer(
    mut sink: Sink,
    j: usize,
    sh: Arc<Shared>,
    pace: Pace,
    window: Arc<Semaphore>,
    until: Instant,
) -> anyhow::Result<Sink> {
    let canvas = &sh.canvases[j % sh.canvases.len()];
    let mut ticker = pace.period.map(ticker);
    let mut strokes = pace.strokes.map(|p| {
        // Publishers' strokes start spread over one period, not together.
        let offset = p.mul_f64(j as f64 / sh.sent.len().max(1) as f64);
        tokio::time::interval_at(tokio::time::Instant::now() + offset, p)
    });
    let mut stroke_n = j as u64;
    let deadline = tokio::time::Instant::from_std(until);
    let mut n = 0u64;
    loop {
        let ready = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => window.acquire().await.map(|p| p.forget()).unwrap_or(()),
            }
        };
        let stroke_due = async {
            match strokes.as_mut() {
                Some(t) => t.tick().await,
                None => std::future::pending().await,
            }
        };
        let stroke = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = sh.stop.cancelled() => break,
            _ = ready => false,
            _ = stroke_due => true,
        };
        if Instant::now() >= until {
            break;
        }
        if stroke {
            let msg = client::frame(sh.encoding, &payload::stroke(canvas, stroke_n, sh.geometry))?;
            stroke_n += sh.sent.len() as u64;
            sink.send(msg).await?;
            sh.strokes_sent.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let msg = client::frame(sh.encoding, &sh.kind.command(canvas, n, n, sh.geometry))?;
        sh.mark_sent(j, n);
        sink.send(msg).await?;
        n += 1;
        sh.sent[j].store(n, Ordering::Relaxed);
    }
    Ok(sink)
}
