//! Every message of the Easel protocol, in both directions.
//!
//! Messages are JSON objects (or MessagePack maps) with a `type` field and the
//! message's own fields beside it. Client commands may carry an `id`; every
//! command that does gets exactly one reply with that id: an `ack` or an
//! `error`. docs/PROTOCOL.md shows an example of each.

use crate::codec::Encoding;
use crate::error::ErrorCode;
use crate::ids::{CanvasId, RequestId};
use serde::{Deserialize, Serialize};

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Authenticates a connection that gave no token in the URL or header.
    Handshake(Handshake),
    /// Application-level keepalive; answered with `pong`.
    Ping(Ping),
    /// Joins a canvas: start receiving its events.
    Join(Join),
    /// Leaves a canvas: stop receiving its events.
    Leave(Leave),
    /// Sets one pixel or a batch of pixels.
    Draw(Draw),
    /// Moves this user's cursor on a canvas (ephemeral).
    Cursor(CursorMove),
    /// Sends a chat message to a canvas.
    Chat(ChatSend),
    /// Asks for a range of a joined canvas's durable events (gap repair).
    History(HistoryRequest),
    /// Asks for a joined canvas's chat messages before a sequence number.
    ChatHistory(ChatHistoryRequest),
    /// Points everyone on a canvas at a position or a user for a while
    /// (a mention; ephemeral).
    Highlight(HighlightSend),
    /// Asks for the users on a joined canvas.
    Presence(PresenceRequest),
    /// Puts an object (tile, token, shape, fog region) on a canvas.
    ObjectCreate(ObjectCreate),
    /// Sets or removes some of an object's properties.
    ObjectUpdate(ObjectUpdate),
    /// Moves (and may resize) an object.
    ObjectMove(ObjectMove),
    /// Removes an object.
    ObjectDelete(ObjectRef),
    /// Likes an object (once per user).
    ObjectLike(ObjectRef),
    /// Asks for a joined canvas's objects and the position they include.
    Objects(CanvasRequest),
    /// Clears a canvas: every pixel and object (gm).
    Clear(CanvasRequest),
    /// Says what this user is doing on a canvas (ephemeral; also shown in
    /// the presence list).
    Activity(ActivitySend),
    /// Starts receiving a channel (`global`).
    Subscribe(ChannelRequest),
    /// Stops receiving a channel.
    Unsubscribe(ChannelRequest),
}

impl ClientMessage {
    /// Every [`ClientMessage::kind`], for metrics and documentation checks.
    pub const KINDS: [&'static str; 21] = [
        "handshake",
        "ping",
        "join",
        "leave",
        "draw",
        "cursor",
        "chat",
        "history",
        "chat_history",
        "highlight",
        "presence",
        "object_create",
        "object_update",
        "object_move",
        "object_delete",
        "object_like",
        "objects",
        "clear",
        "activity",
        "subscribe",
        "unsubscribe",
    ];

