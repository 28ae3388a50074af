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
    let unavailable = |e: store::StoreError| OpError::unavailable("history", &e);
    let position = state.log.position(canvas).await.map_err(unavailable)?;
    let page = state
        .log
        .events(canvas, since, position.seq, limit)
        .await
        .map_err(unavailable)?;
    // False when events after `since` are no longer kept anywhere: reload
    // the snapshot instead.
    let complete = since >= position.seq || page.first().is_some_and(|(seq, _)| *seq == since + 1);
    // Gm-only events are `hidden` for others, keeping the numbering gapless.
    let events = page
        .iter()
        .filter_map(|(_, payload)| fanout::visible_event(payload, gm))
        .collect();
    Ok(HistoryPage {
        canvas: canvas.clone(),
        epoch: position.epoch,
        seq: position.seq,
        complete,
        next_since: page.last().map_or(since, |(seq, _)| *seq),
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
    let position = state
        .log
        .position(canvas)
        .await
        .map_err(|e| OpError::unavailable("history", &e))?;
    let since = position.seq.saturating_sub(limit as u64);
    events(state, canvas, since, limit, gm).await
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
    // Older messages may exist only when the page is full.
    let next_before = (found.len() == limit)
        .then(|| found.last().map(|(seq, _)| *seq))
        .flatten();
    let mut messages = Vec::with_capacity(found.len());
    for (seq, payload) in found.iter().rev() {
        let Ok(parts) = shared::busframe::split(payload) else {
            continue;
        };
        if let Ok(ServerMessage::Chat(mut chat)) =
            codec::decode_server(Encoding::Msgpack, &parts.event)
        {
            chat.seq = Some(*seq);
            messages.push(chat);
        }
    }
    Ok(ChatPage {
        canvas: canvas.clone(),
        messages,
        next_before,
    })
}
