//! `presence` (who is on a canvas) and `activity` (what a user is doing).
//! An activity at a fog region is gm-only: players get no event for it, and
//! its place is left out of the list they see.

use super::{Caller, OpError, Payer, access};
use crate::limits::OpClass;
use crate::state::AppState;
use shared::CanvasId;
use shared::auth::Role;
use shared::protocol::{ActivitySend, PresenceList};
use shared::validate::{self, CanvasGeometry};

/// Who is on the canvas, as a gm sees it or (`gm` false) anyone else.
pub(crate) async fn list(
    state: &AppState,
    canvas: &CanvasId,
    gm: bool,
) -> Result<PresenceList, OpError> {
    let users = state
        .presence
        .list(canvas, gm)
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
    // Editing a fog region is gm-only: where it is must not reach players,
    // live or in the presence list.
    let gm_only = match &activity.object {
        Some(object) => state
            .log
            .is_fog(&cmd.canvas, object)
            .await
            .map_err(|e| OpError::unavailable("objects", &e))?,
        None => false,
    };
    state
        .presence
        .set_activity(&cmd.canvas, caller.conn, &caller.author, activity, gm_only)
        .await
        .map(|_| ())
        .map_err(|e| OpError::unavailable("activity store", &e))
}
