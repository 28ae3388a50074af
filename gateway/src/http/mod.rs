//! What every HTTP handler shares: the one error response (an [`OpError`]
//! with its status), and the extractors for the authenticated caller, a
//! valid canvas id, query strings and JSON bodies.
//!
//! [`OpError`]: crate::ops::OpError

pub(crate) mod admit;
pub(crate) mod cors;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod serve;

pub(crate) use error::ApiError;
pub(crate) use extract::{Admin, ApiQuery, Authed, CanvasPath, ServerKey, json_body};

use crate::ops::{Caller, access};
use crate::state::AppState;
use shared::CanvasId;
use shared::auth::Identity;
use shared::validate::CanvasGeometry;

/// The caller on a canvas it may see (403 `E008` otherwise, as for a
/// canvas that does not exist), with its role there, and the canvas's
/// geometry.
pub(crate) async fn on_canvas(
    state: &AppState,
    identity: &Identity,
    canvas: &CanvasId,
) -> Result<(Caller, CanvasGeometry), ApiError> {
    let entry = access::enter(state, identity, canvas).await?;
    let caller = Caller {
        author: identity.author(),
        conn: 0,
        role: entry.role,
    };
    Ok((caller, entry.def.geometry()))
}
