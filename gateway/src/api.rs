//! REST endpoints for canvas state and history:
//!
//! - `GET /api/canvases/{id}/snapshot`: the canvas's pixels and the `seq`
//!   they include, read atomically. `?format=packed` (default: the compact
//!   form Redis holds, `X-Easel-Bits` bits per cell, most significant bit
//!   first), `cells` (one byte per cell) or `png` (for people).
//! - `GET /api/canvases/{id}/events?since=&limit=`: durable events after
//!   `since`, oldest first, from the canvas log or, once trimmed, Postgres.
//!
//! Both need a token (`Authorization: Bearer` or `?token=`). Errors are
//! JSON `{"code": "E0xx", "message": ...}` with an HTTP status.

use crate::canvases::{CanvasDef, CatalogueError};
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::auth::{Identity, Role};
use shared::codec::{self, Encoding};
use shared::protocol::{ChatPage, HistoryPage, ServerMessage};
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

/// Most events one page returns.
pub const MAX_PAGE: usize = 1000;

/// A page size: `limit`, or `default` without one; 1 to [`MAX_PAGE`].
pub(crate) fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, String> {
    match limit.unwrap_or(default) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(format!("limit must be 1..={MAX_PAGE}")),
    }
}

/// [`page_limit`], refused with 400 `E007`.
pub(crate) fn rest_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    page_limit(limit, default)
        .map_err(|message| error(StatusCode::BAD_REQUEST, ErrorCode::InvalidValue, message))
}

/// `Query`, with a malformed query string (a number that is not one, say)
/// refused as 400 `E006` in the API's JSON error form rather than axum's
/// plain text.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidMessage,
                    rejection.body_text(),
                )
            })
    }
}

/// A JSON request body, or 400 `E006` saying what is wrong with it.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            format!("body: {e}"),
        )
    })
}

/// An API failure: an HTTP status with a stable code and a message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

pub(crate) fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

/// Checks the token from the header or the query string; the identity it
/// names.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<shared::auth::Identity, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .or_else(|| query_token.map(str::to_owned));
    let Some(token) = token else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthFailed,
            "a token is required",
        ));
    };
    state.verifier.verify(&token).map_err(|e| {
        error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthFailed,
            e.to_string(),
        )
    })
}

pub(crate) fn canvas_id(id: &str) -> Result<CanvasId, ApiError> {
    CanvasId::new(id).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            e.to_string(),
        )
    })
}

