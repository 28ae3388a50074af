//! The bus between gateway nodes and the local fan-out to connections.
//!
//! A [`Fanout`] combines a [`Hub`] (which connections on this node are
//! members of which canvas, and how to hand them an event) with a bus that
//! moves events between nodes: Redis pub/sub in a cluster, or an in-memory
//! loop in standalone mode and tests. Both buses expose the same operations,
//! so the gateway never knows which one it runs on.

mod backoff;
mod control;
mod hub;
mod log;
pub mod objects;
mod online;
pub mod presence;
mod queue;
mod redis_bus;

pub use backoff::Backoff;
pub use control::ConnControl;
pub use hub::{Hub, HubStats, JoinGate, Member, client_frame, frame_for, visible_event};
pub use log::{
    History, HistoryFuture, PixelChange, Position, Restored, Snapshot, pack_cell, unpack_cells,
};
pub use objects::{Change, ObjectChange, ObjectOp, Objects, Refusal};
pub use queue::{Full, Outbound, Stamped};
pub use redis_bus::{RedisSettings, snapshot_packed};

use bytes::Bytes;
use shared::CanvasId;
use shared::busframe::{self, BusHeader};
use shared::protocol::ServerMessage;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis is unavailable")]
    Redis(#[source] redis::RedisError),
    #[error("no redis connection could be taken from the pool")]
    Pool(#[source] deadpool_redis::PoolError),
    #[error("redis pool could not be created")]
    CreatePool(#[source] deadpool_redis::CreatePoolError),
    #[error("the bus did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the bus subscriber has stopped")]
    Stopped,
    #[error("the bus is disconnected from redis")]
    Disconnected,
    #[error(
        "{backlog} events are waiting to be persisted; durable writes are refused until the persister catches up"
    )]
    BacklogFull { backlog: u64 },
    #[error("the event could not be framed")]
    Frame(#[source] busframe::BusFrameError),
    #[error("the canvas history could not be loaded for a rebuild: {0}")]
    History(String),
    #[error("presence details could not be encoded")]
    Presence(#[source] serde_json::Error),
    #[error("{0}")]
    Refused(objects::Refusal),
}

/// How long presence keys live without a refresh (ms): well past the
/// entries' own expiry, so a canvas nobody is on is eventually forgotten.
fn presence_key_ttl(expiry: u64, now: u64) -> u64 {
    expiry.saturating_sub(now).max(1000) * 4
}

/// Which bus a [`Fanout`] runs on.
enum Bus {
    /// Standalone: a published event is dispatched straight to the local hub;
    /// durable events go through the in-memory log first.
    Memory(log::MemoryLog),
    /// Cluster: events go through Redis pub/sub.
    Redis(redis_bus::RedisBus),
}

/// The bus plus the local hub.
pub struct Fanout {
    hub: Arc<Hub>,
    bus: Bus,
    /// Presence when standalone (on Redis it lives there).
    presence: presence::MemoryPresence,
    online: online::MemoryOnline,
    /// How long a join waits for Redis to confirm the canvas subscription.
    subscribe_timeout: Duration,
}

impl Fanout {
    /// A single-node fan-out with no Redis, keeping at most
    /// `log_max_events` events per canvas.
    pub fn memory(node: &str, log_max_events: usize) -> Self {
        Fanout {
            hub: Arc::new(Hub::new(node, None)),
            bus: Bus::Memory(log::MemoryLog::new(log_max_events)),
            presence: presence::MemoryPresence::default(),
            online: online::MemoryOnline::default(),
            subscribe_timeout: Duration::from_secs(5),
        }
    }

    /// A fan-out over Redis. Checks that Redis answers, then starts the
    /// node's pub/sub task, which runs (reconnecting as needed) until
    /// `shutdown` is cancelled.
    pub async fn redis(
        node: &str,
        settings: RedisSettings,
        shutdown: CancellationToken,
    ) -> Result<Self, BusError> {
        let subscribe_timeout = settings.subscribe_timeout;
        let (bus, hub) = redis_bus::RedisBus::start(node, settings, shutdown).await?;
        Ok(Fanout {
            hub,
            bus: Bus::Redis(bus),
            presence: presence::MemoryPresence::default(),
            online: online::MemoryOnline::default(),
            subscribe_timeout,
        })
    }

    /// Rebuild canvases from `history` when Redis has lost them (Redis bus only).
    pub fn with_history(mut self, history: Arc<dyn History>) -> Self {
        if let Bus::Redis(r) = &mut self.bus {
            r.history = Some(history);
        }
        self
    }

    /// `"redis"` or `"memory"`, for logs.
    pub fn mode(&self) -> &'static str {
        match self.bus {
            Bus::Memory(_) => "memory",
            Bus::Redis(_) => "redis",
        }
    }

    /// The local hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Whether the bus can deliver events right now (the pub/sub connection
    /// is up); always true for the in-memory bus.
    pub fn is_connected(&self) -> bool {
        match &self.bus {
            Bus::Memory(_) => true,
            Bus::Redis(r) => r.is_connected(),
        }
    }

    /// Adds a member to a canvas and returns once this node receives the
    /// canvas's events (for Redis: once the subscription is confirmed).
    ///
    /// On failure the member has been removed again.
    pub async fn join(&self, canvas: &CanvasId, member: Member) -> Result<(), BusError> {
        // Fail fast rather than make the client wait out the timeout; the
        // error tells it to retry, by which time the bus may be back.
        if !self.is_connected() {
            return Err(BusError::Disconnected);
        }
        let conn = member.conn;
        let Some(confirmed) = self.hub.add(canvas, member) else {
            return Ok(());
        };
        let outcome = match tokio::time::timeout(self.subscribe_timeout, confirmed).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BusError::Stopped),
            Err(_) => Err(BusError::Timeout(self.subscribe_timeout)),
        };
        if outcome.is_err() {
            self.hub.remove(canvas, conn);
        }
        outcome
    }

    /// Removes a member from a canvas; returns whether it was a member.
    pub fn leave(&self, canvas: &CanvasId, conn: u64) -> bool {
        self.hub.remove(canvas, conn)
    }

    /// Publishes an ephemeral event (never stored, no sequence number) to
    /// every member of its canvas on every node.
    pub async fn publish(
        &self,
        canvas: &CanvasId,
        header: &BusHeader,
        event: &ServerMessage,
    ) -> Result<(), BusError> {
        let payload = busframe::encode(header, None, event).map_err(BusError::Frame)?;
        match &self.bus {
            Bus::Memory(_) => {
                self.hub.dispatch(canvas, &Bytes::from(payload));
                Ok(())
            }
            Bus::Redis(r) => r.publish(canvas, payload).await,
        }
    }

    /// Publishes a durable event in one atomic step: checks `change`
    /// against the canvas state, assigns the canvas's next sequence number,
    /// applies the change, appends the event to the canvas log and
    /// publishes it. Returns the sequence number, or `None` when the change
    /// changes nothing (a repeated like: nothing is published). On error
    /// nothing was applied.
    pub async fn publish_durable(
        &self,
        canvas: &CanvasId,
        header: &BusHeader,
        event: &ServerMessage,
        change: Option<&Change>,
    ) -> Result<Option<u64>, BusError> {
        // Only an object operation can be about fog: the gm-only header
        // (which the state picks) is framed for those alone.
        let gm_header = match change {
            Some(Change::Object(_)) => {
                let gm_header = BusHeader {
                    gm_only: true,
                    ..header.clone()
                };
                busframe::encode_header(&gm_header).map_err(BusError::Frame)?
            }
            _ => Vec::new(),
        };
        let headers = (
            busframe::encode_header(header).map_err(BusError::Frame)?,
            gm_header,
        );
        let event = busframe::encode_event(event).map_err(BusError::Frame)?;
        match &self.bus {
            Bus::Memory(log) => log
                .publish(&self.hub, canvas, (&headers.0, &headers.1), &event, change)
                .map_err(BusError::Refused),
            Bus::Redis(r) => r.publish_durable(canvas, headers, event, change).await,
        }
    }

    /// The canvas's objects (fog regions only for a gm) and the position
    /// they include, read atomically.
    pub async fn objects(
        &self,
        canvas: &CanvasId,
        gm: bool,
    ) -> Result<(Position, Vec<shared::protocol::ObjectState>), BusError> {
        match &self.bus {
            Bus::Memory(log) => Ok(log.objects(canvas, gm)),
            Bus::Redis(r) => r.objects(canvas, gm).await,
        }
    }

    /// The canvas's current position (creating its epoch if it has none).
    pub async fn position(&self, canvas: &CanvasId) -> Result<Position, BusError> {
        match &self.bus {
            Bus::Memory(log) => Ok(log.position(canvas)),
            Bus::Redis(r) => r.position(canvas).await,
        }
    }

    /// The events of a canvas with `after < seq <= until`, oldest first, at
    /// most `limit`, as bus payloads: from the canvas log, or from the
    /// durable history when the log has trimmed them. A range that does not
    /// start at `after + 1` means the older ones are gone.
    pub async fn events(
        &self,
        canvas: &CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, BusError> {
        if until <= after || limit == 0 {
            return Ok(Vec::new());
        }
        match &self.bus {
            Bus::Memory(log) => Ok(log.events(canvas, after, until, limit)),
            Bus::Redis(r) => {
                let kept = r.events(canvas, after, until, limit).await?;
                // Redis trims below what Postgres holds: a range that does
                // not start right after `after` is read from the history.
                let complete = kept.first().is_some_and(|(seq, _)| *seq == after + 1);
                match &r.history {
                    Some(history) if !complete => {
                        // Postgres has what Redis trimmed (it trims only
                        // below the persisted mark); Redis has the newest.
                        let mut stored = history
                            .events(canvas, after, until, limit)
                            .await
                            .map_err(BusError::History)?;
                        let last = stored.last().map_or(after, |(seq, _)| *seq);
                        stored.extend(kept.into_iter().filter(|(seq, _)| *seq > last));
                        stored.truncate(limit);
                        Ok(stored)
                    }
                    _ => Ok(kept),
                }
            }
        }
    }

    /// The canvas's chat events with `seq < before`, newest first, at most
    /// `limit`: the unpersisted tail from the canvas log, the rest from the
    /// durable history (or, without one, all from the log).
    pub async fn chat_before(
        &self,
        canvas: &CanvasId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, BusError> {
        if limit == 0 || before <= 1 {
            return Ok(Vec::new());
        }
        let kind = "chat";
        match &self.bus {
            Bus::Memory(log) => Ok(log.kind_before(canvas, kind, before, limit)),
            Bus::Redis(r) => match &r.history {
                None => r.kind_before(canvas, kind, before, limit, None).await,
                Some(history) => {
                    // Everything up to the mark is in the history; only the
                    // tail above it needs scanning in Redis.
                    let mark = r.persisted(canvas).await?;
                    let mut found = r
                        .kind_before(canvas, kind, before, limit, Some(mark))
                        .await?;
                    if found.len() < limit {
                        let below = before.min(mark + 1);
                        let stored = history
                            .chat_before(canvas, below, limit - found.len())
                            .await
                            .map_err(BusError::History)?;
                        found.extend(stored);
                    }
                    Ok(found)
                }
            },
        }
    }

    /// Adds (or renews) a presence entry expiring at `expiry` (ms since the
    /// epoch); true if its user had no other live entry on the canvas, and
    /// the canvas's live entries.
    pub async fn presence_enter(
        &self,
        canvas: &CanvasId,
        entry: &str,
        info: &presence::EntryInfo,
        expiry: u64,
    ) -> Result<(bool, usize), BusError> {
        let now = shared::now_ms();
        match &self.bus {
            Bus::Memory(_) => Ok(self
                .presence
                .enter(canvas, entry, info.clone(), expiry, now)),
            Bus::Redis(r) => {
                let json = serde_json::to_string(info).map_err(BusError::Presence)?;
                r.presence_enter(
                    canvas,
                    entry,
                    &json,
                    (expiry, now, presence_key_ttl(expiry, now)),
                )
                .await
            }
        }
    }

    /// Moves existing entries' expiry to `expiry` (a refresh, or the grace
    /// period on leave).
    pub async fn presence_expire(
        &self,
        entries: &[(CanvasId, String)],
        expiry: u64,
    ) -> Result<(), BusError> {
        match &self.bus {
            Bus::Memory(_) => {
                for (canvas, entry) in entries {
                    self.presence.expire_at(canvas, entry, expiry);
                }
                Ok(())
            }
            Bus::Redis(r) => {
                let now = shared::now_ms();
                r.presence_expire(entries, expiry, presence_key_ttl(expiry, now))
                    .await
            }
        }
    }

    /// Removes the canvas's expired entries; returns the users left with
    /// none (each reported by exactly one caller) and the live entries.
    pub async fn presence_sweep(
        &self,
        canvas: &CanvasId,
    ) -> Result<(Vec<String>, usize), BusError> {
        let now = shared::now_ms();
        match &self.bus {
            Bus::Memory(_) => Ok(self.presence.sweep(canvas, now)),
            Bus::Redis(r) => r.presence_sweep(canvas, now).await,
        }
    }

    /// The users with a live entry on the canvas, earliest first.
    pub async fn presence_list(
        &self,
        canvas: &CanvasId,
    ) -> Result<Vec<shared::protocol::PresentUser>, BusError> {
        let now = shared::now_ms();
        match &self.bus {
            Bus::Memory(_) => Ok(self.presence.list(canvas, now)),
            Bus::Redis(r) => r.presence_list(canvas, now).await,
        }
    }

    /// Adds connection `entry` of `user` to the cluster's online registry,
    /// expiring at `expiry` (ms since the epoch). Returns whether the user
    /// had no live connection anywhere (it just came online), and its open
    /// connections across the cluster, this one included: those not in the
    /// `grace` period after a close.
    pub async fn online_enter(
        &self,
        user: &str,
        entry: &str,
        expiry: u64,
        grace: Duration,
    ) -> Result<(bool, usize), BusError> {
        let now = shared::now_ms();
        let open_after = now + grace.as_millis() as u64;
        match &self.bus {
            Bus::Memory(_) => Ok(self.online.enter(user, entry, expiry, now, open_after)),
            Bus::Redis(r) => {
                r.online_enter(
                    user,
                    entry,
                    (expiry, now, open_after),
                    presence_key_ttl(expiry, now),
                )
                .await
            }
        }
    }

    /// Moves existing online entries' (user, entry) expiry to `expiry`.
    pub async fn online_expire(
        &self,
        entries: &[(String, String)],
        expiry: u64,
    ) -> Result<(), BusError> {
        match &self.bus {
            Bus::Memory(_) => {
                self.online.expire_at(entries, expiry);
                Ok(())
            }
            Bus::Redis(r) => {
                let now = shared::now_ms();
                r.online_expire(entries, expiry, presence_key_ttl(expiry, now))
                    .await
            }
        }
    }

    /// Removes lapsed online entries; the users now offline, each reported
    /// to exactly one caller.
    pub async fn online_sweep(&self) -> Result<Vec<String>, BusError> {
        let now = shared::now_ms();
        match &self.bus {
            Bus::Memory(_) => Ok(self.online.sweep(now)),
            Bus::Redis(r) => r.online_sweep(now).await,
        }
    }

    /// Whether each user is online.
    pub async fn online_check(&self, users: &[String]) -> Result<Vec<bool>, BusError> {
        let now = shared::now_ms();
        match &self.bus {
            Bus::Memory(_) => Ok(self.online.check(users, now)),
            Bus::Redis(r) => r.online_check(users, now).await,
        }
    }

    /// The canvas's pixels and the position they include, read atomically.
    pub async fn snapshot(
        &self,
        canvas: &CanvasId,
        bits: u8,
        cell_count: usize,
    ) -> Result<Snapshot, BusError> {
        match &self.bus {
            Bus::Memory(log) => Ok(log.snapshot(canvas, cell_count)),
            Bus::Redis(r) => r.snapshot(canvas, bits, cell_count).await,
        }
    }
}
