//! The server-side API for trusted backends, authenticated with an API key
//! (`EASEL_API_KEYS`; `Authorization: ApiKey <key>` or `X-Api-Key`):
//!
//! - `POST /api/server/canvases/{id}/notice` `{"data": ...}`: a `notice`
//!   to the canvas's members on every gateway.
//! - `POST /api/server/users/{id}/notify` `{"data": ...}`: a
//!   `notification` to every connection of that user, on every gateway.
//! - `POST /api/server/broadcast` `{"text": ...}`: an `announcement` on the
//!   `global` channel.
//!
//! All answer 202 once published. `data` is any JSON, passed through.

use crate::api::{ApiError, canvas_id, error, json_body, unavailable};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::protocol::{Announcement, ChatSend, Notice, Notification, ServerMessage};
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataBody {
    data: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request offers an API key (valid or not).
pub(crate) fn has_key(headers: &HeaderMap) -> bool {
    given_key(headers).is_some()
}

fn given_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
        .map(|(_, k)| k.trim())
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

/// 401 `E002` unless the request carries one of the configured keys.
pub(crate) fn check_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.settings.api_keys.is_empty() {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthFailed,
            "the server API is disabled: no EASEL_API_KEYS configured",
        ));
    }
    let Some(given) = given_key(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthFailed,
            "an API key is required (Authorization: ApiKey <key>, or X-Api-Key)",
        ));
    };
    // Every key is compared, so timing does not tell which matched.
    let matched = state
        .settings
        .api_keys
        .iter()
        .fold(false, |m, k| same(k.as_bytes(), given.as_bytes()) | m);
    if matched {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthFailed,
            "API key not accepted",
        ))
    }
}

/// The body as JSON within the message size limit, or 400 `E006`/`E003`.
fn body<T: serde::de::DeserializeOwned>(state: &AppState, bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > state.settings.max_message_bytes {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::MessageTooLarge,
            format!(
                "body is {} bytes; at most {}",
                bytes.len(),
                state.settings.max_message_bytes
            ),
        ));
    }
    json_body(bytes)
}

async fn publish(
    state: &AppState,
    channel: &CanvasId,
    event: &ServerMessage,
) -> Result<Response, ApiError> {
    let header = state.bus_header(0);
    state
        .fanout
        .publish(channel, &header, event)
        .await
        .map_err(unavailable)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /api/server/canvases/{id}/notice`.
pub(crate) async fn notice(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_key(&state, &headers)?;
    let canvas = canvas_id(&id)?;
    let DataBody { data } = body(&state, &bytes)?;
    let event = ServerMessage::Notice(Notice {
        canvas: canvas.clone(),
        data,
        ts: shared::now_ms(),
    });
    publish(&state, &canvas, &event).await
}

/// `POST /api/server/users/{id}/notify`.
pub(crate) async fn notify(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_key(&state, &headers)?;
    if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidValue,
            "user id must be 1 to 128 bytes without control characters",
        ));
    }
    let DataBody { data } = body(&state, &bytes)?;
    let event = ServerMessage::Notification(Notification {
        data,
        ts: shared::now_ms(),
    });
    publish(&state, &CanvasId::user_channel(&user), &event).await
}

/// `POST /api/server/broadcast`.
pub(crate) async fn broadcast(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_key(&state, &headers)?;
    let TextBody { text } = body(&state, &bytes)?;
    // The rules of chat text: 1 to 2,000 characters, rendered as text.
    let as_chat = ChatSend {
        id: None,
        canvas: CanvasId::global_channel(),
        text,
    };
    shared::validate::chat(&as_chat)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.code, e.message))?;
    let event = ServerMessage::Announcement(Announcement {
        text: as_chat.text,
        ts: shared::now_ms(),
    });
    publish(&state, &CanvasId::global_channel(), &event).await
}