pub(crate) fn unavailable(err: fanout::BusError) -> ApiError {
    tracing::warn!(error = %err, "canvas state unavailable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "canvas state unavailable; retry",
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotQuery {
    token: Option<String>,
    format: Option<String>,
}

/// `GET /api/canvases/{id}/snapshot`.
pub(crate) async fn snapshot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    let format = q.format.as_deref().unwrap_or("packed");
    if !matches!(format, "packed" | "cells" | "png") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidValue,
            "format must be packed, cells or png",
        ));
    }
    let def = canvas_def(&state, &canvas).await?;
    let geometry = def.geometry();
    let bits = fanout::PixelChange::bits_for(geometry.palette_size);
    let cells = geometry.width as usize * geometry.height as usize;
    // Initialises (or rebuilds) a canvas Redis does not have, like a join.
    let position = state.fanout.position(&canvas).await.map_err(unavailable)?;
    let snap = state
        .fanout
        .snapshot(&canvas, bits, cells)
        .await
        .map_err(unavailable)?;
    let (content_type, body) = match format {
        "cells" => ("application/octet-stream", snap.cells),
        "png" => match render_png(geometry.width, geometry.height, &def.palette, &snap.cells) {
            Ok(png) => ("image/png", png),
            Err(err) => {
                tracing::error!(error = %err, "png encoding failed");
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Unavailable,
                    "png encoding failed",
                ));
            }
        },
        _ => {
            let mut packed = Vec::new();
            for (i, c) in snap.cells.iter().enumerate() {
                if *c != 0 {
                    fanout::pack_cell(&mut packed, bits, i, *c);
                }
            }
            packed.resize((cells * usize::from(bits)).div_ceil(8), 0);
            ("application/octet-stream", packed)
        }
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in [
        ("x-easel-seq", snap.seq.to_string()),
        ("x-easel-epoch", snap.epoch.unwrap_or(position.epoch)),
        ("x-easel-width", geometry.width.to_string()),
        ("x-easel-height", geometry.height.to_string()),
        ("x-easel-palette-size", geometry.palette_size.to_string()),
        ("x-easel-bits", bits.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(resp)
}

fn render_png(
    width: u32,
    height: u32,
    palette: &[[u8; 3]],
    cells: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        let rgb: Vec<u8> = cells
            .iter()
            .flat_map(|c| palette.get(usize::from(*c)).copied().unwrap_or([0, 0, 0]))
            .collect();
        writer.write_image_data(&rgb)?;
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    token: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/canvases/{id}/events?since=&limit=`.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = authorize(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    let since = q.since.unwrap_or(0);
    let limit = rest_limit(q.limit, 100)?;
    canvas_def(&state, &canvas).await?;
    let gm = sees_gm(&state, &identity, &canvas);
    let page = history_page(&state, &canvas, since, limit, gm)
        .await
        .map_err(unavailable)?;
    Ok(Json(page).into_response())
}

/// `GET /api/canvases/{id}/objects`: the canvas's objects and the `seq`
/// they include (fog regions only for a gm on the canvas).
pub(crate) async fn objects(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = authorize(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    canvas_def(&state, &canvas).await?;
    let gm = sees_gm(&state, &identity, &canvas);
    let (position, objects) = state
        .fanout
        .objects(&canvas, gm)
        .await
        .map_err(unavailable)?;
    Ok(Json(shared::protocol::ObjectsPage {
        canvas,
        seq: position.seq,
        epoch: position.epoch,
        objects,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct OnlineQuery {
    token: Option<String>,
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
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, q.token.as_deref())?;
    let ids: Vec<String> = q
        .ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() || ids.len() > MAX_ONLINE_IDS {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidValue,
            format!("ids must name 1 to {MAX_ONLINE_IDS} users, comma-separated"),
        ));
    }
    let online = state.fanout.online_check(&ids).await.map_err(unavailable)?;
    let map: serde_json::Map<String, serde_json::Value> = ids
        .into_iter()
        .zip(online)
        .map(|(id, on)| (id, serde_json::Value::Bool(on)))
        .collect();
    Ok(Json(serde_json::json!({ "online": map })).into_response())
}

/// `GET /api/canvases/{id}/presence`: who is on the canvas.
pub(crate) async fn presence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    canvas_def(&state, &canvas).await?;
    let users = state
        .fanout
        .presence_list(&canvas)
        .await
        .map_err(unavailable)?;
    Ok(Json(shared::protocol::PresenceList { canvas, users }).into_response())
}

/// Whether `identity` is a gm on `canvas`, and so sees gm-only data.
pub(crate) fn sees_gm(state: &AppState, identity: &Identity, canvas: &CanvasId) -> bool {
    identity.role_or(canvas.as_str(), state.settings.default_role) >= Role::Gm
}

/// The canvas's definition, or 404 `E009`.
pub(crate) async fn canvas_def(
    state: &AppState,
    canvas: &CanvasId,
) -> Result<Arc<CanvasDef>, ApiError> {
    match state.canvases.get(canvas).await {
        Ok(Some(def)) => Ok(def),
        Ok(None) => Err(not_found(canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

fn catalogue_error(err: CatalogueError) -> ApiError {
    match err {
        CatalogueError::NoCatalogue => error(
            StatusCode::NOT_IMPLEMENTED,
            ErrorCode::Unavailable,
            err.to_string(),
        ),
        CatalogueError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "canvas catalogue unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "canvas catalogue unavailable; retry",
            )
        }
    }
}

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

/// Admits a request that changes the catalogue: a server API key, or a
/// token with the `admin` claim (401 `E002` without either, 403 `E008`
/// for a token without the claim).
fn authorize_admin(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<(), ApiError> {
    if crate::server_api::has_key(headers) {
        return crate::server_api::check_key(state, headers);
    }
    let identity = authorize(state, headers, query_token)?;
    if identity.admin {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "changing canvases needs a token with the admin claim, or a server API key",
        ))
    }
}

/// Tells lobby screens on every gateway (the global channel), and the
/// canvas's own members, that a canvas was created, updated or deleted.
async fn announce_change(state: &AppState, canvas: &CanvasId, change: &str) {
    let event = ServerMessage::CanvasesChanged(shared::protocol::CanvasesChanged {
        canvas: canvas.clone(),
        change: change.into(),
        ts: shared::now_ms(),
    });
    let header = state.bus_header(0);
    for channel in [CanvasId::global_channel(), canvas.clone()] {
        if let Err(err) = state.fanout.publish(&channel, &header, &event).await {
            tracing::warn!(%canvas, error = %err, "canvases_changed not published");
        }
    }
}

/// The title in a request body, checked; 400 `E007` if it is not a title.
fn title(given: Option<String>) -> Result<Option<String>, ApiError> {
    given
        .map(|t| crate::canvases::check_title(&t))
        .transpose()
        .map_err(|m| error(StatusCode::BAD_REQUEST, ErrorCode::InvalidValue, m))
}

/// `POST /api/canvases`.
pub(crate) async fn create_canvas(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize_admin(&state, &headers, q.token.as_deref())?;
    let new: NewCanvas = json_body(&body)?;
    let id = canvas_id(&new.id)?;
    let palette = match new.palette {
        None => crate::canvases::default_palette(state.settings.canvas.palette_size),
        Some(list) => list
            .iter()
            .map(|c| {
                crate::canvases::parse_rgb(c).ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidValue,
                        format!("palette entry {c:?} is not #rrggbb"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let def = CanvasDef {
        id,
        width: new.width,
        height: new.height,
        palette,
        title: title(new.title)?,
    };
    let geometry = shared::validate::CanvasGeometry {
        width: def.width,
        height: def.height,
        palette_size: u16::try_from(def.palette.len()).unwrap_or(u16::MAX),
    };
    geometry
        .check()
        .map_err(|m| error(StatusCode::BAD_REQUEST, ErrorCode::InvalidValue, m))?;
    match state.canvases.create(def.clone()).await {
        Ok(true) => {
            announce_change(&state, &def.id, "created").await;
            Ok((StatusCode::CREATED, Json(def.to_json())).into_response())
        }
        Ok(false) => Err(error(
            StatusCode::CONFLICT,
            ErrorCode::InvalidValue,
            format!(
                "canvas {:?} already exists, or existed (ids of deleted canvases are not reused)",
                def.id
            ),
        )),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// `PATCH /api/canvases/{id}` `{"title": ...}`: changes the title.
pub(crate) async fn update_canvas(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize_admin(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    let change: CanvasChange = json_body(&body)?;
    let title = title(change.title)?;
    match state.canvases.set_title(&canvas, title.as_deref()).await {
        Ok(Some(def)) => {
            announce_change(&state, &canvas, "updated").await;
            Ok(Json(def.to_json()).into_response())
        }
        Ok(None) => Err(not_found(&canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// `DELETE /api/canvases/{id}`: 204; the canvas is gone from the list and
/// refuses joins and writes (other gateways notice within the catalogue
/// cache's TTL); its members are told.
pub(crate) async fn delete_canvas(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_admin(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    match state.canvases.delete(&canvas).await {
        Ok(true) => {
            announce_change(&state, &canvas, "deleted").await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Ok(false) => Err(not_found(&canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

fn not_found(canvas: &CanvasId) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no canvas {canvas:?}"),
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuthOnly {
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    token: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/canvases?after=&limit=`.
pub(crate) async fn list_canvases(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, q.token.as_deref())?;
    let limit = rest_limit(q.limit, 100)?;
    let defs = state
        .canvases
        .list(q.after.as_deref(), limit)
        .await
        .map_err(catalogue_error)?;
    let next = defs.last().map(|d| d.id.clone());
    Ok(Json(serde_json::json!({
        "canvases": defs.iter().map(CanvasDef::to_json).collect::<Vec<_>>(),
        "next_after": next,
    }))
    .into_response())
}

/// `GET /api/canvases/{id}`.
pub(crate) async fn get_canvas(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AuthOnly>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    // Read now, not from the cache: a title changed on another gateway
    // shows at once.
    match state.canvases.fresh(&canvas).await {
        Ok(Some(def)) => Ok(Json(def.to_json()).into_response()),
        Ok(None) => Err(not_found(&canvas)),
        Err(err) => Err(catalogue_error(err)),
    }
}

/// Durable events of `canvas` after `since`, oldest first, at most `limit`,
/// with the canvas's position; shared by the REST endpoint and the
/// WebSocket `history` command.
pub(crate) async fn history_page(
    state: &AppState,
    canvas: &CanvasId,
    since: u64,
    limit: usize,
    gm: bool,
) -> Result<HistoryPage, fanout::BusError> {
    let position = state.fanout.position(canvas).await?;
    let page = state
        .fanout
        .events(canvas, since, position.seq, limit)
        .await?;
    // False when events after `since` are no longer kept anywhere: reload
    // the snapshot instead.
    let complete = since >= position.seq || page.first().is_some_and(|(seq, _)| *seq == since + 1);
    let mut events = Vec::with_capacity(page.len());
    // Gm-only events are `hidden` for others, keeping the numbering gapless.
    events.extend(
        page.iter()
            .filter_map(|(_, payload)| fanout::visible_event(payload, gm)),
    );
    Ok(HistoryPage {
        canvas: canvas.clone(),
        epoch: position.epoch,
        seq: position.seq,
        complete,
        next_since: page.last().map_or(since, |(seq, _)| *seq),
        events,
    })
}

/// The chat messages with `seq < before` (all, without `before`), the
/// newest `limit` of them, oldest first.
pub(crate) async fn chat_page(
    state: &AppState,
    canvas: &CanvasId,
    before: Option<u64>,
    limit: usize,
) -> Result<ChatPage, fanout::BusError> {
    let before = before.unwrap_or(u64::MAX);
    let found = state.fanout.chat_before(canvas, before, limit).await?;
    // Older messages may exist only when the page is full.
    let next_before = (found.len() == limit)
        .then(|| found.last().map(|(seq, _)| *seq))
        .flatten();
    let mut messages = Vec::with_capacity(found.len());
    for (seq, payload) in found.iter().rev() {
        let Ok(parts) = shared::busframe::split(payload) else {
            continue;
        };
        if let Ok(ServerMessage::Chat(mut chat)) =
            codec::decode_server(Encoding::Msgpack, &parts.event)
        {
            chat.seq = Some(*seq);
            messages.push(chat);
        }
    }
    Ok(ChatPage {
        canvas: canvas.clone(),
        messages,
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_encodes_with_any_index() {
        let palette = crate::canvases::default_palette(32);
        let png = render_png(3, 2, &palette, &[0, 1, 2, 29, 30, 255]).expect("encodes");
        assert_eq!(&png[1..4], b"PNG");
    }
}
