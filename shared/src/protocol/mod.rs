//! Every message of the Easel protocol, in both directions.
//!
//! Messages are JSON objects (or MessagePack maps) with a `type` field and the
//! message's own fields beside it. Client commands may carry an `id`; every
//! command that does gets exactly one reply with that id: an `ack` or an
//! `error`. docs/PROTOCOL.md shows an example of each.

mod commands;
mod events;
mod replies;

pub use commands::*;
pub use events::*;
pub use replies::*;

use crate::encoding::Encoding;
use crate::error::ErrorCode;
use crate::ids::{CanvasId, RequestId};
use serde::{Deserialize, Serialize};

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Authenticates a connection that gave no token in the URL or header.
    Handshake(Handshake),
    /// Application-level keepalive; answered with `pong`.
    Ping(Ping),
    /// Replaces the connection's token with a fresh one for the same user
    /// before the old one expires.
    Refresh(Handshake),
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
    Objects(ObjectsRequest),
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
    pub const KINDS: [&'static str; 22] = [
        "handshake",
        "ping",
        "refresh",
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
            ClientMessage::Handshake(m) | ClientMessage::Refresh(m) => m.id.as_ref(),
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
            ClientMessage::Objects(m) => m.id.as_ref(),
            ClientMessage::Clear(m) => m.id.as_ref(),
            ClientMessage::Activity(m) => m.id.as_ref(),
            ClientMessage::Subscribe(m) | ClientMessage::Unsubscribe(m) => m.id.as_ref(),
        }
    }

    /// The operation key of a durable command, if it has one.
    pub fn op_key(&self) -> Option<&str> {
        match self {
            ClientMessage::Draw(m) => m.key.as_deref(),
            ClientMessage::Chat(m) => m.key.as_deref(),
            ClientMessage::ObjectCreate(m) => m.key.as_deref(),
            ClientMessage::ObjectUpdate(m) => m.key.as_deref(),
            ClientMessage::ObjectMove(m) => m.key.as_deref(),
            ClientMessage::ObjectDelete(m) | ClientMessage::ObjectLike(m) => m.key.as_deref(),
            ClientMessage::Clear(m) => m.key.as_deref(),
            _ => None,
        }
    }

    /// The canvas a command names, for commands that name one.
    pub fn canvas(&self) -> Option<&CanvasId> {
        match self {
            ClientMessage::Handshake(_)
            | ClientMessage::Refresh(_)
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
            ClientMessage::Objects(m) => Some(&m.canvas),
            ClientMessage::Clear(m) => Some(&m.canvas),
            ClientMessage::Activity(m) => Some(&m.canvas),
        }
    }

    /// The message type as a bounded label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Handshake(_) => "handshake",
            ClientMessage::Ping(_) => "ping",
            ClientMessage::Refresh(_) => "refresh",
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

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
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
    /// The connection's access to a joined canvas changed; it left it.
    AccessChanged(AccessChanged),
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
            ServerMessage::AccessChanged(_) => "access_changed",
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

    /// The sequence number of a durable event.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ServerMessage::Draw(e) => e.seq,
            ServerMessage::Chat(e) => e.seq,
            ServerMessage::ObjectCreated(e) => e.seq,
            ServerMessage::ObjectUpdated(e) => e.seq,
            ServerMessage::ObjectMoved(e) => e.seq,
            ServerMessage::ObjectDeleted(e) | ServerMessage::ObjectLiked(e) => e.seq,
            ServerMessage::Cleared(e) => e.seq,
            ServerMessage::Hidden(e) => e.seq,
            ServerMessage::Notice(e) => e.seq,
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
            ServerMessage::Notice(e) => e.seq = Some(seq),
            _ => {}
        }
    }
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
