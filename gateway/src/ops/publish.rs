//! Publishing an operation's event: durable ones through the log's atomic
//! step (numbered, applied, stored, published), ephemeral ones on the bus.
//! Every publish is timed here and every failure becomes one [`OpError`].

use super::{Caller, OpError};
use crate::state::AppState;
use shared::protocol::{Published, ServerMessage};
use shared::{CanvasId, ErrorCode};
use store::{Change, OpKey, Refusal, StoreError, Written};

/// Suggested wait after `E013`: about one persister batch.
const BACKLOG_RETRY_MS: u64 = 1000;

/// The caller's operation key, validated (before the operation is paid
/// for), with the window it is remembered for.
pub(crate) fn op_key(
    state: &AppState,
    caller: &Caller,
    key: Option<&str>,
) -> Result<Option<OpKey>, OpError> {
    let Some(key) = key else {
        return Ok(None);
    };
    shared::validate::op_key(key).map_err(OpError::invalid)?;
    Ok(Some(OpKey {
        user: caller.author.id.clone(),
        key: key.to_owned(),
        window: state.settings.op_key_window,
    }))
}

/// The ack's result for a durable operation: its sequence number and the
/// object a create made (`created` when applied now; the first one's when
/// a resend was answered); `None` when it changed nothing.
pub(crate) fn published(written: Written, created: Option<String>) -> Option<Published> {
    match written {
        Written::Applied(seq) => Some(Published {
            seq,
            object: created,
        }),
        Written::Repeated { seq, object } => Some(Published { seq, object }),
        Written::Unchanged => None,
    }
}

/// Publishes a durable event for `caller` (a resend of a remembered `key`
/// is answered as the first one was, and not applied again).
pub(crate) async fn durable(
    state: &AppState,
    caller: &Caller,
    canvas: &CanvasId,
    event: &ServerMessage,
    change: Option<&Change>,
    key: Option<&OpKey>,
) -> Result<Written, OpError> {
    let conn = caller.conn;
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
        .publish_keyed(canvas, &header, event, change, key)
        .await;
    state
        .metrics
        .publish_durable
        .observe(started.elapsed().as_secs_f64());
    let written = published.map_err(|err| durable_error(state, canvas, err))?;
    if matches!(written, Written::Repeated { .. }) {
        state.metrics.durable_repeats.inc();
    }
    Ok(written)
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
        err if err.outcome_unknown() => {
            tracing::warn!(%canvas, error = %err, "durable publish outcome unknown");
            state.metrics.durable_unknown.inc();
            OpError::new(
                ErrorCode::Unavailable,
                "canvas log did not answer; the operation may or may not have been applied: resend it with the same key",
            )
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
