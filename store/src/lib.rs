//! What Easel keeps besides the bus: the durable canvas log and canvas
//! state ([`Log`]), the object rules ([`objects`]), who is on a canvas
//! ([`PresenceStore`]) and who is online anywhere ([`OnlineRegistry`]).
//!
//! Each store has an in-memory implementation (standalone mode, tests) and
//! a Redis one side by side, behind one type: an enum whose methods are the
//! store's interface, so callers never know which one they run on and the
//! hot path pays no dynamic dispatch. The Redis implementations sit next to
//! their Lua scripts. Every key of one canvas shares its hash tag
//! (`shared::keys`), so each script touches one Redis Cluster slot.

mod conn;
mod error;
pub mod feed;
pub mod log;
pub mod managed;
pub mod objects;
pub mod online;
mod pool;
pub mod presence;
pub mod stream;
mod target;

pub use conn::RedisConn;
pub use error::StoreError;
pub use log::{
    Deliver, History, HistoryFuture, Log, LogSettings, ObjectsPage, OpKey, PixelChange, Position,
    Restored, Snapshot, Written, evict_canvas, pack_cell, snapshot_packed, unpack_cells,
};
pub use objects::{Change, ObjectChange, ObjectOp, Objects, Refusal};
pub use online::{Entered, OnlineRegistry};
pub use pool::{Connections, RedisPool, is_cluster_node};
pub use presence::{EntryInfo, PresenceStore};
pub use target::{cluster_builder, cluster_client, redis_client};

/// How long presence and online keys live without a refresh (ms): well
/// past the entries' own expiry, so a canvas nobody is on is eventually
/// forgotten.
pub(crate) fn key_ttl(expiry: u64, now: u64) -> u64 {
    expiry.saturating_sub(now).max(1000) * 4
}