    /// The client's request id, if it gave one.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientMessage::Handshake(m) => m.id.as_ref(),
            ClientMessage::Ping(m) => m.id.as_ref(),
            ClientMessage::Join(m) => m.id.as_ref(),
            ClientMessage::Leave(m) => m.id.as_ref(),
            ClientMessage::Draw(m) => m.id.as_ref(),
            ClientMessage::Cursor(m) => m.id.as_ref(),
            ClientMessage::Chat(m) => m.id.as_ref(),
            ClientMessage::History(m) => m.id.as_ref(),
            ClientMessage::ChatHistory(m) => m.id.as_ref(),
            ClientMessage::Highlight(m) => m.id.as_ref(),
            ClientMessage::Presence(m) => m.id.as_ref(),
            ClientMessage::ObjectCreate(m) => m.id.as_ref(),
            ClientMessage::ObjectUpdate(m) => m.id.as_ref(),
            ClientMessage::ObjectMove(m) => m.id.as_ref(),
            ClientMessage::ObjectDelete(m) | ClientMessage::ObjectLike(m) => m.id.as_ref(),
            ClientMessage::Objects(m) | ClientMessage::Clear(m) => m.id.as_ref(),
            ClientMessage::Activity(m) => m.id.as_ref(),
            ClientMessage::Subscribe(m) | ClientMessage::Unsubscribe(m) => m.id.as_ref(),
        }
    }

    /// The canvas a command names, for commands that name one.
    pub fn canvas(&self) -> Option<&CanvasId> {
        match self {
            ClientMessage::Handshake(_)
            | ClientMessage::Ping(_)
            | ClientMessage::Subscribe(_)
            | ClientMessage::Unsubscribe(_) => None,
            ClientMessage::Join(m) => Some(&m.canvas),
            ClientMessage::Leave(m) => Some(&m.canvas),
            ClientMessage::Draw(m) => Some(&m.canvas),
            ClientMessage::Cursor(m) => Some(&m.canvas),
            ClientMessage::Chat(m) => Some(&m.canvas),
            ClientMessage::History(m) => Some(&m.canvas),
            ClientMessage::ChatHistory(m) => Some(&m.canvas),
            ClientMessage::Highlight(m) => Some(&m.canvas),
            ClientMessage::Presence(m) => Some(&m.canvas),
            ClientMessage::ObjectCreate(m) => Some(&m.canvas),
            ClientMessage::ObjectUpdate(m) => Some(&m.canvas),
            ClientMessage::ObjectMove(m) => Some(&m.canvas),
            ClientMessage::ObjectDelete(m) | ClientMessage::ObjectLike(m) => Some(&m.canvas),
            ClientMessage::Objects(m) | ClientMessage::Clear(m) => Some(&m.canvas),
            ClientMessage::Activity(m) => Some(&m.canvas),
        }
    }

    /// The message type as a bounded label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Handshake(_) => "handshake",
            ClientMessage::Ping(_) => "ping",
            ClientMessage::Join(_) => "join",
            ClientMessage::Leave(_) => "leave",
            ClientMessage::Draw(_) => "draw",
            ClientMessage::Cursor(_) => "cursor",
            ClientMessage::Chat(_) => "chat",
            ClientMessage::History(_) => "history",
            ClientMessage::ChatHistory(_) => "chat_history",
            ClientMessage::Highlight(_) => "highlight",
            ClientMessage::Presence(_) => "presence",
            ClientMessage::ObjectCreate(_) => "object_create",
            ClientMessage::ObjectUpdate(_) => "object_update",
            ClientMessage::ObjectMove(_) => "object_move",
            ClientMessage::ObjectDelete(_) => "object_delete",
            ClientMessage::ObjectLike(_) => "object_like",
            ClientMessage::Objects(_) => "objects",
            ClientMessage::Clear(_) => "clear",
            ClientMessage::Activity(_) => "activity",
            ClientMessage::Subscribe(_) => "subscribe",
            ClientMessage::Unsubscribe(_) => "unsubscribe",
        }
    }
}

/// `history`: the durable events after `since`, at most `limit` (1 to 1000,
/// default 100). The reply is an `ack` whose result holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub object: String,
    pub props: Props,
}

/// `object_move`: a new position, and optionally a new size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMove {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub object: String,
    pub x: f64,
    pub y: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<f64>,
}

/// `object_delete` / `object_like`: one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub object: String,
}

/// `objects` / `clear`: a command about a whole canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
}

/// An object as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
/// `objects`. Apply object events with a greater `seq` on top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectsPage {
    pub canvas: CanvasId,
    pub seq: u64,
    pub epoch: String,
    pub objects: Vec<ObjectState>,
}

/// What a user is doing on a canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// A JWT signed with the configured algorithm and key.
    pub token: String,
}

/// `ping`: `ts` is the client's clock, echoed back unchanged in the `pong`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

/// `join`: subscribe this connection to a canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leave {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
}

/// One pixel as a client sends it. Coordinates and colour are wide signed
/// integers on input so that out-of-range values get a precise `E007`
/// rather than a type error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelInput {
    pub x: i64,
    pub y: i64,
    /// Palette index.
    pub color: i64,
}

/// A validated pixel: inside the canvas, colour inside the palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pixel {
    pub x: u32,
    pub y: u32,
    /// Palette index.
    pub color: u8,
}

/// `draw`: one pixel or a batch (1 to `max_pixels_per_draw`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draw {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub pixels: Vec<PixelInput>,
}

/// `cursor`: the user's pointer position in canvas coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub channel: String,
}

/// `presence`: the users on a joined canvas; the ack carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
}

/// One user present on a canvas (with any number of connections).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresentUser {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: crate::auth::Role,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceList {
    pub canvas: CanvasId,
    pub users: Vec<PresentUser>,
}

