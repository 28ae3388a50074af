//! The persister's loop: discover canvas logs, read them through a consumer
//! group, commit batches to Postgres, then acknowledge and advance the
//! persisted mark.
//!
//! Exactly once, by construction: an entry is acknowledged only after the
//! transaction holding it committed, and inserts are idempotent by
//! (canvas, seq). A crash between commit and acknowledgement leaves the
//! entry pending; it is read again (by this consumer on restart, or claimed
//! by another after `claim_idle`) and its insert does nothing.

use crate::metrics::Metrics;
use crate::store::{self, Row};
use ::store::managed::Managed as Redis;
use deadpool_postgres::Pool;
use redis::streams::{StreamId, StreamReadReply};
use shared::backoff::Backoff;
use shared::busframe;
use shared::codec::{self, Encoding};
use shared::{CanvasId, keys};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The consumer group every persister replica joins on every canvas log.
pub const GROUP: &str = "persister";

static WATERMARK: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("watermark.lua")));

/// Loop state.
pub struct Worker {
    pub settings: crate::config::Settings,
    pub pool: Pool,
    /// For blocking reads only (a blocked connection serves nothing else).
    pub reader: Redis,
    /// For everything else.
    pub ops: Redis,
    pub metrics: Metrics,
    /// Known canvas logs and the persisted mark at which each was last snapshotted.
    streams: BTreeMap<String, CanvasState>,
    /// Whether this consumer's own pending entries (from before a restart) were read.
    own_pending_done: bool,
    /// The event kinds queued for the webhook (none without one).
    hooked: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct CanvasState {
    last_snapshot: u64,
}

type Entries = Vec<(String, Vec<StreamId>)>;

/// Unpersisted events in the canvas logs one batch touched.
#[derive(Default)]
struct Backlog {
    total: i64,
    /// The largest single log's: durable writes on a canvas are refused
    /// when its own backlog reaches the gateways' limit.
    max: i64,
}

/// How long the persister waits between rounds of reads that found
/// nothing, on a Redis Cluster (where reads cannot block on many streams).
const CLUSTER_POLL: Duration = Duration::from_millis(100);

impl Worker {
    pub fn new(
        settings: crate::config::Settings,
        pool: Pool,
        reader: Redis,
        ops: Redis,
        metrics: Metrics,
    ) -> Self {
        let hooked = settings
            .webhook
            .as_ref()
            .map(|w| w.events.clone())
            .unwrap_or_default();
        Worker {
            hooked,
            settings,
            pool,
            reader,
            ops,
            metrics,
            streams: BTreeMap::new(),
            own_pending_done: false,
        }
    }

