//! Latency statistics: nearest-rank percentiles over raw samples (small
//! sets such as connect times) and HDR histograms for deliveries, overall and
//! per second of the run.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use std::time::Duration;

/// Latency samples, summarised on demand.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    values: Vec<Duration>,
}

impl Samples {
    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        self.values.push(d);
    }

    /// Adds all of `other`'s samples.
    pub fn merge(&mut self, other: Samples) {
        self.values.extend(other.values);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `q` quantile (0.0..=1.0) by the nearest-rank method; `None` if empty.
    pub fn quantile(&mut self, q: f64) -> Option<Duration> {
        if self.values.is_empty() {
            return None;
        }
        self.values.sort_unstable();
        let rank = (q.clamp(0.0, 1.0) * self.values.len() as f64).ceil() as usize;
        Some(self.values[rank.saturating_sub(1).min(self.values.len() - 1)])
    }

    /// p50/p95/p99/max in milliseconds.
    pub fn summary(&mut self) -> Option<Summary> {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(Summary {
            count: self.values.len() as u64,
            p50_ms: ms(self.quantile(0.50)?),
            p95_ms: ms(self.quantile(0.95)?),
            p99_ms: ms(self.quantile(0.99)?),
            max_ms: ms(self.quantile(1.0)?),
        })
    }
}

/// Percentiles of a latency distribution, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// `p50 / p95 / p99 / max` as table text.
    pub fn line(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2} ms",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

/// Highest latency a histogram tracks: one minute, in microseconds. Larger
/// values are clamped to it (and still counted).
const MAX_US: u64 = 60_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig)
        .expect("constant bounds within hdrhistogram's limits")
}

/// A latency histogram in microseconds (three significant digits).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { hist: histogram(3) }
    }
}

impl Latency {
    /// Records one latency in microseconds (at least 1, at most a minute).
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_US));
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The `q` quantile in milliseconds, `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    /// p50/p95/p99/max, `None` when empty.
    pub fn summary(&self) -> Option<Summary> {
        Some(Summary {
            count: self.count(),
            p50_ms: self.quantile_ms(0.50)?,
            p95_ms: self.quantile_ms(0.95)?,
            p99_ms: self.quantile_ms(0.99)?,
            max_ms: self.hist.max() as f64 / 1000.0,
        })
    }

    /// Counts per bucket for a distribution plot: `(upper bound ms, count)`
    /// over logarithmic buckets (four per power of ten) from 10 µs.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut lower = 0u64;
        let mut exp = 1.0f64; // 10^1 µs
        while lower <= self.hist.max() {
            let upper = 10f64.powf(exp).round() as u64;
            let n = self.hist.count_between(lower, upper.saturating_sub(1));
            out.push((upper as f64 / 1000.0, n));
            lower = upper;
            exp += 0.25;
        }
        out
    }
}

/// One second of a run: how many deliveries and their latency.
#[derive(Debug, Clone, Serialize)]
pub struct SecondStats {
    pub second: u64,
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Records delivery latencies from many tasks at once: the whole run and
/// each second of it. Tasks pick a shard by their index so they rarely meet
/// on a lock.
#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug, Default)]
struct Shard {
    total: Latency,
    per_second: Vec<Histogram<u64>>,
}

impl Recorder {
    /// A recorder with `shards` independent locks.
    pub fn new(shards: usize) -> Self {
        Recorder {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
        }
    }

    /// Records a latency of `us` observed at `second` of the run by task `task`.
    pub fn record(&self, task: usize, second: u64, us: u64) {
        let mut shard = self.shards[task % self.shards.len()].lock();
        shard.total.record_us(us);
        let second = second as usize;
        if shard.per_second.len() <= second {
            shard.per_second.resize_with(second + 1, || histogram(2));
        }
        shard.per_second[second].saturating_record(us.clamp(1, MAX_US));
    }

    /// The whole run's distribution.
    pub fn total(&self) -> Latency {
        let mut all = Latency::default();
        for shard in &self.shards {
            all.merge(&shard.lock().total);
        }
        all
    }

    /// Each second's count and percentiles, in order (empty seconds included).
    pub fn timeline(&self) -> Vec<SecondStats> {
        let mut merged: Vec<Histogram<u64>> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            for (i, h) in shard.per_second.iter().enumerate() {
                if merged.len() <= i {
                    merged.resize_with(i + 1, || histogram(2));
                }
                let _ = merged[i].add(h);
            }
        }
        merged
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let q = |q: f64| {
                    if h.is_empty() {
                        0.0
                    } else {
                        h.value_at_quantile(q) as f64 / 1000.0
                    }
                };
                SecondStats {
                    second: i as u64,
                    deliveries: h.len(),
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    max_ms: h.max() as f64 / 1000.0,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::default();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.summary(), None);
        for ms in (1..=100).rev() {
            s.record(Duration::from_millis(ms));
        }
        assert_eq!(s.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(s.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(s.quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(s.quantile(0.0), Some(Duration::from_millis(1)));
        let sum = s.summary().expect("samples");
        assert_eq!((sum.count, sum.p95_ms, sum.max_ms), (100, 95.0, 100.0));
    }

    #[test]
    fn histogram_quantiles_are_within_its_precision() {
        let mut l = Latency::default();
        assert_eq!(l.summary(), None);
        for us in 1..=10_000u64 {
            l.record_us(us * 10); // 10 µs .. 100 ms, uniform
        }
        let s = l.summary().expect("values");
        assert_eq!(s.count, 10_000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.01;
        assert!(close(s.p50_ms, 50.0), "{s:?}");
        assert!(close(s.p99_ms, 99.0), "{s:?}");
        assert!(close(s.max_ms, 100.0), "{s:?}");
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut l = Latency::default();
        l.record_us(0);
        l.record_us(u64::MAX);
        assert_eq!(l.count(), 2);
        assert!(l.summary().expect("values").max_ms >= 59_000.0);
    }

    #[test]
    fn recorder_merges_shards_and_seconds() {
        let r = Recorder::new(4);
        for task in 0..8 {
            r.record(task, 0, 1_000);
            r.record(task, 2, 3_000);
        }
        assert_eq!(r.total().count(), 16);
        let t = r.timeline();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].deliveries, 8);
        assert_eq!(t[1].deliveries, 0, "an empty second stays in the timeline");
        assert_eq!(t[2].deliveries, 8);
        assert!((t[2].p99_ms - 3.0).abs() < 0.05, "{:?}", t[2]);
    }

    #[test]
    fn buckets_cover_every_value_once() {
        let mut l = Latency::default();
        for us in [5, 50, 500, 5_000, 50_000, 500_000] {
            l.record_us(us);
        }
        let b = l.buckets();
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 6);
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
