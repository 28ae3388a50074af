//! Percentiles over recorded samples.

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::default();
        assert_eq!(s.quantile(0.5), None);
        for ms in (1..=100).rev() {
            s.record(Duration::from_millis(ms));
        }
        assert_eq!(s.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(s.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(s.quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(s.quantile(0.0), Some(Duration::from_millis(1)));
    }
}
