//! `chat` (durable) and `highlight` (ephemeral, paid as chat: mentions
//! are chat-like).

use super::{Caller, OpError, Payer, access, publish};
use crate::limits::OpClass;
use crate::state::AppState;
use shared::auth::Role;
use shared::protocol::{
    ChatEvent, ChatSend, HighlightEvent, HighlightSend, Published, ServerMessage,
};
use shared::validate::{self, CanvasGeometry, HighlightTarget};

/// Validates, pays for and publishes a chat message; its sequence number.
pub(crate) async fn chat(
    state: &AppState,
    caller: &Caller,
    payer: &mut dyn Payer,
    cmd: ChatSend,
) -> Result<Option<Published>, OpError> {
    access::require(caller.role, Role::Spectator, "chat", &cmd.canvas)?;
    validate::chat(&cmd).map_err(OpError::invalid)?;
    let key = publish::op_key(state, caller, cmd.key.as_deref())?;
    payer.pay(OpClass::Chat, 1)?;
    let event = ServerMessage::Chat(ChatEvent {
        canvas: cmd.canvas.clone(),
        seq: None,
        author: caller.author.clone(),
        ts: shared::now_ms(),
        text: cmd.text,
    });
    let written = publish::durable(state, caller, &cmd.canvas, &event, None, key.as_ref());
    Ok(publish::published(written.await?, None))
}

/// Validates, pays for and publishes a highlight.
pub(crate) async fn highlight(
    state: &AppState,
    caller: &Caller,
    payer: &mut dyn Payer,
    geometry: &CanvasGeometry,
    cmd: HighlightSend,
) -> Result<(), OpError> {
    access::require(caller.role, Role::Spectator, "highlight", &cmd.canvas)?;
    let target = validate::highlight(&cmd, geometry).map_err(OpError::invalid)?;
    payer.pay(OpClass::Chat, 1)?;
    let (x, y, user) = match target {
        HighlightTarget::Position(x, y) => (Some(x), Some(y), None),
        HighlightTarget::User(u) => (None, None, Some(u)),
    };
    let event = ServerMessage::Highlight(HighlightEvent {
        canvas: cmd.canvas.clone(),
        author: caller.author.clone(),
        ts: shared::now_ms(),
        x,
        y,
        user,
        duration_ms: cmd.duration_ms,
    });
    publish::ephemeral(state, caller.conn, &cmd.canvas, &event).await
}
