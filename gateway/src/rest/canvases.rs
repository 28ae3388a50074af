//! The canvas catalogue over REST (with `EASEL_DATABASE_URL`):
//!
//! - `GET /api/canvases?after=&limit=`, `GET /api/canvases/{id}`: any token.
//! - `POST /api/canvases`, `PATCH /api/canvases/{id}` `{"title"}`,
//!   `DELETE /api/canvases/{id}`: an admin token or a server API key.

use crate::canvases::CanvasDef;
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
}

/// A change to a canvas: its title (`null` clears it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanvasChange {
    title: Option<String>,
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
    Authed(_): Authed,
) -> Result<Response, ApiError> {
    let limit = history::page_limit(q.limit, 100)?;
    let defs = catalogue::list(&state, q.after.as_deref(), limit).await?;
    let next = defs.last().map(|d| d.id.clone());
    Ok(Json(serde_json::json!({
        "canvases": defs.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
        "next_after": next,
    }))
    .into_response())
}

/// `GET /api/canvases/{id}`.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Authed(_): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let def = catalogue::get(&state, &canvas).await?;
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
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(def.to_json())).into_response())
}

/// `PATCH /api/canvases/{id}` `{"title": ...}`: changes the title.
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    CanvasPath(canvas): CanvasPath,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let change: CanvasChange = json_body(&body)?;
    let def = catalogue::retitle(&state, &canvas, change.title).await?;
    Ok(Json(def.to_json()).into_response())
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
