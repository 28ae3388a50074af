//! What a load run measured, its cleanliness verdict and its table.

use crate::payload::Kind;
use crate::stats::{Samples, SecondStats, Summary};
use crate::track::Counts;
use serde::Serialize;
use shared::codec::Encoding;
use std::collections::BTreeMap;

/// Connect/join/leave/disconnect cycles on top of the load.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ChurnStats {
    pub cycles: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub cycles_per_sec: f64,
    #[serde(skip)]
    pub latency: Samples,
    pub cycle_summary: Option<Summary>,
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
    pub latency: Samples,
    pub latency_summary: Option<Summary>,
}

impl ResumeStats {
    pub fn merge(&mut self, o: ResumeStats) {
        self.attempted += o.attempted;
        self.replayed += o.replayed;
        self.epoch_changed += o.epoch_changed;
        self.history_unavailable += o.history_unavailable;
        self.ahead += o.ahead;
        self.failed += o.failed;
        self.latency.merge(o.latency);
    }
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
    /// Every Redis process's CPU (with `--redis-pid`) per delivery.
    pub redis_cpu_us_per_delivery: Option<f64>,
    pub gateway_rss_bytes: Option<u64>,
    /// Events the publishers' own connections received (not checked).
    pub to_publishers: u64,
    /// Strokes sent (`--strokes-per-sec`), how many members should have
    /// received (each stroke to every member of its canvas) and did.
    pub strokes_sent: u64,
    pub strokes_expected: u64,
    pub strokes_delivered: u64,
    /// Gateway CPU per event written to any connection (deliveries,
    /// strokes, and events to publishers).
    pub cpu_us_per_event: Option<f64>,
    /// The floor's CPU per write measured just before the run (`--floor`).
    pub floor_cpu_us_per_write: Option<f64>,
    /// Frames per socket write, from the gateways' metrics (with
    /// `--admin`): above 1 when writes carry several.
    pub frames_per_write: Option<f64>,
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
            && self.strokes_delivered == self.strokes_expected
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
        self.extra_rows(&mut row);
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
        if let Some(floor) = self.floor_cpu_us_per_write {
            let ratio = |us: Option<f64>| us.map_or("-".into(), |us| format!("{:.2}x", us / floor));
            row(
                "floor CPU / write",
                format!(
                    "{floor:.2} µs (delivery {}, event {})",
                    ratio(self.cpu_us_per_delivery),
                    ratio(self.cpu_us_per_event)
                ),
            );
        }
        if let Some(us) = self.redis_cpu_us_per_delivery {
            row("redis CPU / delivery", format!("{us:.2} µs"));
        }
        if self.strokes_sent > 0 {
            row(
                "strokes sent / delivered",
                format!(
                    "{} / {} of {}",
                    self.strokes_sent, self.strokes_delivered, self.strokes_expected
                ),
            );
        }
        if self.to_publishers > 0 {
            row("events to publishers", self.to_publishers.to_string());
        }
        if let Some(us) = self.cpu_us_per_event.filter(|_| self.to_publishers > 0) {
            row("gateway CPU / event", format!("{us:.2} µs"));
        }
        if let Some(n) = self.frames_per_write {
            row("frames / socket write", format!("{n:.2}"));
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

    /// The rows of what ran beside the load: flood, churn, resumes.
    fn extra_rows(&self, row: &mut impl FnMut(&str, String)) {
        let opt = |s: &Option<Summary>| s.as_ref().map_or("-".into(), Summary::line);
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
    }
}
