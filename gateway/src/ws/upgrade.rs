//! `GET /ws`: checks the upgrade request (headers, Origin, subprotocol,
//! capacity), answers 101, and hands the upgraded socket to a connection
//! task. Every refusal is an HTTP status with a JSON body
//! `{"code": "E0xx", "message": "..."}`.

use super::connection::{self, Accepted};
use crate::http::ApiError;
use crate::http::extract::token;
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use shared::ErrorCode;
use shared::codec::Encoding;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// An HTTP refusal, counted in `easel_gateway_upgrades_refused_total` by
/// `reason` (a fixed label).
fn refuse(
    state: &AppState,
    reason: &'static str,
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
) -> Response {
    count_refusal(state, reason);
    let body = serde_json::json!({"code": code, "message": message.into()});
    (status, Json(body)).into_response()
}

/// Counts a refused upgrade in `easel_gateway_upgrades_refused_total`.
fn count_refusal(state: &AppState, reason: &'static str) {
    debug_assert!(crate::metrics::UPGRADE_REFUSALS.contains(&reason));
    state
        .metrics
        .upgrades_refused
        .with_label_values(&[reason])
        .inc();
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// What a valid WebSocket handshake asked for.
struct Handshake {
    /// `Sec-WebSocket-Key`, to derive the accept key from.
    key: HeaderValue,
    /// The subprotocol chosen, if the client offered one.
    negotiated: Option<Encoding>,
}

/// The `/ws` handler: the handshake, the token's place, then admission
/// (address rate, drain, capacity), then the upgrade.
pub(crate) async fn websocket(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let handshake = match handshake(&state, peer, req.headers()) {
        Ok(h) => h,
        Err(refusal) => return *refusal,
    };
    let token = match token(req.headers(), req.uri().query()) {
        Ok(t) => t,
        Err(refusal) => {
            state
                .metrics
                .auth_failures
                .with_label_values(&["bad_authorization_header"])
                .inc();
            return refusal.into_response();
        }
    };
    let permit = match crate::http::admit::connection(&state, peer, req.headers()) {
        Ok(permit) => permit,
        Err(refused) => {
            count_refusal(&state, refused.reason);
            return ApiError(refused.error).into_response();
        }
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(
            &state,
            "not_upgradable",
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            "connection cannot be upgraded (HTTP/1.1 required)",
        );
    };

    let encoding = handshake.negotiated.unwrap_or(Encoding::Json);
    let accepted = Accepted {
        conn: state.next_conn(),
        peer,
        encoding,
        token,
    };
    spawn_connection(&state, on_upgrade, permit, accepted);
    switching_protocols(&handshake)
}

/// Checks the upgrade request's headers: WebSocket, version 13, a key, an
/// allowed Origin and a known subprotocol.
fn handshake(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Handshake, Box<Response>> {
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(Box::new(refuse(
            state,
            "not_websocket",
            StatusCode::UPGRADE_REQUIRED,
            ErrorCode::InvalidMessage,
            "this endpoint speaks WebSocket only (Upgrade: websocket)",
        )));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut resp = refuse(
            state,
            "bad_version",
            StatusCode::UPGRADE_REQUIRED,
            ErrorCode::InvalidMessage,
            "Sec-WebSocket-Version must be 13",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(resp));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Err(Box::new(refuse(
            state,
            "no_key",
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            "Sec-WebSocket-Key is missing",
        )));
    };
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("<invalid>"));
    if !state.settings.origins.allows(origin) {
        tracing::info!(%peer, origin = origin.unwrap_or_default(), "origin refused");
        return Err(Box::new(refuse(
            state,
            "origin",
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "origin not allowed",
        )));
    }
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|v| v.to_str().unwrap_or("<invalid>"));
    let negotiated = Encoding::negotiate(offered).map_err(|err| {
        Box::new(refuse(
            state,
            "subprotocol",
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            err.to_string(),
        ))
    })?;
    Ok(Handshake { key, negotiated })
}

/// Runs the connection once the upgrade completes, holding its permit.
fn spawn_connection(
    state: &Arc<AppState>,
    on_upgrade: hyper::upgrade::OnUpgrade,
    permit: OwnedSemaphorePermit,
    accepted: Accepted,
) {
    let task_state = state.clone();
    // Boxed until the connection starts: the task's future keeps a slot
    // for each thing it captured for the connection's whole life.
    let accepted = Box::new(accepted);
    state.tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(err) => {
                tracing::debug!(peer = %accepted.peer, error = %err, "upgrade failed");
                return;
            }
        };
        // Boxed and split here so that neither the setup future nor the
        // 328-byte stream struct stays inside the connection's long-lived
        // future (see docs/BENCHMARKS.md, idle memory).
        let ws = Box::pin(WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(task_state.ws_config),
        ))
        .await;
        let (sink, stream) = ws.split();
        connection::serve(task_state, stream, sink, *accepted).await;
        drop(permit);
    });
}

/// The 101 answer to a valid handshake.
fn switching_protocols(handshake: &Handshake) -> Response {
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(handshake.key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(enc) = handshake.negotiated {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(enc.subprotocol()),
        );
    }
    resp
}
