//! The canvas catalogue: list, read, create, retitle and delete canvases.
//! Changes are announced with `canvases_changed`. Who may change it (an
//! admin token or an API key) is the transport's check.

use super::access::{catalogue_error, not_found};
use super::{Cause, OpError, channels};
use crate::canvases::{self, CanvasDef};
use crate::state::AppState;
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
}

/// A page of canvases after `after`, by id.
pub(crate) async fn list(
    state: &AppState,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<CanvasDef>, OpError> {
    state
        .canvases
        .list(after, limit)
        .await
        .map_err(catalogue_error)
}

/// A canvas read now, not from the cache: a title changed on another
/// gateway shows at once.
pub(crate) async fn get(state: &AppState, canvas: &CanvasId) -> Result<Arc<CanvasDef>, OpError> {
    match state.canvases.fresh(canvas).await {
        Ok(Some(def)) => Ok(def),
        Ok(None) => Err(not_found(canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
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

/// Deletes a canvas: gone from the list, refusing joins and writes (other
/// gateways notice within the catalogue cache's TTL); its members are told.
pub(crate) async fn delete(state: &AppState, canvas: &CanvasId) -> Result<(), OpError> {
    match state.canvases.delete(canvas).await {
        Ok(true) => {
            channels::canvas_changed(state, canvas, "deleted").await;
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
