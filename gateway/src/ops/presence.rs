//! `presence` (who is on a canvas) and `activity` (what a user is doing).

use super::{Caller, OpError, Payer, access};
use crate::limits::OpClass;
use crate::state::AppState;
use shared::CanvasId;
use shared::auth::Role;
use shared::protocol::{ActivitySend, PresenceList};
use shared::validate::{self, CanvasGeometry};

/// Who is on the canvas.
pub(crate) async fn list(state: &AppState, canvas: &CanvasId) -> Result<PresenceList, OpError> {
    let users = state
        .presence
        .list(canvas)
        .await
        .map_err(|e| OpError::unavailable("presence", &e))?;
    Ok(PresenceList {
        canvas: canvas.clone(),
        users,
    })
}

/// Records the caller's activity on the canvas and tells its members.
/// Paid from the cursors bucket: frequent, ephemeral, cheap.
pub(crate) async fn activity(
    state: &AppState,
    caller: &Caller,
    payer: &mut dyn Payer,
    geometry: &CanvasGeometry,
    cmd: &ActivitySend,
) -> Result<(), OpError> {
    access::require(caller.role, Role::Spectator, "activity", &cmd.canvas)?;
    let activity = validate::activity(cmd, geometry).map_err(OpError::invalid)?;
    payer.pay(OpClass::Cursors, 1)?;
    state
        .presence
        .set_activity(&cmd.canvas, caller.conn, &caller.author, activity)
        .await
        .map(|_| ())
        .map_err(|e| OpError::unavailable("activity store", &e))
}
