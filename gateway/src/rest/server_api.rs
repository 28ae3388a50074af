//! The server-side API for trusted backends, authenticated with an API key
//! (`EASEL_API_KEYS`; `Authorization: ApiKey <key>` or `X-Api-Key`):
//!
//! - `POST /api/server/canvases/{id}/notice` `{"data": ..., "durable":
//!   false, "key": null}`: a `notice` to the canvas's members on every
//!   gateway; durable, it is numbered and kept in the history (200
//!   `{"seq"}`; a resent `key` is applied once).
//! - `POST /api/server/users/{id}/notify` `{"data": ...}`: a
//!   `notification` to every connection of that user, on every gateway.
//! - `POST /api/server/broadcast` `{"text": ...}`: an `announcement` on the
//!   `global` channel.
//!
//! All answer 202 once published (a durable notice 200). `data` is any
//! JSON, passed through.

use crate::http::{ApiError, CanvasPath, ServerKey, json_body};
use crate::ops::channels;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::ErrorCode;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataBody {
    data: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeBody {
    data: serde_json::Value,
    #[serde(default)]
    durable: bool,
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

/// The body as JSON within the message size limit, or 413 `E003`/400 `E006`.
fn body<T: serde::de::DeserializeOwned>(state: &AppState, bytes: &[u8]) -> Result<T, ApiError> {
    let max = state.settings.max_message_bytes;
    if bytes.len() > max {
        return Err(ApiError::new(
            ErrorCode::MessageTooLarge,
            format!("body is {} bytes; at most {max}", bytes.len()),
        ));
    }
    json_body(bytes)
}

/// `POST /api/server/canvases/{id}/notice`.
pub(crate) async fn notice(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    CanvasPath(canvas): CanvasPath,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let NoticeBody { data, durable, key } = body(&state, &bytes)?;
    if durable {
        let seq = channels::durable_notice(&state, &canvas, data, key.as_deref()).await?;
        return Ok(axum::Json(serde_json::json!({ "seq": seq })).into_response());
    }
    if key.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            "a key is for durable notices (\"durable\": true)",
        ));
    }
    channels::notice(&state, &canvas, data).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /api/server/users/{id}/notify`.
pub(crate) async fn notify(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    Path(user): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let DataBody { data } = body(&state, &bytes)?;
    channels::notify(&state, &user, data).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /api/server/broadcast`.
pub(crate) async fn broadcast(
    State(state): State<Arc<AppState>>,
    _: ServerKey,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let TextBody { text } = body(&state, &bytes)?;
    channels::broadcast(&state, text).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
