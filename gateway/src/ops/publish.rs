//! Publishing an operation's event: durable ones through the log's atomic
//! step (numbered, applied, stored, published), ephemeral ones on the bus.
//! Every publish is timed here and every failure becomes one [`OpError`].

use super::OpError;
use crate::state::AppState;
use shared::protocol::ServerMessage;
use shared::{CanvasId, ErrorCode};
use store::{Change, Refusal, StoreError};

/// Suggested wait after `E013`: about one persister batch.
const BACKLOG_RETRY_MS: u64 = 1000;

/// Publishes a durable event for connection `conn`; its sequence number,
/// or `None` when the change changes nothing (a repeated like).
pub(crate) async fn durable(
    state: &AppState,
    conn: u64,
    canvas: &CanvasId,
    event: &ServerMessage,
    change: Option<&Change>,
) -> Result<Option<u64>, OpError> {
    // A canvas deleted since the join takes no more writes (noticed within
    // the catalogue cache's TTL; its members were told).
    if !state.canvases.exists(canvas).await {
        return Err(OpError::new(
            ErrorCode::NotFound,
            format!("canvas {canvas:?} was deleted; nothing was applied"),
        ));
    }
    let header = state.bus_header(conn);
    let started = std::time::Instant::now();
    let published = state
        .log
        .publish_durable(canvas, &header, event, change)
        .await;
    state
        .metrics
        .publish_durable
        .observe(started.elapsed().as_secs_f64());
    published.map_err(|err| durable_error(state, canvas, err))
}

fn durable_error(state: &AppState, canvas: &CanvasId, err: StoreError) -> OpError {
    match err {
        StoreError::Refused(refusal) => {
            let code = match refusal {
                Refusal::NoObject => ErrorCode::NotFound,
                Refusal::NotOwner => ErrorCode::Forbidden,
                Refusal::Full => ErrorCode::LimitReached,
                Refusal::Exists => ErrorCode::InvalidValue,
            };
            OpError::new(code, format!("{refusal}; nothing was applied"))
        }
        StoreError::BacklogFull { backlog } => {
            tracing::warn!(%canvas, backlog, "durable write refused: backlog full");
            state.metrics.durable_refused.inc();
            OpError::new(
                ErrorCode::BacklogFull,
                format!(
                    "{backlog} events on this canvas are waiting to be persisted; not applied, retry later"
                ),
            )
            .retry_after(BACKLOG_RETRY_MS)
        }
        err => {
            tracing::warn!(%canvas, error = %err, "durable publish failed");
            OpError::new(
                ErrorCode::Unavailable,
                "canvas log unavailable; the operation was not applied",
            )
        }
    }
}

/// Publishes an ephemeral event for connection `conn` (0: none).
pub(crate) async fn ephemeral(
    state: &AppState,
    conn: u64,
    canvas: &CanvasId,
    event: &ServerMessage,
) -> Result<(), OpError> {
    let header = state.bus_header(conn);
    let started = std::time::Instant::now();
    let published = state.bus.publish(canvas, &header, event).await;
    state
        .metrics
        .publish_ephemeral
        .observe(started.elapsed().as_secs_f64());
    published.map_err(|err| {
        tracing::warn!(%canvas, error = %err, "publish failed");
        OpError::new(
            ErrorCode::Unavailable,
            "event bus unavailable; the operation was not applied",
        )
    })
}
