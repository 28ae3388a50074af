//! Who may do what: whether a caller may see a canvas and its role there,
//! the role an operation needs, and the canvas itself (it must exist).

use super::{Cause, OpError};
use crate::canvases::{CanvasDef, CatalogueError, Visibility};
use crate::state::AppState;
use shared::auth::{Identity, Role};
use shared::protocol::AccessChanged;
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

/// A canvas the caller may see, and its role there.
pub(crate) struct Entry {
    pub def: Arc<CanvasDef>,
    pub role: Role,
}

/// The canvas and the caller's role on it, or `E008` when the caller may
/// not see it: the same refusal as for a canvas that does not exist, so
/// ids cannot be probed.
pub(crate) async fn enter(
    state: &AppState,
    identity: &Identity,
    canvas: &CanvasId,
) -> Result<Entry, OpError> {
    let def = match self::canvas(state, canvas, &identity.user_id).await {
        Err(err) if err.code == ErrorCode::NotFound => {
            state.metrics.access_refused.inc();
            return Err(hidden(canvas));
        }
        other => other?,
    };
    match role_on(state, identity, &def, false).await? {
        Role::None => {
            state.metrics.access_refused.inc();
            Err(hidden(canvas))
        }
        role => Ok(Entry { def, role }),
    }
}

/// The caller's role on the canvas now, reading the catalogue as it was
/// at `since` or later (when the connection was told that access changed,
/// after the change was committed), memberships afresh and asking the
/// hook again (`Role::None`: no longer any). A canvas deleted since is
/// `Role::None`.
pub(crate) async fn recheck(
    state: &AppState,
    identity: &Identity,
    canvas: &CanvasId,
    since: std::time::Instant,
) -> Result<Role, OpError> {
    let def = match state.canvases.read_since(canvas, since).await {
        Ok(Some(def)) => def,
        Ok(None) => return Ok(Role::None),
        Err(err) => return Err(catalogue_error(err)),
    };
    if let Some(hook) = &state.hook {
        hook.forget(canvas, Some(&identity.user_id));
    }
    role_on(state, identity, &def, true).await
}

/// The role the token alone gives `identity` on `def`, by its
/// visibility: public, the token's role for it, else the token's `role`,
/// else the gateway's default; members and hook, the token's role for it.
/// `None`: the membership (members) or the join hook (hook) decides.
pub(crate) fn token_role(state: &AppState, identity: &Identity, def: &CanvasDef) -> Option<Role> {
    let canvas = def.id.as_str();
    match def.visibility {
        Visibility::Public => Some(identity.role_or(canvas, state.settings.default_role)),
        Visibility::Members | Visibility::Hook => identity.canvas_roles.get(canvas).copied(),
    }
}

/// The role `identity` holds on `def`: the token's (see [`token_role`]),
/// else on a members canvas its membership, on a hook canvas the join
/// hook's answer. `Role::None`: it may not see the canvas.
pub(crate) async fn role_on(
    state: &AppState,
    identity: &Identity,
    def: &CanvasDef,
    fresh: bool,
) -> Result<Role, OpError> {
    if let Some(role) = token_role(state, identity, def) {
        return Ok(role);
    }
    let canvas = &def.id;
    if def.visibility == Visibility::Members {
        let found = if fresh {
            state.members.fresh_role(canvas, &identity.user_id).await
        } else {
            state.members.role(canvas, &identity.user_id).await
        };
        return Ok(found.map_err(catalogue_error)?.unwrap_or(Role::None));
    }
    let Some(hook) = &state.hook else {
        return Ok(Role::None);
    };
    hook.role(identity, canvas).await.map_err(|err| {
        OpError::new(
            ErrorCode::Unavailable,
            format!("{err}; access to canvas \"{canvas}\" could not be decided, try again"),
        )
        .retry_after(1000)
    })
}

/// After a signal that access to `canvas` changed: the event to send when
/// the connection's role there is no longer `held` (the revocation is
/// counted); `None` while it still holds, or when access cannot be decided
/// now (logged: the membership stands until the next change).
pub(crate) async fn changed(
    state: &AppState,
    identity: &Identity,
    canvas: &CanvasId,
    held: Role,
    since: std::time::Instant,
) -> Option<AccessChanged> {
    let role = match recheck(state, identity, canvas, since).await {
        Ok(role) => role,
        Err(err) => {
            tracing::warn!(%canvas, error = %err.message, "access not rechecked");
            return None;
        }
    };
    if role == held {
        return None;
    }
    tracing::info!(%canvas, from = held.name(), to = role.name(), "access changed");
    state.metrics.access_revoked.inc();
    Some(AccessChanged {
        canvas: canvas.clone(),
        role,
        ts: shared::now_ms(),
    })
}

/// `E008` for a canvas the caller may not see, worded as for one that
/// does not exist.
pub(crate) fn hidden(canvas: &CanvasId) -> OpError {
    OpError::new(
        ErrorCode::Forbidden,
        format!("no canvas \"{canvas}\" that this user may see"),
    )
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
    let slot = state.users.enter(&identity.user_id);
    let admitted = match &slot {
        Some(_) => state.online.admit(conn, &author, max).await,
        None => None,
    };
    match (slot, admitted) {
        (Some(slot), Some(gateways)) => {
            crate::spread::arrived(state, &identity.user_id, &slot.limits, gateways).await;
            Ok(slot)
        }
        _ => {
            tracing::info!(max, "refused: the user's connection cap");
            Err(OpError::new(
                ErrorCode::LimitReached,
                format!("this user already holds {max} connections, the most allowed"),
            ))
        }
    }
}
