//! The durable canvas log: sequence numbers, canvas state and the event
//! stream, in Redis (cluster) or in memory (standalone).
//!
//! A durable operation is one atomic step: take the canvas's next sequence
//! number, apply the change to the canvas state, append the event to the
//! canvas log, and publish it. In Redis that step is `publish.lua` (loaded
//! once, invoked by SHA), which publishes on the canvas channel itself; in
//! memory it runs under the log's lock and hands the event to [`Deliver`].
//! Either way every member sees a canvas's events in sequence order.

mod cells;
mod checked;
mod evict;
mod memory;
mod rebuild;
mod redis;

pub use self::redis::snapshot_packed;
pub use cells::{pack_cell, unpack_cells};
pub use evict::evict_canvas;
pub use memory::MemoryLog;

use crate::StoreError;
use crate::objects::Change;
use crate::pool::RedisPool;
use bytes::Bytes;
use shared::CanvasId;
use shared::busframe::{self, BusHeader};
use shared::protocol::{ObjectState, ServerMessage};
use std::sync::Arc;

/// Hands a numbered event (a bus payload) to this node's members of a
/// canvas: what Redis pub/sub does for the Redis log, done in process for
/// the memory log.
pub type Deliver = Arc<dyn Fn(&CanvasId, &Bytes) + Send + Sync>;

/// How the Redis log bounds its streams.
#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    /// Events kept per canvas stream (approximate, trimmed by Redis), when
    /// no persister runs (`backlog_limit` 0).
    pub log_max_events: usize,
    /// With a persister: refuse durable writes while this many events await
    /// it, and leave trimming to it. 0: no persister, trim by length.
    pub backlog_limit: usize,
    /// Ack a durable write only once this many replicas have it (Redis
    /// `WAIT`, within the pool's timeout). 0: once the primary has it.
    pub ack_replicas: usize,
}

/// A fresh epoch id: unique enough to tell two histories apart.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A canvas's place in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The last sequence number assigned (0 before the first event).
    pub seq: u64,
    /// The history's epoch; a new one starts when the history is lost.
    pub epoch: String,
}

/// A client's name for one durable operation: a resend under the same key
/// within `window` is not applied again but answered as the first was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpKey {
    /// Whose key: keys are per user (and per canvas).
    pub user: String,
    /// The client's key (validated by the caller).
    pub key: String,
    /// How long the key is remembered after the operation.
    pub window: std::time::Duration,
}

impl OpKey {
    /// The key as the log stores it: `<user>\x1f<key>` (user ids and keys
    /// hold no control characters).
    pub(crate) fn field(&self) -> String {
        format!("{}\x1f{}", self.user, self.key)
    }
}

/// What a durable publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Applied and published under this sequence number.
    Applied(u64),
    /// Changed nothing (a repeated like); nothing was published.
    Unchanged,
    /// The key was used within its window: nothing was applied again; the
    /// first operation's sequence number and the object id its create made.
    Repeated { seq: u64, object: Option<String> },
}

impl Written {
    /// The sequence number the operation has, if it has one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Written::Applied(seq) | Written::Repeated { seq, .. } => Some(*seq),
            Written::Unchanged => None,
        }
    }
}

/// The canvas state change a durable operation makes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PixelChange {
    /// Bits per cell in the packed state: 5 for palettes of up to 32
    /// colours, 8 up to 256.
    pub bits: u8,
    /// Cells on the canvas (width x height).
    pub cell_count: usize,
    /// `(cell index = y * width + x, palette index)`, applied in order.
    pub cells: Vec<(u32, u8)>,
}

impl PixelChange {
    /// Bits per cell for a palette of `palette_size` colours.
    pub fn bits_for(palette_size: u16) -> u8 {
        if palette_size <= 32 { 5 } else { 8 }
    }
}

/// A page of a canvas's objects (see [`Log::objects_page`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectsPage {
    pub position: Position,
    pub objects: Vec<ObjectState>,
    /// The last id of the page when more objects follow.
    pub next: Option<String>,
}

/// A canvas's pixels and the position they include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub epoch: Option<String>,
    /// Palette index of each cell, row-major; cells never drawn are 0.
    pub cells: Vec<u8>,
}

/// A canvas's history as read back from durable storage, to rebuild Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The last sequence number the history holds.
    pub seq: u64,
    /// The cells after applying it, packed as Redis holds them.
    pub packed: Vec<u8>,
    /// The objects after applying it.
    pub objects: crate::objects::Objects,
}

/// What a [`History`] method returns.
pub type HistoryFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// Where a canvas's history can be reloaded from after Redis lost it.
pub trait History: Send + Sync {
    /// The canvas's history, or `None` if it has none.
    fn load<'a>(&'a self, canvas: &'a CanvasId) -> HistoryFuture<'a, Option<Restored>>;

    /// The last sequence number the history holds for the canvas (0 for
    /// none): Redis must never be behind it.
    fn last_seq<'a>(&'a self, canvas: &'a CanvasId) -> HistoryFuture<'a, u64>;

    /// Stored events with `after < seq <= until`, oldest first, at most
    /// `limit`, as bus payloads (for ranges Redis no longer keeps).
    fn events<'a>(
        &'a self,
        canvas: &'a CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> HistoryFuture<'a, Vec<(u64, Bytes)>>;

    /// Stored chat events with `seq < before`, newest first, at most `limit`.
    fn chat_before<'a>(
        &'a self,
        canvas: &'a CanvasId,
        before: u64,
        limit: usize,
    ) -> HistoryFuture<'a, Vec<(u64, Bytes)>>;
}

/// Whether a bus payload holds an event of `kind`.
pub fn payload_is(payload: &Bytes, kind: &str) -> bool {
    busframe::split(payload)
        .ok()
        .and_then(|parts| {
            shared::codec::decode_server(shared::codec::Encoding::Msgpack, &parts.event).ok()
        })
        .is_some_and(|msg| msg.kind() == kind)
}

