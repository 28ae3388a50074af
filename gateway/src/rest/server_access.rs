//! The server API's access and inspection calls (an API key, as every
//! server API call):
//!
//! - `GET /api/server/canvases/{id}/members?after=&limit=`: memberships.
//! - `PUT /api/server/canvases/{id}/members/{user}` `{"role"}`: gives a
//!   user a role on a canvas (200 and the membership).
//! - `DELETE /api/server/canvases/{id}/members/{user}`: 204.
//! - `POST /api/server/users/{id}/disconnect`: closes every connection of
//!   the user on every gateway (202).
//! - `GET /api/server/canvases/{id}/presence`: who is on it, as a gm sees.
//! - `GET /api/server/canvases/{id}/events?since=&limit=`: its history,
//!   as a gm sees.
//!
//! A membership change reaches the user's live connections on the canvas
//! at once (they check again; see `access_changed`).

use crate::http::{ApiError, ApiQuery, CanvasPath, ServerKey, json_body};
use crate::ops::access::catalogue_error;
use crate::ops::{OpError, channels, history};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::auth::Role;
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: Role,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

/// The canvas and user of a membership path, checked.
fn membership_path(canvas: &str, user: &str) -> Result<CanvasId, ApiError> {
    channels::check_user(user)?;
    CanvasId::new(canvas).map_err(|e| ApiError::new(ErrorCode::InvalidMessage, e.to_string()))
}

/// `E009` for a canvas with no such membership (or no such canvas).
fn no_membership(canvas: &CanvasId, user: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("user {user:?} has no membership of canvas {canvas:?}"),
    )
}

/// `GET /api/server/canvases/{id}/members?after=&limit=`.
pub(crate) async fn members(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    ApiQuery(q): ApiQuery<PageQuery>,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let limit = history::page_limit(q.limit, 100)?;
    let list = state
        .members
        .list(&canvas, q.after.as_deref(), limit)
        .await
        .map_err(catalogue_error)?;
    let next = list.last().map(|m| m.user.clone());
    Ok(Json(serde_json::json!({
        "canvas": canvas,
        "members": list,
        "next_after": next,
    }))
    .into_response())
}

/// `PUT /api/server/canvases/{id}/members/{user}` `{"role": ...}`.
pub(crate) async fn set_member(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    Path((canvas, user)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let canvas = membership_path(&canvas, &user)?;
    let RoleBody { role } = json_body(&body)?;
    if role == Role::None {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            "a membership's role is spectator, player or gm; to take access away, DELETE the membership",
        ));
    }
    let set = state
        .members
        .set(&canvas, &user, role)
        .await
        .map_err(catalogue_error)?;
    if !set {
        return Err(OpError::new(ErrorCode::NotFound, format!("no canvas {canvas:?}")).into());
    }
    channels::access_changed(&state, &canvas, Some(&user)).await;
    Ok(Json(serde_json::json!({ "canvas": canvas, "user": user, "role": role })).into_response())
}

/// `DELETE /api/server/canvases/{id}/members/{user}`: 204.
pub(crate) async fn remove_member(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    Path((canvas, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let canvas = membership_path(&canvas, &user)?;
    let removed = state
        .members
        .remove(&canvas, &user)
        .await
        .map_err(catalogue_error)?;
    if !removed {
        return Err(no_membership(&canvas, &user));
    }
    channels::access_changed(&state, &canvas, Some(&user)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/server/users/{id}/disconnect`: 202 once signalled.
pub(crate) async fn disconnect(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    channels::disconnect(&state, &user).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /api/server/canvases/{id}/presence`: every user on it, fog
/// activity included.
pub(crate) async fn presence(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let list = crate::ops::presence::list(&state, &canvas, true).await?;
    Ok(Json(list).into_response())
}

/// `GET /api/server/canvases/{id}/events?since=&limit=`: durable events
/// after `since`, gm-only ones included.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    ApiQuery(q): ApiQuery<EventsQuery>,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let limit = history::page_limit(q.limit, 100)?;
    let page = history::events(&state, &canvas, q.since.unwrap_or(0), limit, true).await?;
    Ok(Json(page).into_response())
}
