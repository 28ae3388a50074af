//! The REST fallback for clients that cannot hold a WebSocket:
//!
//! - `POST /api/canvases/{id}/draw` `{"pixels": [{"x", "y", "color"}]}`:
//!   a durable draw; 200 `{"seq": n}`.
//! - `POST /api/canvases/{id}/cursor` `{"x", "y"}`: an ephemeral cursor
//!   update; 202.
//! - `GET /api/canvases/{id}/activity?limit=`: the canvas's most recent
//!   durable events, oldest first.
//! - `GET /api/canvases/{id}/chat?before=&limit=`: chat messages with
//!   `seq < before`, the newest `limit` (default 50), oldest first.
//!
//! The same validation, roles and rate limits apply as over WebSocket: the
//! user's shared buckets (`EASEL_USER_RATE_LIMITS`) pay, since a request
//! has no connection of its own. Refusals are HTTP statuses with the
//! protocol's codes: 400 `E006`/`E007`, 403 `E008`, 404 `E009`, 429 `E004`
//! with `retry_after_ms` and `Retry-After`, 503 `E012`/`E013`.

use crate::api::{
    ApiError, ApiQuery, AuthOnly, authorize, canvas_def, canvas_id, chat_page, error, history_page,
    json_body, rest_limit, sees_gm, unavailable,
};
use crate::limits::OpClass;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::auth::{Identity, Role};
use shared::protocol::{CursorEvent, CursorMove, Draw, DrawEvent, PixelInput, ServerMessage};
use shared::validate::{self, CommandLimits};
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrawBody {
    pixels: Vec<PixelInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CursorBody {
    x: f64,
    y: f64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActivityQuery {
    token: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatQuery {
    token: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

/// 403 `E008` unless `identity` holds at least `needed` on `canvas`.
fn require(
    state: &AppState,
    identity: &Identity,
    canvas: &CanvasId,
    op: &str,
    needed: Role,
) -> Result<(), ApiError> {
    let role = identity.role_or(canvas.as_str(), state.settings.default_role);
    if role < needed {
        return Err(error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!(
                "{op} needs the {} role on canvas {canvas:?}; this token is {}",
                needed.name(),
                role.name()
            ),
        ));
    }
    Ok(())
}

/// What every operation checks first, in order: the token (401), the
/// canvas id (400), the canvas (404), the role for `op` (403).
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
    id: &str,
    op: &str,
    needed: Role,
) -> Result<(Identity, CanvasId, shared::validate::CanvasGeometry), ApiError> {
    let identity = authorize(state, headers, token)?;
    let canvas = canvas_id(id)?;
    let geometry = canvas_def(state, &canvas).await?.geometry();
    require(state, &identity, &canvas, op, needed)?;
    Ok((identity, canvas, geometry))
}

/// Pays from the user's shared bucket; if it cannot, the 429 `E004`
/// response with the wait.
fn refused(state: &AppState, user: &str, class: OpClass, cost: usize) -> Option<Response> {
    let limits = state.users.limits(user);
    let Err(wait) = limits.take(&state.settings.user_rate_limits, class, cost as f64) else {
        return None;
    };
    state
        .metrics
        .rate_limited
        .with_label_values(&[class.name()])
        .inc();
    let ms = wait.as_millis() as u64 + 1;
    let body = serde_json::json!({
        "code": ErrorCode::RateLimited,
        "message": format!("{} rate limit: not applied; retry in {ms} ms", class.name()),
        "retry_after_ms": ms,
    });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(resp)
}

/// `POST /api/canvases/{id}/draw`.
pub(crate) async fn draw(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (identity, canvas, geometry) = admit(
        &state,
        &headers,
        q.token.as_deref(),
        &id,
        "draw",
        Role::Player,
    )
    .await?;
    let DrawBody { pixels } = json_body(&bytes)?;
    let cmd = Draw {
        id: None,
        canvas: canvas.clone(),
        pixels,
    };
    let limits = CommandLimits {
        max_pixels_per_draw: state.settings.max_pixels_per_draw,
    };
    let pixels = validate::draw(&cmd, &geometry, &limits)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.code, e.message))?;
    if let Some(refusal) = refused(&state, &identity.user_id, OpClass::Pixels, pixels.len()) {
        return Ok(refusal);
    }
    let change = fanout::Change::Pixels(crate::session::pixel_change(&geometry, &pixels));
    let event = ServerMessage::Draw(DrawEvent {
        canvas: canvas.clone(),
        seq: None,
        author: identity.author(),
        ts: shared::now_ms(),
        pixels,
    });
    match state
        .fanout
        .publish_durable(&canvas, &state.bus_header(0), &event, Some(&change))
        .await
    {
        Ok(seq) => Ok(Json(serde_json::json!({ "seq": seq })).into_response()),
        Err(fanout::BusError::BacklogFull { backlog }) => {
            state.metrics.durable_refused.inc();
            let body = serde_json::json!({
                "code": ErrorCode::BacklogFull,
                "message": format!("{backlog} events on this canvas are waiting to be persisted; not applied, retry later"),
                "retry_after_ms": 1000,
            });
            Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response())
        }
        Err(err) => Err(unavailable(err)),
    }
}

/// `POST /api/canvases/{id}/cursor`.
pub(crate) async fn cursor(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (identity, canvas, geometry) = admit(
        &state,
        &headers,
        q.token.as_deref(),
        &id,
        "cursor",
        Role::Spectator,
    )
    .await?;
    let CursorBody { x, y } = json_body(&bytes)?;
    let cmd = CursorMove {
        id: None,
        canvas: canvas.clone(),
        x,
        y,
    };
    let (x, y) = validate::cursor(&cmd, &geometry)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.code, e.message))?;
    if let Some(refusal) = refused(&state, &identity.user_id, OpClass::Cursors, 1) {
        return Ok(refusal);
    }
    let event = ServerMessage::Cursor(CursorEvent {
        canvas: canvas.clone(),
        author: identity.author(),
        ts: shared::now_ms(),
        x,
        y,
    });
    state
        .fanout
        .publish(&canvas, &state.bus_header(0), &event)
        .await
        .map_err(unavailable)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /api/canvases/{id}/activity?limit=`: the latest durable events.
pub(crate) async fn activity(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, canvas, _) = admit(
        &state,
        &headers,
        q.token.as_deref(),
        &id,
        "activity",
        Role::Spectator,
    )
    .await?;
    let limit = rest_limit(q.limit, 50)?;
    let position = state.fanout.position(&canvas).await.map_err(unavailable)?;
    let since = position.seq.saturating_sub(limit as u64);
    let gm = sees_gm(&state, &identity, &canvas);
    let page = history_page(&state, &canvas, since, limit, gm)
        .await
        .map_err(unavailable)?;
    Ok(Json(page).into_response())
}

/// `GET /api/canvases/{id}/chat?before=&limit=`: chat messages before a
/// sequence number, oldest first; `next_before` pages further back.
pub(crate) async fn chat(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ChatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, canvas, _) = admit(
        &state,
        &headers,
        q.token.as_deref(),
        &id,
        "chat history",
        Role::Spectator,
    )
    .await?;
    let limit = rest_limit(q.limit, 50)?;
    let page = chat_page(&state, &canvas, q.before, limit)
        .await
        .map_err(unavailable)?;
    Ok(Json(page).into_response())
}
