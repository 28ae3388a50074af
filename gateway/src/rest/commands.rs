//! `POST /api/canvases/{id}/commands`: any canvas command, in the same JSON
//! form as over WebSocket, for clients that cannot hold one (the SDK's
//! fallback sends its whole command set through here). The reply is the
//! WebSocket `ack` (`{"type": "ack", "id"?, "result"?}`), or an error as
//! every REST error is.
//!
//! Commands that describe a connection (`handshake`, `refresh`, `ping`,
//! `join`, `leave`, `subscribe`, `unsubscribe`, `activity`) have no
//! meaning without one and are refused with `E006`.

use super::writes::UserPayer;
use crate::http::{ApiError, Authed, CanvasPath, on_canvas};
use crate::ops::{self, Caller, OpError};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use shared::codec::{self, Encoding};
use shared::protocol::{AckResult, ClientMessage};
use shared::validate::CanvasGeometry;
use shared::{ErrorCode, RequestId};
use std::sync::Arc;

/// `POST /api/canvases/{id}/commands`.
pub(crate) async fn command(
    State(state): State<Arc<AppState>>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let cmd = codec::decode_client(Encoding::Json, &body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidMessage, e.message))?;
    match cmd.canvas() {
        Some(named) if *named == canvas => {}
        Some(named) => {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!("the command names canvas {named:?}, the path {canvas:?}"),
            ));
        }
        None => return Err(connection_only(&cmd)),
    }
    let (caller, geometry) = on_canvas(&state, &identity, &canvas).await?;
    let id = cmd.id().cloned();
    let mut payer = UserPayer {
        state: &state,
        user: &identity.user_id,
    };
    let result = run(&state, &caller, &mut payer, &geometry, cmd).await?;
    Ok(Json(ack(id, result)).into_response())
}

/// The WebSocket `ack` of a command, as JSON.
fn ack(id: Option<RequestId>, result: Option<AckResult>) -> serde_json::Value {
    let mut ack = serde_json::json!({"type": "ack"});
    if let Some(id) = id {
        ack["id"] = serde_json::to_value(id).unwrap_or_default();
    }
    if let Some(result) = result {
        ack["result"] = serde_json::to_value(result).unwrap_or_default();
    }
    ack
}

fn connection_only(cmd: &ClientMessage) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidMessage,
        format!(
            "{} describes a connection: send it over WebSocket, not to /commands",
            cmd.kind()
        ),
    )
}

/// Runs one canvas command as a request without a connection.
async fn run(
    state: &AppState,
    caller: &Caller,
    payer: &mut UserPayer<'_>,
    geometry: &CanvasGeometry,
    cmd: ClientMessage,
) -> Result<Option<AckResult>, ApiError> {
    let result = match cmd {
        ClientMessage::Draw(d) => ops::pixels::draw(state, caller, payer, geometry, d)
            .await?
            .map(AckResult::Published),
        ClientMessage::Chat(c) => ops::chat::chat(state, caller, payer, c)
            .await?
            .map(AckResult::Published),
        ClientMessage::Highlight(h) => {
            ops::chat::highlight(state, caller, payer, geometry, h).await?;
            None
        }
        ClientMessage::Cursor(c) => {
            let position = ops::cursors::accept(caller, payer, geometry, &c)?;
            let now = shared::now_ms();
            ops::cursors::publish(state, caller, &c.canvas, position, now).await?;
            None
        }
        ClientMessage::History(h) => {
            let limit = ops::history::page_limit(h.limit.map(|n| n as usize), 100)?;
            let page = ops::history::events(state, &h.canvas, h.since, limit, caller.gm());
            Some(AckResult::History(page.await?))
        }
        ClientMessage::ChatHistory(h) => {
            let limit = ops::history::page_limit(h.limit.map(|n| n as usize), 50)?;
            let page = ops::history::chat(state, &h.canvas, h.before, limit).await?;
            Some(AckResult::Chat(page))
        }
        ClientMessage::Objects(r) => {
            let after = r.after.as_deref();
            let page = ops::objects::list(state, &r.canvas, caller.gm(), after).await?;
            Some(AckResult::Objects(page))
        }
        ClientMessage::Presence(p) => {
            let list = ops::presence::list(state, &p.canvas, caller.gm()).await?;
            Some(AckResult::Presence(list))
        }
        ClientMessage::ObjectCreate(_)
        | ClientMessage::ObjectUpdate(_)
        | ClientMessage::ObjectMove(_)
        | ClientMessage::ObjectDelete(_)
        | ClientMessage::ObjectLike(_)
        | ClientMessage::Clear(_) => {
            let canvas = caller_canvas(&cmd)?;
            let done = ops::objects::apply(state, caller, payer, geometry, &canvas, cmd);
            done.await?.map(AckResult::Published)
        }
        other => return Err(connection_only(&other)),
    };
    Ok(result)
}

fn caller_canvas(cmd: &ClientMessage) -> Result<shared::CanvasId, OpError> {
    cmd.canvas()
        .cloned()
        .ok_or_else(|| OpError::new(ErrorCode::InvalidMessage, "the command names no canvas"))
}
