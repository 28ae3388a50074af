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

use crate::http::on_canvas;
use crate::http::{ApiError, ApiQuery, Authed, CanvasPath, admit};
use crate::limits::UserSlot;
use crate::ops::{self, OpError};
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use fanout::{Attention, ConnControl, JoinGate, Member, Outbound};
use futures_util::StreamExt;
use futures_util::stream;
use serde::Deserialize;
use shared::auth::Identity;
use shared::auth::Role;
use shared::busframe::Signal;
use shared::codec::Encoding;
use shared::protocol::{ResumeOutcome, Resync, ResyncReason, ServerMessage};
use shared::{CanvasId, CloseCode, ErrorCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Deserialize)]
pub(crate) struct SseQuery {
    /// For clients that cannot set the `Last-Event-ID` header.
    last_event_id: Option<u64>,
}

/// Leaves the canvas, and gives back the stream's place in every
/// connection limit, when the stream is dropped (the client went away).
struct Membership {
    state: Arc<AppState>,
    canvas: CanvasId,
    /// The user's channel, joined for signals alone (a disconnect).
    signals: Option<CanvasId>,
    conn: u64,
    /// The gateway's capacity: one of `EASEL_MAX_CONNECTIONS`.
    _permit: OwnedSemaphorePermit,
    /// The user's place in its per-user cap on this gateway.
    _user: UserSlot,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.state.bus.leave(&self.canvas, self.conn);
        if let Some(channel) = &self.signals {
            self.state.bus.leave(channel, self.conn);
        }
        self.state.metrics.connections_open.dec();
        // The cluster-wide count (the online registry) is left after the
        // grace period, like a closed WebSocket's.
        let last_here = crate::spread::last_here(&self.state, &self._user.limits);
        let (state, conn) = (self.state.clone(), self.conn);
        let user = self._user.user().to_owned();
        tokio::spawn(async move {
            state.online.leave(conn).await;
            if last_here {
                crate::spread::left(&state, &user).await;
            }
        });
    }
}

/// Who opens a stream: the caller, and where from (for the per-address
/// connection rate).
struct Opener<'a> {
    identity: &'a Identity,
    peer: SocketAddr,
    headers: &'a HeaderMap,
}

/// What the stream needs between events.
struct Streaming {
    queue: Arc<Outbound>,
    control: Arc<ConnControl>,
    membership: Membership,
    identity: Identity,
    /// A canvas stream's role, checked again when access changes.
    role: Option<Role>,
    /// The last event was sent: the stream ends.
    ending: bool,
}

/// `GET /sse/canvases/{id}`.
pub(crate) async fn canvas_events(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiQuery(q): ApiQuery<SseQuery>,
    Authed(identity): Authed,
    CanvasPath(canvas): CanvasPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (caller, _) = on_canvas(&state, &identity, &canvas).await?;
    let gm = caller.gm();
    let since = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidValue,
                        "Last-Event-ID must be a sequence number",
                    )
                })?,
        ),
        None => q.last_event_id,
    };
    let gate = JoinGate::holding();
    let opener = Opener {
        identity: &identity,
        peer,
        headers: &headers,
    };
    let (member, mut stream) = open_member(&state, &opener, &canvas, gate.clone(), gm).await?;
    stream.role = Some(caller.role);
    let since = since.map(|seq| ops::canvas::Since { seq, epoch: None });
    let subscribed = ops::canvas::subscribe(&state, &canvas, member, since).await?;
    let position = &subscribed.position;
    let joined = serde_json::json!({
        "canvas": canvas,
        "seq": position.seq,
        "epoch": position.epoch,
        "resume": subscribed.resume.map(ResumeOutcome::name),
    });
    // The replay, then what the gate held, in order; later events follow
    // through the gate as they come.
    let queue = &stream.queue;
    ops::canvas::queue_replay(queue, &subscribed.replay, Encoding::Json, gm).await;
    if matches!(
        subscribed.resume,
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
    gate.release(position.seq, queue).await;

    let first = Event::default().event("joined").data(joined.to_string());
    Ok(respond(first, stream))
}

/// `GET /sse/notifications`: the token's user's notifications.
pub(crate) async fn notifications(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Authed(identity): Authed,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let channel = CanvasId::user_channel(&identity.user_id);
    let opener = Opener {
        identity: &identity,
        peer,
        headers: &headers,
    };
    channel_events(&state, &opener, channel, "notifications").await
}

/// `GET /sse/system`: the `global` channel (announcements, canvas changes).
pub(crate) async fn system(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Authed(identity): Authed,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let opener = Opener {
        identity: &identity,
        peer,
        headers: &headers,
    };
    channel_events(&state, &opener, CanvasId::global_channel(), "global").await
}

/// `GET /sse/online`: the `online` channel (`user_online`, `user_offline`).
pub(crate) async fn online(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Authed(identity): Authed,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let opener = Opener {
        identity: &identity,
        peer,
        headers: &headers,
    };
    channel_events(&state, &opener, CanvasId::online_channel(), "online").await
}

