//! Server-Sent Events, for clients that cannot hold a WebSocket:
//! `GET /sse/canvases/{id}` (a canvas's events), `GET /sse/notifications`
//! (the user's notifications) and `GET /sse/system` (the `global` channel).
//!
//! The stream is a hub member like a WebSocket connection (same outbound
//! queue, join gate and slow-consumer rule), encoded as JSON. It opens with
//! a `joined` event (the position and role), then every event as an
//! unnamed SSE message whose `data` is the protocol's JSON; durable events
//! carry `id: <seq>`, so a browser's `EventSource` reconnects with
//! `Last-Event-ID` and gets exactly the events it missed (or a `resync`
//! with reason `history_unavailable` when they are no longer kept).

use crate::api::{
    ApiError, ApiQuery, authorize, canvas_def, canvas_id, error, sees_gm, unavailable,
};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use fanout::{ConnControl, JoinGate, Member, Outbound};
use futures_util::StreamExt;
use futures_util::stream;
use serde::Deserialize;
use shared::codec::Encoding;
use shared::protocol::{ResumeOutcome, Resync, ResyncReason, ServerMessage};
use shared::{CanvasId, CloseCode, ErrorCode};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Deserialize)]
pub(crate) struct SseQuery {
    token: Option<String>,
    /// For clients that cannot set the `Last-Event-ID` header.
    last_event_id: Option<u64>,
}

/// Leaves the canvas when the stream is dropped (the client went away).
struct Membership {
    state: Arc<AppState>,
    canvas: CanvasId,
    conn: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.state.fanout.leave(&self.canvas, self.conn);
        self.state.metrics.connections_open.dec();
    }
}

/// What the stream needs between events.
struct Streaming {
    queue: Arc<Outbound>,
    control: Arc<ConnControl>,
    membership: Membership,
}

/// `GET /sse/canvases/{id}`.
pub(crate) async fn canvas_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SseQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = authorize(&state, &headers, q.token.as_deref())?;
    let canvas = canvas_id(&id)?;
    canvas_def(&state, &canvas).await?;
    let gm = sees_gm(&state, &identity, &canvas);
    let since = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidValue,
                        "Last-Event-ID must be a sequence number",
                    )
                })?,
        ),
        None => q.last_event_id,
    };
    let gate = JoinGate::holding();
    let (queue, control, membership) = open_member(&state, &canvas, gate.clone(), gm).await?;
    let position = state.fanout.position(&canvas).await.map_err(unavailable)?;
    let (outcome, replay) = match since {
        None => (None, Vec::new()),
        Some(since) => {
            let (outcome, events) =
                crate::session::replay_plan(&state, &canvas, &position, since, None)
                    .await
                    .map_err(unavailable)?;
            (Some(outcome), events)
        }
    };
    let joined = serde_json::json!({
        "canvas": canvas,
        "seq": position.seq,
        "epoch": position.epoch,
        "resume": outcome.map(ResumeOutcome::name),
    });
    // The replay, then what the gate held, in order; later events follow
    // through the gate as they come.
    for (_, payload) in &replay {
        if let Some(frame) = fanout::client_frame(payload, Encoding::Json, gm) {
            queue.offer_wait(frame, 0).await;
        }
    }
    if matches!(
        outcome,
        Some(ResumeOutcome::HistoryUnavailable | ResumeOutcome::Ahead)
    ) {
        let notice = ServerMessage::Resync(Resync {
            canvas: canvas.clone(),
            reason: ResyncReason::HistoryUnavailable,
        });
        if let Some(frame) = fanout::frame_for(Encoding::Json, &notice) {
            queue.offer_wait(frame, 0).await;
        }
    }
    gate.release(position.seq, &queue).await;

    let first = Event::default().event("joined").data(joined.to_string());
    Ok(respond(first, (queue, control, membership)))
}

/// `GET /sse/notifications`: the token's user's notifications.
pub(crate) async fn notifications(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<SseQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = authorize(&state, &headers, q.token.as_deref())?;
    channel_events(
        &state,
        CanvasId::user_channel(&identity.user_id),
        "notifications",
    )
    .await
}

