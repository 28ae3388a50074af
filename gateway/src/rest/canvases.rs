//! The canvas catalogue over REST (with `EASEL_DATABASE_URL`):
//!
//! - `GET /api/canvases?after=&limit=`, `GET /api/canvases/{id}`: any
//!   token, for the canvases it may see (an admin token: all).
//! - `POST /api/canvases`, `PATCH /api/canvases/{id}` `{"title",
//!   "visibility"}`, `DELETE /api/canvases/{id}`: an admin token or a
//!   server API key.

use crate::canvases::{CanvasDef, Visibility};
use crate::http::{Admin, ApiError, ApiQuery, Authed, CanvasPath, json_body};
use crate::ops::{catalogue, history};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

/// A canvas to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCanvas {
    id: String,
    width: u32,
    height: u32,
    /// `#rrggbb` entries; defaults to the configured palette.
    palette: Option<Vec<String>>,
    title: Option<String>,
    /// `public` (the default), `members` or `hook`.
    visibility: Option<String>,
}

/// A change to a canvas: the fields it names (a `null` title clears it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanvasChange {
    #[serde(default, deserialize_with = "present")]
    title: Option<Option<String>>,
    visibility: Option<String>,
}

/// A field that is present, even as `null`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A visibility as given, or E007.
fn visibility(given: &str) -> Result<Visibility, ApiError> {
    Visibility::parse(given).map_err(|m| ApiError::new(ErrorCode::InvalidValue, m))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/canvases?after=&limit=`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ListQuery>,
    Authed(identity): Authed,
) -> Result<Response, ApiError> {
    let limit = history::page_limit(q.limit, 100)?;
    let (defs, next) = catalogue::list(&state, &identity, q.after.as_deref(), limit).await?;
    Ok(Json(serde_json::json!({
        "canvases": defs.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
        "next_after": next,
    }))
    .into_response())
}

/// `GET /api/canvases/{id}`.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let def = catalogue::get(&state, &identity, &canvas).await?;
    Ok(Json(def.to_json()).into_response())
}

/// `POST /api/canvases`: 201 and the definition.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let new: NewCanvas = json_body(&body)?;
    let id = CanvasId::new(&new.id)
        .map_err(|e| ApiError::new(ErrorCode::InvalidMessage, e.to_string()))?;
    let def: CanvasDef = catalogue::create(
        &state,
        catalogue::NewCanvas {
            id,
            width: new.width,
            height: new.height,
            palette: new.palette,
            title: new.title,
            visibility: new
                .visibility
                .as_deref()
                .map(visibility)
                .transpose()?
                .unwrap_or_default(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(def.to_json())).into_response())
}

/// `PATCH /api/canvases/{id}` `{"title": ..., "visibility": ...}`: changes
/// the fields named.
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    CanvasPath(canvas): CanvasPath,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let change: CanvasChange = json_body(&body)?;
    let visible = change.visibility.as_deref().map(visibility).transpose()?;
    let mut def = None;
    if let Some(title) = change.title {
        def = Some(catalogue::retitle(&state, &canvas, title).await?);
    }
    if let Some(visibility) = visible {
        def = Some(catalogue::set_visibility(&state, &canvas, visibility).await?);
    }
    match def {
        Some(def) => Ok(Json(def.to_json()).into_response()),
        None => Err(ApiError::new(
            ErrorCode::InvalidValue,
            "name a field to change: title or visibility",
        )),
    }
}

/// `DELETE /api/canvases/{id}`: 204.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    _: Admin,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    catalogue::delete(&state, &canvas).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
