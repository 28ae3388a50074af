//! `cursor`: ephemeral positions. Validation and payment are here; a
//! WebSocket connection coalesces to `EASEL_CURSOR_HZ` between the two
//! steps (its session keeps the slots), a REST request publishes at once.

use super::{Caller, OpError, Payer, access, publish};
use crate::limits::OpClass;
use crate::state::AppState;
use shared::CanvasId;
use shared::auth::Role;
use shared::protocol::{CursorEvent, CursorMove, ServerMessage};
use shared::validate::{self, CanvasGeometry};

/// Checks and pays for a cursor move; the position to publish.
pub(crate) fn accept(
    caller: &Caller,
    payer: &mut dyn Payer,
    geometry: &CanvasGeometry,
    cmd: &CursorMove,
) -> Result<(f32, f32), OpError> {
    access::require(caller.role, Role::Spectator, "cursor", &cmd.canvas)?;
    let position = validate::cursor(cmd, geometry).map_err(OpError::invalid)?;
    payer.pay(OpClass::Cursors, 1)?;
    Ok(position)
}

/// Publishes a cursor position received at `ts` (ms).
pub(crate) async fn publish(
    state: &AppState,
    caller: &Caller,
    canvas: &CanvasId,
    (x, y): (f32, f32),
    ts: u64,
) -> Result<(), OpError> {
    let event = ServerMessage::Cursor(CursorEvent {
        canvas: canvas.clone(),
        author: caller.author.clone(),
        ts,
        x,
        y,
    });
    publish::ephemeral(state, caller.conn, canvas, &event).await
}
