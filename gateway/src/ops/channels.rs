//! Channels (a user's own, `global`, `online`) and what the server side
//! publishes on them: notices to a canvas, notifications to a user,
//! announcements, and catalogue changes.

use super::{OpError, publish};
use crate::state::AppState;
use shared::busframe::Signal;
use shared::protocol::{
    Announcement, CanvasesChanged, ChatSend, Notice, Notification, ServerMessage,
};
use shared::{CanvasId, ErrorCode};

/// The channel a client may subscribe to by name.
pub(crate) fn by_name(name: &str) -> Result<CanvasId, OpError> {
    match name {
        "global" => Ok(CanvasId::global_channel()),
        "online" => Ok(CanvasId::online_channel()),
        _ => Err(OpError::new(
            ErrorCode::InvalidValue,
            format!("no channel {name:?}; the channels are \"global\" and \"online\""),
        )),
    }
}

/// A `notice` with `data` to the canvas's members on every gateway.
pub(crate) async fn notice(
    state: &AppState,
    canvas: &CanvasId,
    data: serde_json::Value,
) -> Result<(), OpError> {
    let event = ServerMessage::Notice(Notice {
        canvas: canvas.clone(),
        seq: None,
        data,
        ts: shared::now_ms(),
    });
    publish::ephemeral(state, 0, canvas, &event).await
}

/// A durable `notice`: numbered, kept in the canvas's history, and sent to
/// its members like any durable event; its sequence number. A resend with
/// the same `key` is answered with the first one's and not applied again.
pub(crate) async fn durable_notice(
    state: &AppState,
    canvas: &CanvasId,
    data: serde_json::Value,
    key: Option<&str>,
) -> Result<u64, OpError> {
    let server = super::Caller {
        author: shared::protocol::Author {
            id: SERVER_USER.into(),
            name: None,
        },
        conn: 0,
        role: shared::auth::Role::Gm,
    };
    match state.canvases.get(canvas).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(super::access::not_found(canvas)),
        Err(err) => return Err(super::access::catalogue_error(err)),
    }
    let key = publish::op_key(state, &server, key)?;
    let event = ServerMessage::Notice(Notice {
        canvas: canvas.clone(),
        seq: None,
        data,
        ts: shared::now_ms(),
    });
    let written = publish::durable(state, &server, canvas, &event, None, key.as_ref()).await?;
    publish::published(written, None)
        .map(|p| p.seq)
        .ok_or_else(|| OpError::unavailable("canvas log", &"the notice was not numbered"))
}

/// The author of what the server API publishes durably (for operation
/// keys: a server's keys never meet a user's).
const SERVER_USER: &str = "\u{1f}server";

/// A `notification` with `data` to every connection of `user`.
pub(crate) async fn notify(
    state: &AppState,
    user: &str,
    data: serde_json::Value,
) -> Result<(), OpError> {
    check_user(user)?;
    let event = ServerMessage::Notification(Notification {
        data,
        ts: shared::now_ms(),
    });
    publish::ephemeral(state, 0, &CanvasId::user_channel(user), &event).await
}

/// E007 unless `user` is a user id: 1 to 128 bytes, no control characters.
pub(crate) fn check_user(user: &str) -> Result<(), OpError> {
    if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
        return Err(OpError::new(
            ErrorCode::InvalidValue,
            "user id must be 1 to 128 bytes without control characters",
        ));
    }
    Ok(())
}

/// An `announcement` on `global`, with the rules of chat text.
pub(crate) async fn broadcast(state: &AppState, text: String) -> Result<(), OpError> {
    let as_chat = ChatSend {
        id: None,
        canvas: CanvasId::global_channel(),
        key: None,
        text,
    };
    shared::validate::chat(&as_chat).map_err(OpError::invalid)?;
    let event = ServerMessage::Announcement(Announcement {
        text: as_chat.text,
        ts: shared::now_ms(),
    });
    publish::ephemeral(state, 0, &CanvasId::global_channel(), &event).await
}

/// Tells lobby screens on every gateway (the global channel), and the
/// canvas's own members, that a canvas was created, updated or deleted.
pub(crate) async fn canvas_changed(state: &AppState, canvas: &CanvasId, change: &str) {
    let event = ServerMessage::CanvasesChanged(CanvasesChanged {
        canvas: canvas.clone(),
        change: change.into(),
        ts: shared::now_ms(),
    });
    for channel in [CanvasId::global_channel(), canvas.clone()] {
        if let Err(err) = publish::ephemeral(state, 0, &channel, &event).await {
            tracing::warn!(%canvas, error = %err.message, "canvases_changed not published");
        }
    }
}

/// Tells the live members of `canvas` on every gateway (those of `user`
/// alone, when given) to check their access again.
pub(crate) async fn access_changed(state: &AppState, canvas: &CanvasId, user: Option<&str>) {
    let signal = Signal::Access {
        user: user.map(str::to_owned),
    };
    if let Err(err) = state.bus.signal(canvas, &signal).await {
        tracing::warn!(%canvas, error = %err, "access change not signalled");
    }
}

/// Closes every connection of `user` on every gateway (close code 4004;
/// SSE streams end).
pub(crate) async fn disconnect(state: &AppState, user: &str) -> Result<(), OpError> {
    check_user(user)?;
    let signal = Signal::Disconnect {
        user: user.to_owned(),
    };
    state
        .bus
        .signal(&CanvasId::user_channel(user), &signal)
        .await
        .map_err(|err| OpError::unavailable("bus", &err))
}
