//! The REST fallback for clients that cannot hold a WebSocket:
//!
//! - `POST /api/canvases/{id}/draw` `{"pixels": [{"x", "y", "color"}],
//!   "key"?}`: a durable draw; 200 `{"seq": n}` (the first one's for a
//!   resent key).
//! - `POST /api/canvases/{id}/cursor` `{"x", "y"}`: an ephemeral cursor
//!   update; 202.
//!
//! The same operations, validation, roles and rate limits as over
//! WebSocket: the user's shared buckets (`EASEL_USER_RATE_LIMITS`) pay,
//! since a request has no connection of its own.

use crate::http::on_canvas;
use crate::http::{ApiError, Authed, CanvasPath, json_body};
use crate::limits::OpClass;
use crate::ops::{self, OpError, Payer};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::protocol::{CursorMove, Draw, PixelInput};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrawBody {
    pixels: Vec<PixelInput>,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CursorBody {
    x: f64,
    y: f64,
}

/// A request pays from its user's buckets, shared with the user's
/// connections to this gateway.
pub(crate) struct UserPayer<'a> {
    pub state: &'a AppState,
    pub user: &'a str,
}

impl Payer for UserPayer<'_> {
    fn pay(&mut self, class: OpClass, cost: usize) -> Result<(), OpError> {
        let limits = self.state.users.limits(self.user);
        limits
            .take(&self.state.settings.user_rate_limits, class, cost as f64)
            .map_err(|wait| ops::rate_refusal(self.state, class, wait, false))
    }
}

/// `POST /api/canvases/{id}/draw`.
pub(crate) async fn draw(
    State(state): State<Arc<AppState>>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (caller, geometry) = on_canvas(&state, &identity, &canvas).await?;
    let DrawBody { pixels, key } = json_body(&body)?;
    let cmd = Draw {
        id: None,
        canvas,
        key,
        pixels,
    };
    let mut payer = UserPayer {
        state: &state,
        user: &identity.user_id,
    };
    let done = ops::pixels::draw(&state, &caller, &mut payer, &geometry, cmd).await?;
    let seq = done.map(|p| p.seq);
    Ok(Json(serde_json::json!({ "seq": seq })).into_response())
}

/// `POST /api/canvases/{id}/cursor`.
pub(crate) async fn cursor(
    State(state): State<Arc<AppState>>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (caller, geometry) = on_canvas(&state, &identity, &canvas).await?;
    let CursorBody { x, y } = json_body(&body)?;
    let cmd = CursorMove {
        id: None,
        canvas,
        x,
        y,
    };
    let mut payer = UserPayer {
        state: &state,
        user: &identity.user_id,
    };
    let position = ops::cursors::accept(&caller, &mut payer, &geometry, &cmd)?;
    ops::cursors::publish(&state, &caller, &cmd.canvas, position, shared::now_ms()).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