/// `highlight`: points at a canvas position (`x`, `y`) or at a user
/// (`user`), exactly one of the two, for `duration_ms` (100 to 60,000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub canvas: CanvasId,
    pub text: String,
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message after authentication.
    Welcome(Welcome),
    /// Reply to `ping`.
    Pong(Pong),
    /// Success reply to a command that carried an `id`.
    Ack(Ack),
    /// Failure reply; carries the command's `id` when it had (and we could read) one.
    Error(ErrorReply),
    /// Pixels were drawn on a joined canvas.
    Draw(DrawEvent),
    /// A cursor moved on a joined canvas.
    Cursor(CursorEvent),
    /// A chat message on a joined canvas.
    Chat(ChatEvent),
    /// Events on a canvas may have been missed; the client should resynchronise.
    Resync(Resync),
    /// Someone points at a position or a user on a joined canvas.
    Highlight(HighlightEvent),
    /// A user's first connection joined a canvas.
    UserJoined(UserJoined),
    /// A user's last connection left a canvas (or its gateway died).
    UserLeft(UserLeft),
    /// A trusted backend's message to this user (all their connections).
    Notification(Notification),
    /// A system announcement to everyone subscribed to `global`.
    Announcement(Announcement),
    /// A trusted backend's message to a canvas's members.
    Notice(Notice),
    /// A canvas was created, changed or deleted (on `global`).
    CanvasesChanged(CanvasesChanged),
    /// An object was created.
    ObjectCreated(ObjectCreated),
    /// Some of an object's properties changed.
    ObjectUpdated(ObjectUpdated),
    /// An object moved or was resized.
    ObjectMoved(ObjectMoved),
    /// An object was removed.
    ObjectDeleted(ObjectEvent),
    /// A user liked an object (each user once): its count grew by one.
    ObjectLiked(ObjectEvent),
    /// The canvas was cleared: every pixel 0, no objects.
    Cleared(Cleared),
    /// A durable event this connection may not see (gm-only data): it
    /// holds the place of its sequence number.
    Hidden(Hidden),
    /// A user's activity changed (typing, editing, idle).
    Activity(ActivityEvent),
    /// A user's first connection anywhere in the cluster opened (on the
    /// `online` channel).
    UserOnline(UserOnline),
    /// A user's last connection anywhere closed, or its gateway died (on
    /// the `online` channel).
    UserOffline(UserOffline),
}

impl ServerMessage {
    /// The message type as a bounded label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::Pong(_) => "pong",
            ServerMessage::Ack(_) => "ack",
            ServerMessage::Error(_) => "error",
            ServerMessage::Draw(_) => "draw",
            ServerMessage::Cursor(_) => "cursor",
            ServerMessage::Chat(_) => "chat",
            ServerMessage::Resync(_) => "resync",
            ServerMessage::Highlight(_) => "highlight",
            ServerMessage::UserJoined(_) => "user_joined",
            ServerMessage::UserLeft(_) => "user_left",
            ServerMessage::Notification(_) => "notification",
            ServerMessage::Announcement(_) => "announcement",
            ServerMessage::Notice(_) => "notice",
            ServerMessage::CanvasesChanged(_) => "canvases_changed",
            ServerMessage::ObjectCreated(_) => "object_created",
            ServerMessage::ObjectUpdated(_) => "object_updated",
            ServerMessage::ObjectMoved(_) => "object_moved",
            ServerMessage::ObjectDeleted(_) => "object_deleted",
            ServerMessage::ObjectLiked(_) => "object_liked",
            ServerMessage::Cleared(_) => "cleared",
            ServerMessage::Hidden(_) => "hidden",
            ServerMessage::Activity(_) => "activity",
            ServerMessage::UserOnline(_) => "user_online",
            ServerMessage::UserOffline(_) => "user_offline",
        }
    }

    /// The canvas an event belongs to, for canvas events.
    pub fn canvas(&self) -> Option<&CanvasId> {
        match self {
            ServerMessage::Draw(e) => Some(&e.canvas),
            ServerMessage::Cursor(e) => Some(&e.canvas),
            ServerMessage::Chat(e) => Some(&e.canvas),
            ServerMessage::Resync(e) => Some(&e.canvas),
            ServerMessage::Highlight(e) => Some(&e.canvas),
            ServerMessage::UserJoined(e) => Some(&e.canvas),
            ServerMessage::UserLeft(e) => Some(&e.canvas),
            ServerMessage::Notice(e) => Some(&e.canvas),
            ServerMessage::ObjectCreated(e) => Some(&e.canvas),
            ServerMessage::ObjectUpdated(e) => Some(&e.canvas),
            ServerMessage::ObjectMoved(e) => Some(&e.canvas),
            ServerMessage::ObjectDeleted(e) | ServerMessage::ObjectLiked(e) => Some(&e.canvas),
            ServerMessage::Cleared(e) => Some(&e.canvas),
            ServerMessage::Hidden(e) => Some(&e.canvas),
            ServerMessage::Activity(e) => Some(&e.canvas),
            _ => None,
        }
    }

    /// Who caused an event, for events that record it.
    pub fn author(&self) -> Option<&Author> {
        match self {
            ServerMessage::Draw(e) => Some(&e.author),
            ServerMessage::Cursor(e) => Some(&e.author),
            ServerMessage::Chat(e) => Some(&e.author),
            ServerMessage::Highlight(e) => Some(&e.author),
            ServerMessage::ObjectCreated(e) => Some(&e.author),
            ServerMessage::ObjectUpdated(e) => Some(&e.author),
            ServerMessage::ObjectMoved(e) => Some(&e.author),
            ServerMessage::ObjectDeleted(e) | ServerMessage::ObjectLiked(e) => Some(&e.author),
            ServerMessage::Cleared(e) => Some(&e.author),
            ServerMessage::Activity(e) => Some(&e.user),
            _ => None,
        }
    }

    /// Sets the sequence number of a durable event (no-op for others).
    pub fn set_seq(&mut self, seq: u64) {
        match self {
            ServerMessage::Draw(e) => e.seq = Some(seq),
            ServerMessage::Chat(e) => e.seq = Some(seq),
            ServerMessage::ObjectCreated(e) => e.seq = Some(seq),
            ServerMessage::ObjectUpdated(e) => e.seq = Some(seq),
            ServerMessage::ObjectMoved(e) => e.seq = Some(seq),
            ServerMessage::ObjectDeleted(e) | ServerMessage::ObjectLiked(e) => e.seq = Some(seq),
            ServerMessage::Cleared(e) => e.seq = Some(seq),
            ServerMessage::Hidden(e) => e.seq = Some(seq),
            _ => {}
        }
    }
}

