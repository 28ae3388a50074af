//! The server's direct replies: welcome, pong, ack results, errors.

use super::*;
use serde::{Deserialize, Serialize};

/// The authenticated user, as shown to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct UserInfo {
    /// The token's `sub`.
    pub id: String,
    /// The token's `name`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Limits the server enforces on this connection, announced in `welcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AnnouncedLimits {
    pub max_message_bytes: u32,
    pub max_canvases: u32,
    pub max_pixels_per_draw: u32,
    pub max_chat_chars: u32,
    pub ping_interval_ms: u64,
    pub idle_timeout_ms: u64,
    /// This connection's buckets by operation class (`pixels`, `chat`,
    /// `cursors`, `objects`).
    #[serde(default)]
    pub rate_limits: std::collections::BTreeMap<String, AnnouncedRate>,
    /// The user's buckets on this gateway, shared by its connections and
    /// REST requests, by operation class.
    #[serde(default)]
    pub user_rate_limits: std::collections::BTreeMap<String, AnnouncedRate>,
    /// Cursor updates published per second per connection and canvas (0:
    /// every update).
    #[serde(default)]
    pub cursor_hz: u32,
}

/// A token bucket: tokens added per second, and how many it holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AnnouncedRate {
    pub per_sec: f64,
    pub burst: f64,
}

/// `welcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Welcome {
    /// Unique across the cluster: `<node>-<n>`.
    pub connection_id: String,
    pub user: UserInfo,
    /// The gateway node serving this connection.
    pub node: String,
    /// Server clock, milliseconds since the Unix epoch.
    pub server_time: u64,
    pub encoding: Encoding,
    pub limits: AnnouncedLimits,
}

/// `pong`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Pong {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The `ts` of the `ping`, unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    pub server_time: u64,
}

/// `ack`: the command with this `id` succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Ack {
    pub id: RequestId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AckResult>,
}

/// What a successful command returns, when it returns something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(untagged)]
pub enum AckResult {
    /// Result of `join`.
    Joined(Joined),
    /// Result of `history` (before `Published`: untagged decoding tries the
    /// variants in order, and a page also has a `seq`).
    History(HistoryPage),
    /// Result of `objects` (before `Published`, as `History`).
    Objects(ObjectsPage),
    /// Result of a durable operation (`draw`, `chat`).
    Published(Published),
    /// Result of `presence`.
    Presence(PresenceList),
    /// Result of `chat_history`.
    Chat(ChatPage),
}

/// A page of chat messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ChatPage {
    pub canvas: CanvasId,
    /// Each a `chat` event as it was delivered, with its `seq`.
    pub messages: Vec<ChatEvent>,
    /// The `before` to ask for older messages; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
}

/// A page of durable events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct HistoryPage {
    pub canvas: CanvasId,
    pub epoch: String,
    /// The canvas's position when the page was read.
    pub seq: u64,
    /// False when events after `since` are no longer kept anywhere.
    pub complete: bool,
    /// The `since` to ask for the next page.
    pub next_since: u64,
    pub events: Vec<ServerMessage>,
}

/// The sequence number a durable operation was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Published {
    pub seq: u64,
    /// The new object's id (`object_create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// The canvas a `join` entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Joined {
    pub canvas: CanvasId,
    pub width: u32,
    pub height: u32,
    pub palette_size: u16,
    pub echo: bool,
    /// The canvas's position at the join: every durable event after the
    /// ack has a greater `seq`, starting at `seq + 1`, with no gap.
    pub seq: u64,
    /// Changes whenever the canvas's history in Redis is lost; sequence
    /// numbers are only comparable within one epoch.
    pub epoch: String,
    /// Present when the join asked to resume (`since`): what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeOutcome>,
    /// This connection's role on the canvas: what it may do there.
    pub role: crate::role::Role,
    /// The users on the canvas, this one included; empty on canvases with
    /// more connections than the gateway lists (ask with `presence`).
    #[serde(default)]
    pub presence: Vec<PresentUser>,
    /// Connections on the canvas, on every gateway.
    #[serde(default)]
    pub presence_count: u32,
}

/// The outcome of a join with `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ResumeOutcome {
    /// The events after `since` up to the ack's `seq` follow the ack, in
    /// order, then live events: nothing missed, nothing twice.
    Replayed,
    /// The canvas's epoch is not the one given: its history was lost.
    /// Reload the snapshot; live events after the ack's `seq` follow.
    EpochChanged,
    /// The events after `since` are no longer kept. Reload the snapshot;
    /// live events after the ack's `seq` follow.
    HistoryUnavailable,
    /// `since` is beyond the canvas's last sequence number (a client bug or
    /// a different history). Reload the snapshot.
    Ahead,
}

impl ResumeOutcome {
    /// Every outcome, for metrics that start each label at zero.
    pub const ALL: [ResumeOutcome; 4] = [
        ResumeOutcome::Replayed,
        ResumeOutcome::EpochChanged,
        ResumeOutcome::HistoryUnavailable,
        ResumeOutcome::Ahead,
    ];

    /// The wire name, also a bounded metric label.
    pub fn name(self) -> &'static str {
        match self {
            ResumeOutcome::Replayed => "replayed",
            ResumeOutcome::EpochChanged => "epoch_changed",
            ResumeOutcome::HistoryUnavailable => "history_unavailable",
            ResumeOutcome::Ahead => "ahead",
        }
    }
}

/// `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ErrorReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub code: ErrorCode,
    /// Human-readable detail; not stable, do not match on it.
    pub message: String,
    /// With `E004`: how long to wait before retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}