/// A channel's live messages (no history: channels keep none).
async fn channel_events(
    state: &Arc<AppState>,
    opener: &Opener<'_>,
    channel: CanvasId,
    name: &str,
) -> Result<Response, ApiError> {
    let (member, stream) = open_member(state, opener, &channel, JoinGate::open(), false).await?;
    state.bus.join(&channel, member).await.map_err(|err| {
        tracing::warn!(%channel, error = %err, "channel not joined");
        OpError::new(
            ErrorCode::Unavailable,
            "could not subscribe to the channel; try again",
        )
    })?;
    let first = Event::default()
        .event("subscribed")
        .data(serde_json::json!({ "channel": name }).to_string());
    Ok(respond(first, stream))
}

/// A JSON hub member for a stream of `canvas` (a canvas or a channel), and
/// the stream's side of it: admitted like any connection (address rate,
/// drain, capacity, the per-user cap) and counted as an open connection
/// until the stream is dropped.
async fn open_member(
    state: &Arc<AppState>,
    opener: &Opener<'_>,
    canvas: &CanvasId,
    gate: Arc<JoinGate>,
    gm: bool,
) -> Result<(Member, Streaming), ApiError> {
    let permit = admit::connection(state, opener.peer, opener.headers)
        .map_err(|refused| ApiError(refused.error))?;
    let conn = state.next_conn();
    let user = ops::access::admit_user(state, conn, opener.identity).await?;
    let queue = Arc::new(Outbound::bounded(
        state.settings.outbound_queue,
        state.settings.outbound_queue_bytes,
    ));
    let control = Arc::new(ConnControl::new());
    let member = Member {
        conn,
        encoding: Encoding::Json,
        echo: false,
        tx: queue.clone(),
        control: control.clone(),
        gate,
        gm,
        signals_only: false,
    };
    let signals = signals_channel(state, opener.identity, canvas, &member).await;
    state.metrics.connections_open.inc();
    state.metrics.connections_opened.inc();
    let membership = Membership {
        state: state.clone(),
        canvas: canvas.clone(),
        signals,
        conn,
        _permit: permit,
        _user: user,
    };
    let stream = Streaming {
        queue,
        control,
        membership,
        identity: opener.identity.clone(),
        role: None,
        ending: false,
    };
    Ok((member, stream))
}

/// Joins the user's channel for signals alone (unless the stream is that
/// channel), so the server API's disconnect reaches the stream. Without it
/// (the bus is down) the stream still works.
async fn signals_channel(
    state: &AppState,
    identity: &Identity,
    stream: &CanvasId,
    member: &Member,
) -> Option<CanvasId> {
    let channel = CanvasId::user_channel(&identity.user_id);
    if channel == *stream {
        return None;
    }
    let signals = Member {
        signals_only: true,
        ..member.clone()
    };
    match state.bus.join(&channel, signals).await {
        Ok(()) => Some(channel),
        Err(err) => {
            tracing::warn!(%channel, error = %err, "signals channel not joined");
            None
        }
    }
}

/// The SSE response: `first`, then the member's messages until it ends.
fn respond(first: Event, start: Streaming) -> Response {
    let events = stream::once(async move { Ok::<_, std::convert::Infallible>(first) })
        .chain(stream::unfold(start, next_event));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The next SSE event, or the end of the stream when the member was closed
/// (slow consumer) or the gateway is draining. A signal may end it with a
/// last event: `access_changed`, or `disconnected`.
async fn next_event(
    mut s: Streaming,
) -> Option<(Result<Event, std::convert::Infallible>, Streaming)> {
    if s.ending {
        return None;
    }
    let state = s.membership.state.clone();
    let conn = s.membership.conn;
    let frame = loop {
        tokio::select! {
            biased;
            attention = s.control.attention() => match attention {
                Attention::Closed => break None,
                Attention::Signals(signals) => {
                    if let Some(last) = on_signals(&mut s, signals).await {
                        s.ending = true;
                        return Some((Ok(last), s));
                    }
                }
            },
            _ = state.drain.turn(conn) => break None,
            (frame, _) = s.queue.take() => break Some(frame),
        }
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

/// The stream's last event when a signal ends it.
async fn on_signals(s: &mut Streaming, signals: Vec<(CanvasId, Signal)>) -> Option<Event> {
    let me = s.identity.user_id.clone();
    // After the signals arrived, so after the changes they announce.
    let since = std::time::Instant::now();
    for (channel, signal) in signals {
        match signal {
            Signal::Disconnect { user } if user == me => {
                let code = CloseCode::Disconnected;
                let data = serde_json::json!({ "code": code.code(), "reason": code.reason() });
                return Some(
                    Event::default()
                        .event("disconnected")
                        .data(data.to_string()),
                );
            }
            Signal::Spread { user } if user == me => {
                let limits = s.membership._user.limits.clone();
                crate::spread::recount(&s.membership.state, &me, &limits, &s.control).await;
            }
            Signal::Access { user }
                if user.as_deref().is_none_or(|u| u == me) && channel == s.membership.canvas =>
            {
                let Some(held) = s.role else { continue };
                let state = s.membership.state.clone();
                let access = ops::access::changed(&state, &s.identity, &channel, held, since);
                let Some(changed) = access.await else {
                    continue;
                };
                let changed = ServerMessage::AccessChanged(changed);
                let data = serde_json::to_string(&changed).unwrap_or_default();
                return Some(Event::default().event("access_changed").data(data));
            }
            _ => {}
        }
    }
    None
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
