//! The commands a client sends, and the values they carry.

use super::*;
use serde::{Deserialize, Serialize};

/// `history`: the durable events after `since`, at most `limit` (1 to 1000,
/// default 100). The reply is an `ack` whose result holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub since: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `chat_history`: the chat messages with `seq < before` (default: all up
/// to now), newest `limit` of them (1 to 1000, default 50). The reply is an
/// `ack` whose result holds them oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ChatHistoryRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Object properties: names to JSON values (in an update, `null` removes).
pub type Props = std::collections::BTreeMap<String, serde_json::Value>;

/// `object_create`: a new object at (`x`, `y`) of size `w` x `h` in canvas
/// coordinates. `kind` `fog` is a fog-of-war region (gm only, seen by gms
/// only). The server gives it its id (in the ack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Names this operation so a resend is not applied twice (see
    /// docs/PROTOCOL.md, "Operation keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub kind: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    #[serde(default, skip_serializing_if = "Props::is_empty")]
    pub props: Props,
}

/// `object_update`: sets each named property (`null` removes it); last
/// writer wins per property, in sequence order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Names this operation so a resend is not applied twice (see
    /// docs/PROTOCOL.md, "Operation keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub object: String,
    pub props: Props,
}

/// `object_move`: a new position, and optionally a new size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectMove {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Names this operation so a resend is not applied twice (see
    /// docs/PROTOCOL.md, "Operation keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub object: String,
    pub x: f64,
    pub y: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<f64>,
}

/// `object_delete` / `object_like`: one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Names this operation so a resend is not applied twice (see
    /// docs/PROTOCOL.md, "Operation keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub object: String,
}

/// `objects`: a page of the canvas's objects, in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// The previous page's `next_after`; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `clear`: a command about a whole canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct CanvasRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Names this operation so a resend is not applied twice (see
    /// docs/PROTOCOL.md, "Operation keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// An object as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ObjectState {
    pub id: String,
    pub kind: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    #[serde(default)]
    pub props: Props,
    /// Users who liked it.
    #[serde(default)]
    pub likes: u64,
    /// The user who created it.
    pub owner: String,
}

impl ObjectState {
    /// Fog-of-war regions are seen by gms only.
    pub fn is_fog(&self) -> bool {
        self.kind == FOG_KIND
    }
}

/// The object kind of fog-of-war regions.
pub const FOG_KIND: &str = "fog";

/// A canvas's objects and the position they include: the result of
/// `objects`: one page. Apply an object event on top when its `seq` is
/// greater than the `seq` of the page whose id range holds its object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ObjectsPage {
    pub canvas: CanvasId,
    pub seq: u64,
    pub epoch: String,
    pub objects: Vec<ObjectState>,
    /// The `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// What a user is doing on a canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ActivityState {
    /// Here and busy with nothing in particular.
    Active,
    /// Typing a chat message.
    Typing,
    /// Editing at a position or an object.
    Editing,
    /// Away from the keyboard.
    Idle,
}

/// `activity`: `editing` names where, with `x` and `y`, an `object`, or
/// both; the other states take neither.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ActivitySend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub state: ActivityState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// A user's activity on a canvas, as others see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Activity {
    pub state: ActivityState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// When it was said, ms since the Unix epoch.
    pub ts: u64,
}

/// `handshake`: the token, for clients that cannot put it in the URL or a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// A JWT signed with the configured algorithm and key.
    pub token: String,
}

/// `ping`: `ts` is the client's clock, echoed back unchanged in the `pong`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

/// `join`: subscribe this connection to a canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Join {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Also deliver this connection's own draw/cursor/chat events back to it.
    #[serde(default)]
    pub echo: bool,
    /// Resume: the last sequence number this client has applied. The events
    /// after it are replayed before live ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// The epoch `since` belongs to; a different current epoch means the
    /// history was lost and the client must reload the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// `leave`: unsubscribe this connection from a canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Leave {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
}

/// One pixel as a client sends it. Coordinates and colour are wide signed
/// integers on input so that out-of-range values get a precise `E007`
/// rather than a type error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct PixelInput {
    pub x: i64,
    pub y: i64,
    /// Palette index.
    pub color: i64,
}

/// A validated pixel: inside the canvas, colour inside the palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Pixel {
    pub x: u32,
    pub y: u32,
    /// Palette index.
    pub color: u8,
}

/// `draw`: one pixel or a batch (1 to `max_pixels_per_draw`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Draw {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Names this operation so a resend is not applied twice (see
    /// docs/PROTOCOL.md, "Operation keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub pixels: Vec<PixelInput>,
}

/// `cursor`: the user's pointer position in canvas coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct CursorMove {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub x: f64,
    pub y: f64,
}

/// `subscribe` / `unsubscribe`: a channel by name; `global` is the one
/// there is (announcements, canvas changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub channel: String,
}

/// `presence`: the users on a joined canvas; the ack carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
}

/// One user present on a canvas (with any number of connections).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct PresentUser {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: crate::role::Role,
    /// When this user's earliest connection still on the canvas joined, ms
    /// since the Unix epoch.
    pub since: u64,
    /// The user's connections on the canvas, across gateways.
    pub connections: u32,
    /// What the user last said it is doing here (its latest `activity`
    /// on any of its connections), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
}

/// The users on a canvas: the result of `presence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct PresenceList {
    pub canvas: CanvasId,
    pub users: Vec<PresentUser>,
}

/// `highlight`: points at a canvas position (`x`, `y`) or at a user
/// (`user`), exactly one of the two, for `duration_ms` (100 to 60,000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct HighlightSend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub duration_ms: u32,
}

/// `chat`: a text message (1 to 2,000 characters), rendered by clients as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ChatSend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    /// Names this operation so a resend is not applied twice (see
    /// docs/PROTOCOL.md, "Operation keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub text: String,
}