/// The authenticated user, as shown to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The token's `sub`.
    pub id: String,
    /// The token's `name`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Limits the server enforces on this connection, announced in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncedLimits {
    pub max_message_bytes: u32,
    pub max_canvases: u32,
    pub max_pixels_per_draw: u32,
    pub max_chat_chars: u32,
    pub ping_interval_ms: u64,
    pub idle_timeout_ms: u64,
}

/// `welcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The `ts` of the `ping`, unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    pub server_time: u64,
}

/// `ack`: the command with this `id` succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub id: RequestId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AckResult>,
}

/// What a successful command returns, when it returns something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatPage {
    pub canvas: CanvasId,
    /// Each a `chat` event as it was delivered, with its `seq`.
    pub messages: Vec<ChatEvent>,
    /// The `before` to ask for older messages; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
}

/// A page of durable events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub seq: u64,
    /// The new object's id (`object_create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// The canvas a `join` entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub role: crate::auth::Role,
    /// The users on the canvas, this one included; empty on canvases with
    /// more connections than the gateway lists (ask with `presence`).
    #[serde(default)]
    pub presence: Vec<PresentUser>,
    /// Connections on the canvas, on every gateway.
    #[serde(default)]
    pub presence_count: u32,
}

/// The outcome of a join with `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `draw` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorEvent {
    pub canvas: CanvasId,
    pub author: Author,
    pub ts: u64,
    pub x: f32,
    pub y: f32,
}

/// `highlight` event: where to point (a position or a user) and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub data: serde_json::Value,
    pub ts: u64,
}

/// `announcement`: text for everyone, rendered as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    pub text: String,
    pub ts: u64,
}

/// `notice`: a backend's JSON for a canvas's members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub canvas: CanvasId,
    pub data: serde_json::Value,
    pub ts: u64,
}

/// `canvases_changed`: `change` is `created`, `updated` or `deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasesChanged {
    pub canvas: CanvasId,
    pub change: String,
    pub ts: u64,
}

/// `user_joined` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserJoined {
    pub canvas: CanvasId,
    pub user: PresentUser,
}

/// `user_left` event: the user's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLeft {
    pub canvas: CanvasId,
    pub user: String,
}

/// `chat` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resync {
    pub canvas: CanvasId,
    pub reason: ResyncReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_outcome_names_are_the_wire_names() {
        for o in [
            ResumeOutcome::Replayed,
            ResumeOutcome::EpochChanged,
            ResumeOutcome::HistoryUnavailable,
            ResumeOutcome::Ahead,
        ] {
            let wire = serde_json::to_string(&o).expect("serializes");
            assert_eq!(wire, format!("\"{}\"", o.name()));
        }
    }
}

/// `object_created` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEvent {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
    pub object: String,
}

/// `cleared` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cleared {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub author: Author,
    pub ts: u64,
}

/// `hidden` event: a sequence number whose event is not for this connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hidden {
    pub canvas: CanvasId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `activity` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEvent {
    pub canvas: CanvasId,
    pub user: Author,
    pub activity: Activity,
}

/// `user_online` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOnline {
    pub user: Author,
    pub ts: u64,
}

/// `user_offline` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOffline {
    pub user: String,
    pub ts: u64,
}
