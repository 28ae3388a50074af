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
use crate::ops::{self, Caller};
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
        None => return Err(ops::dispatch::not_a_canvas_command(&cmd).into()),
    }
    let (caller, geometry) = on_canvas(&state, &identity, &canvas).await?;
    let (id, kind) = (cmd.id().cloned(), cmd.kind());
    let mut payer = UserPayer {
        state: &state,
        user: &identity.user_id,
    };
    let result = run(&state, &caller, &mut payer, &geometry, cmd)
        .await
        .inspect_err(|err| {
            if err.0.code == ErrorCode::Forbidden {
                state
                    .feed
                    .refused(&canvas, &caller.author, kind, &err.0.message);
            }
        })?;
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

/// Runs one canvas command as a request without a connection.
async fn run(
    state: &AppState,
    caller: &Caller,
    payer: &mut UserPayer<'_>,
    geometry: &CanvasGeometry,
    cmd: ClientMessage,
) -> Result<Option<AckResult>, ApiError> {
    match cmd {
        // Without a connection there is nothing to coalesce: published as is.
        ClientMessage::Cursor(c) => {
            let position = ops::cursors::accept(caller, payer, geometry, &c)?;
            let now = shared::now_ms();
            ops::cursors::publish(state, caller, &c.canvas, position, now).await?;
            Ok(None)
        }
        // The rest, connection commands refused (E006) among them.
        cmd => Ok(ops::dispatch::canvas_command(state, caller, payer, geometry, cmd).await?),
    }
}
