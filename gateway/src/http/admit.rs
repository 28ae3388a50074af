//! Admitting a new connection, whatever its transport (a WebSocket or an
//! SSE stream): within its address's connect rate, not while the gateway
//! drains, and within the gateway's capacity, whose permit the connection
//! holds until it ends. Every kind of connection counts towards every
//! limit.

use crate::ops::OpError;
use crate::state::AppState;
use axum::http::HeaderMap;
use shared::ErrorCode;
use std::net::SocketAddr;
use tokio::sync::OwnedSemaphorePermit;

/// Why a connection was refused: a fixed label for metrics, and the error.
pub(crate) struct Refused {
    pub reason: &'static str,
    pub error: OpError,
}

/// Admits a connection from `peer`; its capacity permit.
pub(crate) fn connection(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<OwnedSemaphorePermit, Box<Refused>> {
    let client_ip = state.settings.trusted_proxies.client_ip(
        peer.ip(),
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    );
    if let Some(limiter) = &state.ip_limiter
        && let Err(wait) = limiter.admit(client_ip)
    {
        state
            .metrics
            .rate_limited
            .with_label_values(&["connections"])
            .inc();
        tracing::info!(%client_ip, "new connection refused: too many from this address");
        let ms = wait.as_millis() as u64 + 1;
        return Err(Box::new(Refused {
            reason: "rate_limited",
            error: OpError::new(
                ErrorCode::RateLimited,
                format!("too many new connections from your address; retry in {ms} ms"),
            )
            .retry_after(ms),
        }));
    }
    if state.drain.is_closing() {
        return Err(Box::new(Refused {
            reason: "draining",
            error: OpError::new(
                ErrorCode::ConnectionFailed,
                "gateway is shutting down; connect to another",
            ),
        }));
    }
    state.permits.clone().try_acquire_owned().map_err(|_| {
        Box::new(Refused {
            reason: "capacity",
            error: OpError::new(
                ErrorCode::ConnectionFailed,
                "gateway is at its connection limit; try another or retry later",
            )
            .retry_after(1000),
        })
    })
}
