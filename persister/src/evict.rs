//! Cold canvases leave Redis. Every quarter of the idle time (at most a
//! minute) the evictor walks the canvases Redis holds (their meta hashes)
//! and notes when each one's `seq` last changed. A canvas whose `seq` has
//! not moved for `EASEL_EVICT_IDLE_SECS`, with everything persisted, gets
//! its snapshot stored in Postgres and is then evicted by one script that
//! checks again that it is unchanged, persisted, and that nobody is on it
//! (`store::evict_canvas`). The gateways rebuild it from that snapshot on
//! its next use, under a new epoch.
//!
//! Replicas may run this at once: the script's checks make a second
//! eviction a no-op.

use crate::metrics::Metrics;
use crate::store::upsert_snapshot;
use ::store::managed::Managed as Redis;
use deadpool_postgres::Pool;
use shared::{CanvasId, keys};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Canvases whose meta hashes one pipeline reads.
const CHUNK: usize = 500;

pub(crate) struct Evictor {
    idle: Duration,
    redis: Redis,
    pool: Pool,
    metrics: Metrics,
    /// Per meta key: the `seq` last seen and since when.
    seen: HashMap<String, (u64, Instant)>,
}

impl Evictor {
    pub(crate) fn new(idle: Duration, redis: Redis, pool: Pool, metrics: Metrics) -> Self {
        Evictor {
            idle,
            redis,
            pool,
            metrics,
            seen: HashMap::new(),
        }
    }

    /// Passes until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let every = (self.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(err) = self.pass().await {
                self.metrics.errors.with_label_values(&["redis"]).inc();
                tracing::warn!(error = %err, "looking for cold canvases failed");
            }
        }
    }

    /// One walk over the canvases in Redis; evicts the cold ones.
    async fn pass(&mut self) -> redis::RedisResult<()> {
        let metas = self.metas().await?;
        let now = Instant::now();
        let mut cold = Vec::new();
        for chunk in metas.chunks(CHUNK) {
            let marks = self.marks(chunk).await?;
            for (key, (seq, persisted)) in chunk.iter().zip(marks) {
                let seq = seq.unwrap_or(0);
                let since = self.seen.entry(key.clone()).or_insert((seq, now));
                if since.0 != seq {
                    *since = (seq, now);
                } else if persisted.unwrap_or(0) >= seq && now.duration_since(since.1) >= self.idle
                {
                    cold.push((key.clone(), seq));
                }
            }
        }
        let present: HashSet<&String> = metas.iter().collect();
        self.seen.retain(|key, _| present.contains(key));
        self.metrics.redis_canvases.set(metas.len() as i64);
        for (key, seq) in cold {
            if let Some(canvas) = canvas_of_meta(&key) {
                self.evict(&key, &canvas, seq).await;
            }
        }
        Ok(())
    }

    /// `(seq, persisted)` of each meta key: one pipeline, or on a cluster
    /// (where a pipeline's keys share a slot) one call per key, all at once.
    async fn marks(&self, chunk: &[String]) -> redis::RedisResult<Vec<(Option<u64>, Option<u64>)>> {
        let hmget = |key: &String| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(key).arg("seq").arg("persisted");
            cmd
        };
        if self.redis.is_cluster() {
            let calls = chunk.iter().map(|key| {
                let mut conn = self.redis.clone();
                let cmd = hmget(key);
                async move { cmd.query_async(&mut conn).await }
            });
            return futures_util::future::try_join_all(calls).await;
        }
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.add_command(hmget(key));
        }
        pipe.query_async(&mut self.redis.clone()).await
    }

    /// Every canvas meta key in Redis.
    async fn metas(&mut self) -> redis::RedisResult<Vec<String>> {
        let pattern = format!("{}:{{c:*}}:meta", keys::PREFIX);
        ::store::managed::scan_keys(&mut self.redis, &pattern).await
    }

    /// Stores the canvas's snapshot at `seq`, then evicts it if it is
    /// still cold.
    async fn evict(&mut self, key: &str, canvas: &CanvasId, seq: u64) {
        if seq > 0 {
            let (taken, epoch, cells) = match ::store::snapshot_packed(&mut self.redis, canvas)
                .await
            {
                Ok(s) => s,
                Err(err) => {
                    self.metrics.errors.with_label_values(&["redis"]).inc();
                    tracing::warn!(%canvas, error = %err, "reading a snapshot before eviction failed");
                    return;
                }
            };
            if taken != seq {
                return; // written to meanwhile: not cold
            }
            let epoch = epoch.unwrap_or_default();
            if let Err(err) =
                upsert_snapshot(&self.pool, canvas.as_str(), seq as i64, &epoch, &cells).await
            {
                self.metrics.errors.with_label_values(&["postgres"]).inc();
                tracing::warn!(%canvas, error = %err, "storing a snapshot before eviction failed; not evicted");
                return;
            }
        }
        match ::store::evict_canvas(&mut self.redis, canvas, seq).await {
            Ok(true) => {
                self.seen.remove(key);
                self.metrics.canvases_evicted.inc();
                tracing::info!(%canvas, seq, "cold canvas evicted from redis");
            }
            // Someone is on it, or it changed: it is not cold after all.
            Ok(false) => {
                self.seen.insert(key.to_owned(), (seq, Instant::now()));
            }
            Err(err) => {
                self.metrics.errors.with_label_values(&["redis"]).inc();
                tracing::warn!(%canvas, error = %err, "evicting a canvas failed");
            }
        }
    }
}

/// The canvas a meta key belongs to.
fn canvas_of_meta(key: &str) -> Option<CanvasId> {
    let prefix = format!("{}:{{c:", keys::PREFIX);
    let id = key.strip_prefix(&prefix)?.strip_suffix("}:meta")?;
    CanvasId::new(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_map_back_to_canvases() {
        let canvas = CanvasId::new("lobby-1").expect("a valid id");
        assert_eq!(canvas_of_meta(&keys::canvas_meta(&canvas)), Some(canvas));
        assert_eq!(canvas_of_meta("easel:{c:lobby}:log"), None);
    }
}