/// `GET /sse/system`: the `global` channel (announcements, canvas changes).
pub(crate) async fn system(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<SseQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, q.token.as_deref())?;
    channel_events(&state, CanvasId::global_channel(), "global").await
}

/// `GET /sse/online`: the `online` channel (`user_online`, `user_offline`).
pub(crate) async fn online(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<SseQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, q.token.as_deref())?;
    channel_events(&state, CanvasId::online_channel(), "online").await
}

/// A channel's live messages (no history: channels keep none).
async fn channel_events(
    state: &Arc<AppState>,
    channel: CanvasId,
    name: &str,
) -> Result<Response, ApiError> {
    let (queue, control, membership) =
        open_member(state, &channel, JoinGate::open(), false).await?;
    let first = Event::default()
        .event("subscribed")
        .data(serde_json::json!({ "channel": name }).to_string());
    Ok(respond(first, (queue, control, membership)))
}

/// Makes a JSON hub member of `canvas` (a canvas or a channel) for a
/// stream, counted as an open connection until the stream is dropped.
async fn open_member(
    state: &Arc<AppState>,
    canvas: &CanvasId,
    gate: Arc<JoinGate>,
    gm: bool,
) -> Result<(Arc<Outbound>, Arc<ConnControl>, Membership), ApiError> {
    if state.drain.is_closing() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ConnectionFailed,
            "gateway is shutting down; connect to another",
        ));
    }
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let queue = Arc::new(Outbound::new(state.settings.outbound_queue));
    let control = Arc::new(ConnControl::new());
    let member = Member {
        conn,
        encoding: Encoding::Json,
        echo: false,
        tx: queue.clone(),
        control: control.clone(),
        gate,
        gm,
    };
    state.metrics.connections_open.inc();
    state.metrics.connections_opened.inc();
    let membership = Membership {
        state: state.clone(),
        canvas: canvas.clone(),
        conn,
    };
    state
        .fanout
        .join(canvas, member)
        .await
        .map_err(unavailable)?;
    Ok((queue, control, membership))
}

/// The SSE response: `first`, then the member's messages until it ends.
fn respond(
    first: Event,
    (queue, control, membership): (Arc<Outbound>, Arc<ConnControl>, Membership),
) -> Response {
    let start = Streaming {
        queue,
        control,
        membership,
    };
    let events = stream::once(async move { Ok::<_, std::convert::Infallible>(first) })
        .chain(stream::unfold(start, next_event));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The next SSE event, or the end of the stream when the member was closed
/// (slow consumer) or the gateway is draining.
async fn next_event(s: Streaming) -> Option<(Result<Event, std::convert::Infallible>, Streaming)> {
    let state = s.membership.state.clone();
    let conn = s.membership.conn;
    let frame = tokio::select! {
        biased;
        _ = s.control.closed() => None,
        _ = state.drain.turn(conn) => None,
        (frame, _) = s.queue.take() => Some(frame),
    };
    let Some(Message::Text(text)) = frame else {
        if s.control.reason() == Some(CloseCode::SlowConsumer) {
            tracing::info!(conn, "SSE stream closed: slow consumer");
        }
        return None;
    };
    let mut event = Event::default();
    if let Some(seq) = seq_of(text.as_str()) {
        event = event.id(seq.to_string());
    }
    Some((Ok(event.data(text.as_str())), s))
}

/// The `seq` of a durable event's JSON, if it has one.
fn seq_of(json: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Seq {
        seq: Option<u64>,
    }
    serde_json::from_str::<Seq>(json).ok()?.seq
}

#[cfg(test)]
mod tests {
    use super::seq_of;

    #[test]
    fn durable_events_have_their_seq_as_id() {
        assert_eq!(
            seq_of(r#"{"type":"draw","canvas":"c","seq":42,"pixels":[]}"#),
            Some(42)
        );
        assert_eq!(seq_of(r#"{"type":"cursor","canvas":"c","x":1}"#), None);
        assert_eq!(seq_of("not json"), None);
    }
}
