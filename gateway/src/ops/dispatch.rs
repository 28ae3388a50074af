//! The canvas commands every transport runs the same way: given the caller
//! on the canvas (its role), the canvas's geometry and who pays, one
//! command to its operation, and the result its ack carries. The WebSocket
//! session adds what needs a connection (join, leave, cursor coalescing,
//! activity, channels); REST runs these alone.

use super::{Caller, OpError, Payer, chat, history, objects, pixels, presence};
use crate::state::AppState;
use shared::ErrorCode;
use shared::protocol::{AckResult, ClientMessage};
use shared::validate::CanvasGeometry;

/// The refusal of a command that is not a canvas command: it describes a
/// connection (`join`, `ping`, `activity`, ...), which a request has not.
pub(crate) fn not_a_canvas_command(cmd: &ClientMessage) -> OpError {
    OpError::new(
        ErrorCode::InvalidMessage,
        format!(
            "{} describes a connection: send it over WebSocket, not to /commands",
            cmd.kind()
        ),
    )
}

/// Runs one canvas command; its ack's result.
pub(crate) async fn canvas_command(
    state: &AppState,
    caller: &Caller,
    payer: &mut dyn Payer,
    geometry: &CanvasGeometry,
    cmd: ClientMessage,
) -> Result<Option<AckResult>, OpError> {
    let result = match cmd {
        ClientMessage::Draw(d) => pixels::draw(state, caller, payer, geometry, d)
            .await?
            .map(AckResult::Published),
        ClientMessage::Chat(c) => chat::chat(state, caller, payer, c)
            .await?
            .map(AckResult::Published),
        ClientMessage::Highlight(h) => {
            chat::highlight(state, caller, payer, geometry, h).await?;
            None
        }
        ClientMessage::History(h) => {
            let limit = history::page_limit(h.limit.map(|n| n as usize), 100)?;
            let page = history::events(state, &h.canvas, h.since, limit, caller.gm());
            Some(AckResult::History(page.await?))
        }
        ClientMessage::ChatHistory(h) => {
            let limit = history::page_limit(h.limit.map(|n| n as usize), 50)?;
            let page = history::chat(state, &h.canvas, h.before, limit).await?;
            Some(AckResult::Chat(page))
        }
        ClientMessage::Objects(r) => {
            let after = r.after.as_deref();
            let page = objects::list(state, &r.canvas, caller.gm(), after).await?;
            Some(AckResult::Objects(page))
        }
        ClientMessage::Presence(p) => {
            let list = presence::list(state, &p.canvas, caller.gm()).await?;
            Some(AckResult::Presence(list))
        }
        cmd @ (ClientMessage::ObjectCreate(_)
        | ClientMessage::ObjectUpdate(_)
        | ClientMessage::ObjectMove(_)
        | ClientMessage::ObjectDelete(_)
        | ClientMessage::ObjectLike(_)
        | ClientMessage::Clear(_)) => {
            let Some(canvas) = cmd.canvas().cloned() else {
                return Ok(None);
            };
            let done = objects::apply(state, caller, payer, geometry, &canvas, cmd);
            done.await?.map(AckResult::Published)
        }
        other => return Err(not_a_canvas_command(&other)),
    };
    Ok(result)
}
