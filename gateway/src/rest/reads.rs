//! REST reads of a canvas, each needing a token:
//!
//! - `GET /api/canvases/{id}/snapshot?format=`: the pixels and the `seq`
//!   they include (`packed`, the default: the compact form Redis holds,
//!   `X-Easel-Bits` bits per cell, most significant bit first; `cells`:
//!   one byte per cell; `png`: for people).
//! - `GET /api/canvases/{id}/events?since=&limit=`: durable events after
//!   `since`, oldest first, from the canvas log or, once trimmed, Postgres.
//! - `GET /api/canvases/{id}/activity?limit=`: the latest durable events.
//! - `GET /api/canvases/{id}/chat?before=&limit=`: chat messages with
//!   `seq < before`, the newest `limit` (default 50), oldest first.
//! - `GET /api/canvases/{id}/objects`, `GET /api/canvases/{id}/presence`.
//! - `GET /api/users/online?ids=a,b`: whether each user is online.

use crate::http::on_canvas;
use crate::http::{ApiError, ApiQuery, Authed, CanvasPath};
use crate::ops::{self, OpError, access, history};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::ErrorCode;
use shared::auth::Role;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotQuery {
    format: Option<String>,
}

/// `GET /api/canvases/{id}/snapshot`.
pub(crate) async fn snapshot(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let format = ops::snapshot::Format::parse(q.format.as_deref())?;
    let def = access::enter(&state, &identity, &canvas).await?.def;
    let taken = ops::snapshot::take(&state, &canvas, &def, format).await?;
    let geometry = def.geometry();
    let mut resp = taken.body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in [
        ("x-easel-seq", taken.seq.to_string()),
        ("x-easel-epoch", taken.epoch),
        ("x-easel-width", geometry.width.to_string()),
        ("x-easel-height", geometry.height.to_string()),
        ("x-easel-palette-size", geometry.palette_size.to_string()),
        ("x-easel-bits", taken.bits.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/canvases/{id}/events?since=&limit=`.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<EventsQuery>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let limit = history::page_limit(q.limit, 100)?;
    let (caller, _) = on_canvas(&state, &identity, &canvas).await?;
    let page = history::events(&state, &canvas, q.since.unwrap_or(0), limit, caller.gm()).await?;
    Ok(Json(page).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /api/canvases/{id}/activity?limit=`: the latest durable events.
pub(crate) async fn activity(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<LimitQuery>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let (caller, _) = on_canvas(&state, &identity, &canvas).await?;
    access::require(caller.role, Role::Spectator, "activity", &canvas)?;
    let limit = history::page_limit(q.limit, 50)?;
    let page = history::recent(&state, &canvas, limit, caller.gm()).await?;
    Ok(Json(page).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/canvases/{id}/chat?before=&limit=`: chat messages before a
/// sequence number, oldest first; `next_before` pages further back.
pub(crate) async fn chat(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ChatQuery>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let (caller, _) = on_canvas(&state, &identity, &canvas).await?;
    access::require(caller.role, Role::Spectator, "chat history", &canvas)?;
    let limit = history::page_limit(q.limit, 50)?;
    let page = history::chat(&state, &canvas, q.before, limit).await?;
    Ok(Json(page).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObjectsQuery {
    after: Option<String>,
}

/// `GET /api/canvases/{id}/objects?after=`: a page of the canvas's objects
/// and the `seq` they include (fog regions only for a gm on the canvas).
pub(crate) async fn objects(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ObjectsQuery>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let (caller, _) = on_canvas(&state, &identity, &canvas).await?;
    let after = q.after.as_deref();
    let page = ops::objects::list(&state, &canvas, caller.gm(), after).await?;
    Ok(Json(page).into_response())
}

/// `GET /api/canvases/{id}/presence`: who is on the canvas.
pub(crate) async fn presence(
    State(state): State<Arc<AppState>>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
) -> Result<Response, ApiError> {
    let (caller, _) = on_canvas(&state, &identity, &canvas).await?;
    let list = ops::presence::list(&state, &canvas, caller.gm()).await?;
    Ok(Json(list).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct OnlineQuery {
    /// Comma-separated user ids.
    ids: String,
}

/// Most users one online check may ask about.
const MAX_ONLINE_IDS: usize = 100;

/// `GET /api/users/online?ids=a,b`: whether each user has a connection
/// anywhere in the cluster (`{"online": {"a": true, "b": false}}`).
pub(crate) async fn online(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<OnlineQuery>,
    Authed(_): Authed,
) -> Result<Response, ApiError> {
    let ids: Vec<String> = q
        .ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() || ids.len() > MAX_ONLINE_IDS {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            format!("ids must name 1 to {MAX_ONLINE_IDS} users, comma-separated"),
        ));
    }
    let online = state
        .online
        .check(&ids)
        .await
        .map_err(|e| OpError::unavailable("online registry", &e))?;
    let map: serde_json::Map<String, serde_json::Value> = ids
        .into_iter()
        .zip(online)
        .map(|(id, on)| (id, serde_json::Value::Bool(on)))
        .collect();
    Ok(Json(serde_json::json!({ "online": map })).into_response())
}
