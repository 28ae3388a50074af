//! History: durable events after a sequence number (`history`, REST
//! events and activity), and chat before one (`chat_history`, REST chat),
//! from the canvas log or, once trimmed, from Postgres.

use super::OpError;
use crate::state::AppState;
use shared::codec::{self, Encoding};
use shared::protocol::{ChatPage, HistoryPage, ServerMessage};
use shared::{CanvasId, ErrorCode};

/// Most events one page returns.
pub const MAX_PAGE: usize = 1000;

/// The most JSON bytes of events one page carries: three times the largest
/// message a client may send, which keeps every reply frame under the
/// connection's write buffer limit (four times, see `startup.rs`). A page
/// cut short by it says where to continue (`next_since`, `next_before`).
pub(crate) fn page_bytes(state: &AppState) -> usize {
    state.settings.max_message_bytes * 3
}

/// A reply item's size on the wire as JSON (the larger encoding).
fn json_size<T: serde::Serialize>(event: &T) -> usize {
    serde_json::to_vec(event).map_or(0, |v| v.len())
}

/// A page size: `limit`, or `default` without one; 1 to [`MAX_PAGE`], else E007.
pub(crate) fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, OpError> {
    match limit.unwrap_or(default) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(OpError::new(
            ErrorCode::InvalidValue,
            format!("limit must be 1..={MAX_PAGE}"),
        )),
    }
}

/// Durable events of `canvas` after `since`, oldest first, at most `limit`,
/// with the canvas's position; gm-only events are `hidden` unless `gm`.
pub(crate) async fn events(
    state: &AppState,
    canvas: &CanvasId,
    since: u64,
    limit: usize,
    gm: bool,
) -> Result<HistoryPage, OpError> {
    let position = position(state, canvas).await?;
    page_after(state, canvas, position, since, limit, gm).await
}

/// The canvas's position, or E012.
async fn position(state: &AppState, canvas: &CanvasId) -> Result<store::Position, OpError> {
    state
        .log
        .position(canvas)
        .await
        .map_err(|e| OpError::unavailable("history", &e))
}

/// The page after `since` up to `position`.
async fn page_after(
    state: &AppState,
    canvas: &CanvasId,
    position: store::Position,
    since: u64,
    limit: usize,
    gm: bool,
) -> Result<HistoryPage, OpError> {
    let page = state
        .log
        .events(canvas, since, position.seq, limit)
        .await
        .map_err(|e| OpError::unavailable("history", &e))?;
    // False when events after `since` are no longer kept anywhere: reload
    // the snapshot instead.
    let complete = since >= position.seq || page.first().is_some_and(|(seq, _)| *seq == since + 1);
    // Gm-only events are `hidden` for others, keeping the numbering
    // gapless; the page ends early at its byte budget (one event at least).
    let (budget, mut used) = (page_bytes(state), 0);
    let mut events = Vec::with_capacity(page.len());
    let mut next_since = since;
    for (seq, payload) in &page {
        if let Some(event) = fanout::visible_event(payload, gm) {
            let size = json_size(&event);
            if !events.is_empty() && used + size > budget {
                break;
            }
            used += size;
            events.push(event);
        }
        next_since = *seq;
    }
    Ok(HistoryPage {
        canvas: canvas.clone(),
        epoch: position.epoch,
        seq: position.seq,
        complete,
        next_since,
        events,
    })
}

/// The latest `limit` durable events (REST `activity`).
pub(crate) async fn recent(
    state: &AppState,
    canvas: &CanvasId,
    limit: usize,
    gm: bool,
) -> Result<HistoryPage, OpError> {
    let position = position(state, canvas).await?;
    let since = position.seq.saturating_sub(limit as u64);
    page_after(state, canvas, position, since, limit, gm).await
}

/// The chat messages with `seq < before` (all, without `before`), the
/// newest `limit` of them, oldest first.
pub(crate) async fn chat(
    state: &AppState,
    canvas: &CanvasId,
    before: Option<u64>,
    limit: usize,
) -> Result<ChatPage, OpError> {
    let before = before.unwrap_or(u64::MAX);
    let found = state
        .log
        .chat_before(canvas, before, limit)
        .await
        .map_err(|e| OpError::unavailable("chat history", &e))?;
    // Newest first, until the page's byte budget (one message at least).
    let (budget, mut used) = (page_bytes(state), 0);
    let mut messages = Vec::with_capacity(found.len());
    let mut cut = false;
    for (seq, payload) in &found {
        let Ok(parts) = shared::busframe::split(payload) else {
            continue;
        };
        if let Ok(ServerMessage::Chat(mut chat)) =
            codec::decode_server(Encoding::Msgpack, &parts.event)
        {
            chat.seq = Some(*seq);
            let size = json_size(&chat);
            if !messages.is_empty() && used + size > budget {
                cut = true;
                break;
            }
            used += size;
            messages.push(chat);
        }
    }
    // Older messages may exist when the page is full or was cut short.
    let next_before = (cut || found.len() == limit)
        .then(|| messages.last().and_then(|m| m.seq))
        .flatten();
    messages.reverse();
    Ok(ChatPage {
        canvas: canvas.clone(),
        messages,
        next_before,
    })
}