/// The durable canvas log, in memory or on Redis.
pub enum Log {
    /// Standalone: one process holds every canvas.
    Memory(MemoryLog),
    /// Cluster: Redis holds the state and streams; the persister copies
    /// them to Postgres.
    Redis(self::redis::RedisLog),
}

impl Log {
    /// A log in process memory keeping `max_events` per canvas, delivering
    /// each event through `deliver`.
    pub fn memory(max_events: usize, deliver: Deliver) -> Self {
        Log::Memory(MemoryLog::new(max_events, deliver))
    }

    /// A log on Redis, rebuilding a canvas Redis lost from `history`.
    pub fn redis(
        pool: RedisPool,
        settings: LogSettings,
        history: Option<Arc<dyn History>>,
    ) -> Self {
        Log::Redis(self::redis::RedisLog::new(pool, settings, history))
    }

    /// Publishes a durable event in one atomic step: checks `change`
    /// against the canvas state, assigns the canvas's next sequence number,
    /// applies the change, appends the event to the canvas log and
    /// publishes it. Returns the sequence number, or `None` when the change
    /// changes nothing (a repeated like: nothing is published). On error
    /// nothing was applied, except after [`StoreError::Timeout`] or a
    /// connection lost mid-call (see [`StoreError::outcome_unknown`]).
    pub async fn publish_durable(
        &self,
        canvas: &CanvasId,
        header: &BusHeader,
        event: &ServerMessage,
        change: Option<&Change>,
    ) -> Result<Option<u64>, StoreError> {
        let written = self.publish_keyed(canvas, header, event, change, None);
        Ok(written.await?.seq())
    }

    /// [`Self::publish_durable`] for an operation that may carry a key: a
    /// repeat of a key remembered for the user and canvas is answered
    /// [`Written::Repeated`], in the same atomic step, before any check.
    pub async fn publish_keyed(
        &self,
        canvas: &CanvasId,
        header: &BusHeader,
        event: &ServerMessage,
        change: Option<&Change>,
        key: Option<&OpKey>,
    ) -> Result<Written, StoreError> {
        // Only an object operation can be about fog: the gm-only header
        // (which the state picks) is framed for those alone.
        let gm_header = match change {
            Some(Change::Object(_)) => {
                let gm_header = BusHeader {
                    gm_only: true,
                    ..header.clone()
                };
                busframe::encode_header(&gm_header).map_err(StoreError::Frame)?
            }
            _ => Vec::new(),
        };
        let headers = (
            busframe::encode_header(header).map_err(StoreError::Frame)?,
            gm_header,
        );
        let event = busframe::encode_event(event).map_err(StoreError::Frame)?;
        match self {
            Log::Memory(log) => log
                .publish(canvas, (&headers.0, &headers.1), &event, change, key)
                .map_err(StoreError::Refused),
            Log::Redis(r) => r.publish_durable(canvas, headers, event, change, key).await,
        }
    }

    /// The canvas's current position (creating its epoch, or rebuilding it
    /// from the history, if it has none).
    pub async fn position(&self, canvas: &CanvasId) -> Result<Position, StoreError> {
        match self {
            Log::Memory(log) => Ok(log.position(canvas)),
            Log::Redis(r) => r.position(canvas).await,
        }
    }

    /// The canvas's objects (fog regions only for a gm) and the position
    /// they include, read atomically, all of them.
    pub async fn objects(
        &self,
        canvas: &CanvasId,
        gm: bool,
    ) -> Result<(Position, Vec<ObjectState>), StoreError> {
        let page = self.objects_page(canvas, gm, None, usize::MAX).await?;
        Ok((page.position, page.objects))
    }

    /// A page of the canvas's objects in id order after `after` (fog
    /// regions only for a gm), read atomically with the position it
    /// includes, ending before the object that would take it past
    /// `budget` bytes (one object is always included); `next` is the last
    /// id when more follow.
    pub async fn objects_page(
        &self,
        canvas: &CanvasId,
        gm: bool,
        after: Option<&str>,
        budget: usize,
    ) -> Result<ObjectsPage, StoreError> {
        match self {
            Log::Memory(log) => Ok(log.objects(canvas, gm, after, budget)),
            Log::Redis(r) => r.objects(canvas, gm, after, budget).await,
        }
    }

    /// Whether `object` is a fog region (gm-only) on the canvas; false for
    /// an object that does not exist.
    pub async fn is_fog(&self, canvas: &CanvasId, object: &str) -> Result<bool, StoreError> {
        match self {
            Log::Memory(log) => Ok(log.is_fog(canvas, object)),
            Log::Redis(r) => r.is_fog(canvas, object).await,
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
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        if until <= after || limit == 0 {
            return Ok(Vec::new());
        }
        match self {
            Log::Memory(log) => Ok(log.events(canvas, after, until, limit)),
            Log::Redis(r) => r.events_or_history(canvas, after, until, limit).await,
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
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        if limit == 0 || before <= 1 {
            return Ok(Vec::new());
        }
        match self {
            Log::Memory(log) => Ok(log.kind_before(canvas, "chat", before, limit)),
            Log::Redis(r) => r.chat_before(canvas, before, limit).await,
        }
    }

    /// The canvas's pixels and the position they include, read atomically.
    pub async fn snapshot(
        &self,
        canvas: &CanvasId,
        bits: u8,
        cell_count: usize,
    ) -> Result<Snapshot, StoreError> {
        match self {
            Log::Memory(log) => Ok(log.snapshot(canvas, cell_count)),
            Log::Redis(r) => r.snapshot(canvas, bits, cell_count).await,
        }
    }
}
