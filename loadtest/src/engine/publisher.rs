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

/// Sends numbered messages until `until`: paced at `period`, or closed-loop
/// with at most `window` unanswered.
pub(super) async fn publisher_writer(
    mut sink: Sink,
    j: usize,
    sh: Arc<Shared>,
    period: Option<Duration>,
    window: Arc<Semaphore>,
    until: Instant,
) -> anyhow::Result<Sink> {
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
