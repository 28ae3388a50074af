//! The events the server fans out to a canvas's members and channels.

use super::*;
use serde::{Deserialize, Serialize};

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Author {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `draw` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct DrawEvent {
    pub canvas: CanvasId,
    /// The canvas's sequence number of this event: gapless and increasing
    /// per canvas. Always present on delivery; absent only inside the bus
    /// frame, whose own sequence field is authoritative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    /// Server time of ingest, milliseconds since the Unix epoch.
    pub ts: u64,
    pub pixels: Vec<Pixel>,
}

/// `cursor` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CursorEvent {
    pub canvas: CanvasId,
    pub author: Author,
    pub ts: u64,
    pub x: f32,
    pub y: f32,
}

/// `highlight` event: where to point (a position or a user) and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct HighlightEvent {
    pub canvas: CanvasId,
    pub author: Author,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub duration_ms: u32,
}

/// `notification`: `data` is the backend's JSON, passed through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Notification {
    pub data: serde_json::Value,
    pub ts: u64,
}

/// `announcement`: text for everyone, rendered as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Announcement {
    pub text: String,
    pub ts: u64,
}

/// `notice`: a backend's JSON for a canvas's members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Notice {
    pub canvas: CanvasId,
    /// Set when the server API published it durably: it is numbered and
    /// kept in the history like any durable event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub data: serde_json::Value,
    pub ts: u64,
}

/// `canvases_changed`: `change` is `created`, `updated` or `deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CanvasesChanged {
    pub canvas: CanvasId,
    pub change: String,
    pub ts: u64,
}

/// `access_changed`: the connection's access to a canvas it had joined
/// changed (a membership was removed or changed, the canvas's visibility
/// changed, or it was deleted). The connection is no longer a member of
/// the canvas; `role` is its role now, `none` when it may not see the
/// canvas any more (join again to go on with another role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AccessChanged {
    pub canvas: CanvasId,
    pub role: crate::auth::Role,
    pub ts: u64,
}

/// `user_joined` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct UserJoined {
    pub canvas: CanvasId,
    pub user: PresentUser,
}

/// `user_left` event: the user's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct UserLeft {
    pub canvas: CanvasId,
    pub user: String,
}

/// `chat` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ChatEvent {
    pub canvas: CanvasId,
    /// See [`DrawEvent::seq`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
    pub text: String,
}

/// Why a `resync` was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ResyncReason {
    /// The gateway lost and re-established its Redis subscription; events
    /// published in between were not delivered.
    BusReconnected,
    /// A stream resumed after events that are no longer kept (SSE with
    /// `Last-Event-ID`): reload the snapshot.
    HistoryUnavailable,
}

/// `resync` notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Resync {
    pub canvas: CanvasId,
    pub reason: ResyncReason,
}

/// `object_created` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ObjectCreated {
    pub canvas: CanvasId,
    /// See [`DrawEvent::seq`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
    pub object: ObjectState,
}

/// `object_updated` event: the properties set (`null`: removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ObjectUpdated {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
    pub object: String,
    pub props: Props,
}

/// `object_moved` event: the new position, and the new size if it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ObjectMoved {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
    pub object: String,
    pub x: f64,
    pub y: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<f64>,
}

/// `object_deleted` / `object_liked` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ObjectEvent {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
    pub object: String,
}

/// `cleared` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Cleared {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
}

/// `hidden` event: a sequence number whose event is not for this connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Hidden {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `activity` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ActivityEvent {
    pub canvas: CanvasId,
    pub user: Author,
    pub activity: Activity,
}

/// `user_online` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct UserOnline {
    pub user: Author,
    pub ts: u64,
}

/// `user_offline` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct UserOffline {
    pub user: String,
    pub ts: u64,
}
