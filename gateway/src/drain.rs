//! Graceful drain after SIGTERM.
//!
//! 1. The shutdown token is cancelled: `/readyz` answers 503 at once, and
//!    the gateway keeps serving, new connections included, for the drain
//!    delay, while load balancers take it out of rotation.
//! 2. [`Drain::begin`]: the listener closes and every connection gets its
//!    own moment in the drain window, drawn at random, to be closed with
//!    1012, so that the reconnects reach the other gateways spread out
//!    rather than all at once.
//! 3. Each connection flushes its queue and sends the close frame; `run`
//!    waits for them until the grace period, counted from SIGTERM, is over.

use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) struct Drain {
    /// Cancelled when connections start closing (after the delay).
    closing: CancellationToken,
    /// When closing began; set before `closing` is cancelled.
    began: OnceLock<Instant>,
    window: Duration,
    /// Keys the per-connection draw, so the order differs between runs.
    seed: std::collections::hash_map::RandomState,
}

impl Drain {
    pub fn new(window: Duration) -> Self {
        Drain {
            closing: CancellationToken::new(),
            began: OnceLock::new(),
            window,
            seed: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Starts closing connections. Idempotent.
    pub fn begin(&self) {
        self.began.get_or_init(Instant::now);
        self.closing.cancel();
    }

    /// Whether connections are being closed (the delay is over).
    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Completes when connections start closing.
    pub async fn closing(&self) {
        self.closing.cancelled().await;
    }

    /// Completes at connection `conn`'s moment to close: its fraction of
    /// the window after closing began. The same `conn` always gets the
    /// same moment, so this can be called afresh on every loop iteration.
    pub async fn turn(&self, conn: u64) {
        self.closing.cancelled().await;
        if let Some(at) = self.turn_at(conn) {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Connection `conn`'s moment to close, once closing has begun (for a
    /// caller that keeps its own timer; see [`Drain::turn`]).
    pub fn turn_at(&self, conn: u64) -> Option<Instant> {
        if !self.is_closing() {
            return None;
        }
        let began = *self.began.get()?;
        Some(began + self.window.mul_f64(self.fraction(conn)))
    }

    /// A uniform draw in [0, 1) for `conn`.
    fn fraction(&self, conn: u64) -> f64 {
        (self.seed.hash_one(conn) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_stable_and_spread_over_the_window() {
        let d = Drain::new(Duration::from_secs(10));
        let draws: Vec<f64> = (0..10_000).map(|c| d.fraction(c)).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        assert_eq!(d.fraction(7), d.fraction(7));
        // Ten deciles, each holding about a tenth of the draws.
        let mut deciles = [0u32; 10];
        for f in &draws {
            deciles[(f * 10.0) as usize] += 1;
        }
        for (i, n) in deciles.iter().enumerate() {
            assert!((800..1200).contains(n), "decile {i}: {n}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn turns_wait_for_closing_then_for_their_moment() {
        let d = std::sync::Arc::new(Drain::new(Duration::from_secs(10)));
        let conn = (0..).find(|c| d.fraction(*c) > 0.5).unwrap_or(0);
        let waiting = tokio::spawn({
            let d = d.clone();
            async move { d.turn(conn).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished(), "closed before the drain began");
        let began = Instant::now();
        d.begin();
        waiting
            .await
            .expect("the waiting task ends without panicking");
        let waited = began.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(10),
            "waited {waited:?} for a fraction of {} of the window",
            d.fraction(conn)
        );
    }
}