    /// Runs until `shutdown`; a batch in progress is finished first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut next_discover = Instant::now();
        let mut next_claim = Instant::now() + self.settings.claim_idle / 2;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_discover {
                if let Err(err) = self.discover().await {
                    self.metrics.errors.with_label_values(&["redis"]).inc();
                    tracing::warn!(error = %err, "discovering canvas logs failed");
                }
                next_discover = Instant::now() + self.settings.discover_interval;
            }
            if self.streams.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(next_discover.into()) => continue,
                }
            }
            let read = if Instant::now() >= next_claim {
                next_claim = Instant::now() + self.settings.claim_idle / 2;
                self.claim().await
            } else if !self.own_pending_done {
                self.read(false).await
            } else {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = self.read(true) => r,
                }
            };
            match read {
                Ok(entries) => {
                    backoff.reset();
                    if entries.iter().all(|(_, ids)| ids.is_empty()) {
                        if self.own_pending_done {
                            // Caught up: a blocking read found nothing new.
                            self.metrics.lag_seconds.set(0.0);
                        }
                        self.own_pending_done = true;
                        continue;
                    }
                    self.persist(entries, &shutdown).await;
                }
                Err(err) => {
                    self.metrics.errors.with_label_values(&["redis"]).inc();
                    tracing::warn!(error = %err, "reading canvas logs failed");
                    // A stream may have vanished (Redis lost its data): rediscover.
                    next_discover = Instant::now();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
        tracing::info!("persister worker stopped");
    }

    /// Finds canvas logs (SCAN, so nothing depends on a notification that
    /// could be lost) and joins their consumer groups.
    async fn discover(&mut self) -> redis::RedisResult<()> {
        let pattern = format!("{}:{{c:*}}:log", keys::PREFIX);
        for key in ::store::managed::scan_keys(&mut self.ops, &pattern).await? {
            if self.streams.contains_key(&key) {
                continue;
            }
            self.join_group(&key).await?;
            self.streams.insert(key, CanvasState::default());
            // New streams may hold entries this consumer had pending.
            self.own_pending_done = false;
        }
        self.metrics.streams.set(self.streams.len() as i64);
        Ok(())
    }

    /// Creates the consumer group on a canvas log unless it exists.
    async fn join_group(&mut self, key: &str) -> redis::RedisResult<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(GROUP)
            .arg("0")
            .query_async(&mut self.ops)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads new entries (`>`, blocking) or this consumer's own pending ones (`0`).
    async fn read(&mut self, new: bool) -> redis::RedisResult<Entries> {
        let keys: Vec<String> = self.streams.keys().cloned().collect();
        if self.reader.is_cluster() {
            return self.read_each(keys, new).await;
        }
        let mut out = Vec::new();
        // Many streams in one XREADGROUP, in chunks to bound the command.
        for chunk in keys.chunks(256) {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(&self.settings.consumer)
                .arg("COUNT")
                .arg(self.settings.batch_size);
            if new && keys.len() <= 256 {
                cmd.arg("BLOCK").arg(self.settings.block.as_millis() as u64);
            }
            cmd.arg("STREAMS").arg(chunk);
            for _ in chunk {
                cmd.arg(if new { ">" } else { "0" });
            }
            let reply: Option<StreamReadReply> = match cmd.query_async(&mut self.reader).await {
                Ok(r) => r,
                Err(e) if e.code() == Some("NOGROUP") => {
                    // Redis lost a stream (and its group), or the canvas
                    // was evicted (and may be in use again, with a new
                    // stream): forget the missing ones, rejoin the others.
                    for key in chunk {
                        let exists: bool = redis::cmd("EXISTS")
                            .arg(key)
                            .query_async(&mut self.ops)
                            .await?;
                        if exists {
                            self.join_group(key).await?;
                        } else {
                            self.streams.remove(key);
                        }
                    }
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(reply) = reply {
                out.extend(reply.keys.into_iter().map(|k| (k.key, k.ids)));
            }
        }
        Ok(out)
    }

    /// [`Self::read`] on a Redis Cluster, where one XREADGROUP names
    /// streams of one slot only: a read per stream, all at once, without
    /// blocking; when none had anything new, waits [`CLUSTER_POLL`] (or the
    /// block setting, if shorter) before the next round.
    async fn read_each(&mut self, keys: Vec<String>, new: bool) -> redis::RedisResult<Entries> {
        let calls = keys.iter().map(|key| {
            let mut conn = self.reader.clone();
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(&self.settings.consumer)
                .arg("COUNT")
                .arg(self.settings.batch_size)
                .arg("STREAMS")
                .arg(key)
                .arg(if new { ">" } else { "0" });
            async move {
                match cmd.query_async::<Option<StreamReadReply>>(&mut conn).await {
                    Err(e) if e.code() == Some("NOGROUP") => Ok(Err(key.clone())),
                    other => other.map(Ok),
                }
            }
        });
        let replies = futures_util::future::try_join_all(calls).await?;
        let mut out = Vec::new();
        for reply in replies {
            match reply {
                Ok(Some(reply)) => out.extend(reply.keys.into_iter().map(|k| (k.key, k.ids))),
                Ok(None) => {}
                // The stream (and its group) is gone, or was evicted and
                // made again: rejoin it if it exists, else forget it.
                Err(key) => {
                    let exists: bool = redis::cmd("EXISTS")
                        .arg(&key)
                        .query_async(&mut self.ops)
                        .await?;
                    if exists {
                        self.join_group(&key).await?;
                    } else {
                        self.streams.remove(&key);
                    }
                }
            }
        }
        if new && out.iter().all(|(_, ids)| ids.is_empty()) {
            tokio::time::sleep(CLUSTER_POLL.min(self.settings.block)).await;
        }
        Ok(out)
    }

    /// Takes over entries other replicas read but never acknowledged.
    async fn claim(&mut self) -> redis::RedisResult<Entries> {
        let keys: Vec<String> = self.streams.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            let reply: redis::RedisResult<(
                String,
                redis::streams::StreamRangeReply,
                redis::Value,
            )> = redis::cmd("XAUTOCLAIM")
                .arg(&key)
                .arg(GROUP)
                .arg(&self.settings.consumer)
                .arg(self.settings.claim_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(self.settings.batch_size)
                .query_async(&mut self.ops)
                .await;
            match reply {
                Ok((_, range, _)) if !range.ids.is_empty() => {
                    self.metrics.claimed.inc_by(range.ids.len() as u64);
                    tracing::info!(stream = %key, entries = range.ids.len(), "claimed entries of a silent replica");
                    out.push((key, range.ids));
                }
                Ok(_) => {}
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.streams.remove(&key);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Commits a batch (retrying until Postgres takes it or shutdown),
    /// then acknowledges it and advances the persisted marks.
    async fn persist(&mut self, entries: Entries, shutdown: &CancellationToken) {
        let mut epochs: HashMap<String, String> = HashMap::new();
        for (key, _) in &entries {
            if let Some(canvas) = canvas_of(key) {
                let epoch: Option<String> = redis::cmd("HGET")
                    .arg(keys::canvas_meta(&canvas))
                    .arg("epoch")
                    .query_async(&mut self.ops)
                    .await
                    .unwrap_or(None);
                epochs.insert(key.clone(), epoch.unwrap_or_default());
            }
        }
        let mut rows = Vec::new();
        let mut oldest_us = u64::MAX;
        for (key, ids) in &entries {
            let Some(canvas) = canvas_of(key) else {
                continue;
            };
            for entry in ids {
                if let Some(row) =
                    to_row(&canvas, epochs.get(key).cloned().unwrap_or_default(), entry)
                {
                    oldest_us = oldest_us.min(row.ingest_us as u64);
                    rows.push(row);
                }
            }
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let started = Instant::now();
        let committed = loop {
            match store::insert_events(&self.pool, &rows, &self.hooked).await {
                Ok(c) => break c,
                Err(err) => {
                    self.metrics.errors.with_label_values(&["postgres"]).inc();
                    tracing::warn!(error = %err, batch = rows.len(), "commit failed; keeping the batch and retrying");
                    tokio::select! {
                        // Not acknowledged: the entries stay pending for the next run.
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        };
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.batches.inc();
        self.metrics.batch_size.observe(rows.len() as f64);
        let inserted = committed.inserted;
        let diverged = committed.diverged.len() as u64;
        self.metrics.events_persisted.inc_by(inserted);
        self.metrics.events_diverged.inc_by(diverged);
        self.metrics
            .events_replayed
            .inc_by((rows.len() as u64).saturating_sub(inserted + diverged));
        for (canvas, seq) in &committed.diverged {
            tracing::error!(
                %canvas, seq,
                "diverged: this event's sequence number is stored with another payload; kept in diverged_events (see docs/OPERATIONS.md)"
            );
        }
        if oldest_us != u64::MAX {
            let age = shared::now_us().saturating_sub(oldest_us) as f64 / 1e6;
            self.metrics.lag_seconds.set(age);
        }
        let mut backlog = Backlog::default();
        for (key, ids) in &entries {
            if let Err(err) = self.acknowledge(key, ids, &mut backlog).await {
                // Committed but not acknowledged: read again later, inserted as a no-op.
                self.metrics.errors.with_label_values(&["redis"]).inc();
                tracing::warn!(stream = %key, error = %err, "acknowledging failed");
            }
        }
        self.metrics.backlog.set(backlog.total);
        self.metrics.backlog_max.set(backlog.max);
    }

    async fn acknowledge(
        &mut self,
        key: &str,
        ids: &[StreamId],
        backlog: &mut Backlog,
    ) -> redis::RedisResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let Some(canvas) = canvas_of(key) else {
            return Ok(());
        };
        let mut ack = redis::cmd("XACK");
        ack.arg(key).arg(GROUP);
        for id in ids {
            ack.arg(&id.id);
        }
        let _: i64 = ack.query_async(&mut self.ops).await?;
        let (mark, head): (u64, u64) = WATERMARK
            .key(key)
            .key(keys::canvas_meta(&canvas))
            .arg(GROUP)
            .arg(self.settings.keep_events)
            .invoke_async(&mut self.ops)
            .await?;
        let waiting = head.saturating_sub(mark) as i64;
        backlog.total += waiting;
        backlog.max = backlog.max.max(waiting);
        let due = {
            let state = self.streams.entry(key.to_owned()).or_default();
            mark >= state.last_snapshot + self.settings.snapshot_every
        };
        if due {
            self.snapshot(key, &canvas).await;
        }
        Ok(())
    }

    async fn snapshot(&mut self, key: &str, canvas: &CanvasId) {
        let taken = match ::store::snapshot_packed(&mut self.ops, canvas).await {
            Ok(s) => s,
            Err(err) => {
                self.metrics.errors.with_label_values(&["redis"]).inc();
                tracing::warn!(%canvas, error = %err, "reading a snapshot failed");
                return;
            }
        };
        let (seq, epoch, cells) = taken;
        match store::upsert_snapshot(
            &self.pool,
            canvas.as_str(),
            seq as i64,
            epoch.as_deref().unwrap_or(""),
            &cells,
        )
        .await
        {
            Ok(()) => {
                self.metrics.snapshots.inc();
                if let Some(state) = self.streams.get_mut(key) {
                    state.last_snapshot = seq;
                }
            }
            Err(err) => {
                self.metrics.errors.with_label_values(&["postgres"]).inc();
                tracing::warn!(%canvas, error = %err, "storing a snapshot failed");
            }
        }
    }
}

/// The canvas a log key belongs to.
fn canvas_of(key: &str) -> Option<CanvasId> {
    let inner = key
        .strip_prefix(keys::PREFIX)?
        .strip_prefix(":{c:")?
        .strip_suffix("}:log")?;
    CanvasId::new(inner).ok()
}

/// Turns a stream entry into a row. An entry whose event cannot be decoded
/// is still stored (kind `undecodable`): never drop data, never block.
fn to_row(canvas: &CanvasId, epoch: String, entry: &StreamId) -> Option<Row> {
    let (seq, bytes) = ::store::stream::entry(entry)?;
    let (kind, author, ingest_us) = match busframe::split(&bytes) {
        Ok(parts) => match codec::decode_server(Encoding::Msgpack, &parts.event) {
            // Every event keeps its author (draws, chat, objects, clears).
            Ok(msg) => (
                msg.kind().to_owned(),
                msg.author().map(|a| a.id.clone()),
                parts.header.ingest_us as i64,
            ),
            Err(_) => (
                "undecodable".to_owned(),
                None,
                parts.header.ingest_us as i64,
            ),
        },
        Err(_) => ("undecodable".to_owned(), None, 0),
    };
    Some(Row {
        canvas_id: canvas.as_str().to_owned(),
        seq: i64::try_from(seq).ok()?,
        epoch,
        kind,
        author_id: author,
        ingest_us,
        payload: bytes.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_map_back_to_canvases() {
        let c = CanvasId::new("a-b.c").expect("valid");
        assert_eq!(canvas_of(&keys::canvas_log(&c)), Some(c));
        assert_eq!(canvas_of("easel:{c:x}:meta"), None);
        assert_eq!(canvas_of("other"), None);
    }
}
