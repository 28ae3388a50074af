//! The canvas catalogue: list, read, create, retitle and delete canvases.
//! Changes are announced with `canvases_changed`. Who may change it (an
//! admin token or an API key) is the transport's check.

use super::access::{self, catalogue_error, hidden, not_found};
use super::{Cause, OpError, channels};
use crate::canvases::{self, CanvasDef, Visibility};
use crate::state::AppState;
use shared::auth::{Identity, Role};
use shared::validate::CanvasGeometry;
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

/// A canvas to create, as the client asked for it.
pub(crate) struct NewCanvas {
    pub id: CanvasId,
    pub width: u32,
    pub height: u32,
    /// `#rrggbb` entries; the configured palette without them.
    pub palette: Option<Vec<String>>,
    pub title: Option<String>,
    pub visibility: Visibility,
}

/// A page of canvases after `after`, by id, and the id to continue after
/// (`None`: no more). The page holds those `identity` may see (an admin
/// sees all): public canvases on which its role is not `none`, members
/// canvases it has a role on, hook canvases its token names. So a page
/// may hold fewer than `limit`.
pub(crate) async fn list(
    state: &AppState,
    identity: &Identity,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<CanvasDef>, Option<CanvasId>), OpError> {
    let defs = state
        .canvases
        .list(after, limit)
        .await
        .map_err(catalogue_error)?;
    let next = defs.last().map(|d| d.id.clone());
    if identity.admin {
        return Ok((defs, next));
    }
    let members: Vec<&str> = defs
        .iter()
        .filter(|d| d.visibility == Visibility::Members)
        .map(|d| d.id.as_str())
        .collect();
    let memberships = state
        .members
        .roles_among(&identity.user_id, &members)
        .await
        .map_err(catalogue_error)?;
    // Hook canvases are listed when the token names them (the hook is not
    // asked for a list): no membership is looked up for them.
    let role = |d: &CanvasDef| {
        access::token_role(state, identity, d)
            .or_else(|| memberships.get(d.id.as_str()).copied())
            .unwrap_or(Role::None)
    };
    let visible = defs.into_iter().filter(|d| role(d) != Role::None).collect();
    Ok((visible, next))
}

/// A canvas read now, not from the cache: a title changed on another
/// gateway shows at once. `E008` (as for a canvas that does not exist)
/// when `identity` may not see it; an admin sees every canvas and gets
/// `E009` for one that does not exist.
pub(crate) async fn get(
    state: &AppState,
    identity: &Identity,
    canvas: &CanvasId,
) -> Result<Arc<CanvasDef>, OpError> {
    let def = match state.canvases.fresh(canvas).await {
        Ok(Some(def)) => def,
        Ok(None) if identity.admin => return Err(not_found(canvas)),
        Ok(None) => return Err(hidden(canvas)),
        Err(err) => return Err(catalogue_error(err)),
    };
    if identity.admin || access::role_on(state, identity, &def, false).await? != Role::None {
        return Ok(def);
    }
    state.metrics.access_refused.inc();
    Err(hidden(canvas))
}

/// Creates a canvas; E007 for a bad definition, E007 (conflict) for an id
/// that exists or existed.
pub(crate) async fn create(state: &AppState, new: NewCanvas) -> Result<CanvasDef, OpError> {
    let palette = match new.palette {
        None => canvases::default_palette(state.settings.canvas.palette_size),
        Some(list) => list
            .iter()
            .map(|c| {
                canvases::parse_rgb(c).ok_or_else(|| {
                    OpError::new(
                        ErrorCode::InvalidValue,
                        format!("palette entry {c:?} is not #rrggbb"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let def = CanvasDef {
        id: new.id,
        width: new.width,
        height: new.height,
        palette,
        title: title(new.title)?,
        visibility: new.visibility,
    };
    let geometry = CanvasGeometry {
        width: def.width,
        height: def.height,
        palette_size: u16::try_from(def.palette.len()).unwrap_or(u16::MAX),
    };
    geometry
        .check()
        .map_err(|m| OpError::new(ErrorCode::InvalidValue, m))?;
    match state.canvases.create(def.clone()).await {
        Ok(true) => {
            channels::canvas_changed(state, &def.id, "created").await;
            Ok(def)
        }
        Ok(false) => Err(OpError::new(
            ErrorCode::InvalidValue,
            format!(
                "canvas {:?} already exists, or existed (ids of deleted canvases are not reused)",
                def.id
            ),
        )
        .with_cause(Cause::Conflict)),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// Sets or (with `None`) clears a canvas's title.
pub(crate) async fn retitle(
    state: &AppState,
    canvas: &CanvasId,
    given: Option<String>,
) -> Result<Arc<CanvasDef>, OpError> {
    let title = title(given)?;
    match state.canvases.set_title(canvas, title.as_deref()).await {
        Ok(Some(def)) => {
            channels::canvas_changed(state, canvas, "updated").await;
            Ok(def)
        }
        Ok(None) => Err(not_found(canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// Sets who may see a canvas. Its live members on every gateway check
/// again at once; those who may no longer see it are removed from it.
pub(crate) async fn set_visibility(
    state: &AppState,
    canvas: &CanvasId,
    visibility: Visibility,
) -> Result<Arc<CanvasDef>, OpError> {
    match state.canvases.set_visibility(canvas, visibility).await {
        Ok(Some(def)) => {
            if let Some(hook) = &state.hook {
                hook.forget(canvas, None);
            }
            channels::access_changed(state, canvas, None).await;
            channels::canvas_changed(state, canvas, "updated").await;
            Ok(def)
        }
        Ok(None) => Err(not_found(canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// Deletes a canvas: gone from the list, refusing joins and writes (other
/// gateways notice within the catalogue cache's TTL); its members are told
/// and removed from it.
pub(crate) async fn delete(state: &AppState, canvas: &CanvasId) -> Result<(), OpError> {
    match state.canvases.delete(canvas).await {
        Ok(true) => {
            channels::canvas_changed(state, canvas, "deleted").await;
            channels::access_changed(state, canvas, None).await;
            Ok(())
        }
        Ok(false) => Err(not_found(canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// A title, checked; E007 if it is not one.
fn title(given: Option<String>) -> Result<Option<String>, OpError> {
    given
        .map(|t| canvases::check_title(&t))
        .transpose()
        .map_err(|m| OpError::new(ErrorCode::InvalidValue, m))
}
