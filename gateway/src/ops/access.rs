//! Who may do what: a caller's role on a canvas, the role an operation
//! needs, and the canvas itself (it must exist).

use super::{Cause, OpError};
use crate::canvases::{CanvasDef, CatalogueError};
use crate::state::AppState;
use shared::auth::{Identity, Role};
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

/// The role `identity` holds on `canvas`: the token's role for it, else
/// its default, else the gateway's.
pub(crate) fn role_of(state: &AppState, identity: &Identity, canvas: &CanvasId) -> Role {
    identity.role_or(canvas.as_str(), state.settings.default_role)
}

/// E008 unless `role` is at least `needed` for `op`.
pub(crate) fn require(
    role: Role,
    needed: Role,
    op: &str,
    canvas: &CanvasId,
) -> Result<(), OpError> {
    if role >= needed {
        return Ok(());
    }
    Err(OpError::new(
        ErrorCode::Forbidden,
        format!(
            "{op} needs the {} role on canvas {canvas:?}; the caller is {}",
            needed.name(),
            role.name()
        ),
    ))
}

/// The canvas's definition, or E009 when it does not exist. With
/// auto-creation on, an unknown canvas is created for `user`, who pays
/// from its creation bucket (`EASEL_AUTO_CREATE_RATE`; E004 when empty).
pub(crate) async fn canvas(
    state: &AppState,
    canvas: &CanvasId,
    user: &str,
) -> Result<Arc<CanvasDef>, OpError> {
    let found = match state.canvases.get(canvas).await {
        Ok(None) if state.canvases.auto_creates() => {
            pay_creation(state, user, canvas)?;
            state.metrics.canvases_auto_created.inc();
            state.canvases.auto_create(canvas).await
        }
        other => other,
    };
    match found {
        Ok(Some(def)) => Ok(def),
        Ok(None) => Err(not_found(canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// Takes one creation from the user's bucket, or E004 with the wait.
fn pay_creation(state: &AppState, user: &str, canvas: &CanvasId) -> Result<(), OpError> {
    let rate = state.settings.auto_create_rate;
    let limits = state.users.limits(user);
    limits.take_creation(rate).map_err(|wait| {
        state.metrics.canvases_auto_create_refused.inc();
        OpError::new(
            ErrorCode::RateLimited,
            format!(
                "canvas {canvas:?} does not exist and this user created too many by using them \
                 (at most {}/s, {} at once); nothing was created",
                rate.per_sec, rate.burst
            ),
        )
        .retry_after(wait.as_millis().max(1) as u64)
    })
}

/// E009 for a canvas that does not exist.
pub(crate) fn not_found(canvas: &CanvasId) -> OpError {
    OpError::new(
        ErrorCode::NotFound,
        format!("no canvas {canvas:?}; create it first"),
    )
}

/// E012 for a catalogue that failed or is not configured.
pub(crate) fn catalogue_error(err: CatalogueError) -> OpError {
    match err {
        CatalogueError::NoCatalogue => {
            OpError::new(ErrorCode::Unavailable, err.to_string()).with_cause(Cause::NotConfigured)
        }
        CatalogueError::Unavailable(detail) => OpError::unavailable("canvas catalogue", &detail),
    }
}

/// Admits connection `conn` of `identity`'s user (a WebSocket or an SSE
/// stream) within the per-user cap, which holds on this gateway (the
/// user's buckets) and across the cluster (the online registry counts the
/// user's open connections); the user's slot, held while it is open.
/// E011 when the user holds the most connections allowed.
pub(crate) async fn admit_user(
    state: &AppState,
    conn: u64,
    identity: &Identity,
) -> Result<crate::limits::UserSlot, OpError> {
    let max = state.settings.max_connections_per_user;
    let author = identity.author();
    match state.users.enter(&identity.user_id) {
        Some(slot) if state.online.admit(conn, &author, max).await => Ok(slot),
        _ => {
            tracing::info!(max, "refused: the user's connection cap");
            Err(OpError::new(
                ErrorCode::LimitReached,
                format!("this user already holds {max} connections, the most allowed"),
            ))
        }
    }
}
