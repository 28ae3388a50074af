//! A receiving member: what it expects, what it got, and resuming on
//! another gateway.

use super::open::{Spec, open_one};
use super::*;

use crate::report::ResumeStats;

/// A member's state: what it expects and what it received.
pub(super) struct Member {
    pub(super) canvas: usize,
    pub(super) url: usize,
    pub(super) user: String,
    /// Durable kinds: one stream of canvas sequence numbers. Cursors: one
    /// stream per publisher of the canvas.
    pub(super) streams: Vec<Stream>,
    /// Per publisher of the canvas: the last counter seen (to unwrap).
    pub(super) last: Vec<u64>,
    /// Sequence numbers up to here are replays (no latency recorded).
    pub(super) replay_until: u64,
    pub(super) epoch: String,
    /// Which recorder shard this member uses.
    pub(super) shard: usize,
}

/// What a member reports when the run ends.
#[derive(Default)]
pub(super) struct MemberOutcome {
    pub(super) counts: Counts,
    pub(super) resyncs: u64,
    pub(super) disconnects: u64,
    pub(super) resumes: ResumeStats,
}

impl Member {
    pub(super) fn observe(&mut self, sh: &Shared, ev: &Event<'_>) -> bool {
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

    pub(super) fn finish(&self, sh: &Shared) -> Counts {
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

pub(super) async fn member_task(
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
                    Ok(ev) if ev.kind == "draw" && sh.kind != Kind::Draw => {
                        sh.strokes_delivered.fetch_add(1, Ordering::Relaxed);
                    }
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
pub(super) async fn resume_member(
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
