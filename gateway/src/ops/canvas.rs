//! Joining a canvas's events, for a WebSocket `join` (fresh or resuming
//! with `since`/`epoch`) and an SSE stream (resuming with
//! `Last-Event-ID`): subscribe with the member's gate holding live events,
//! read the position, plan the replay, then hand the replay and the held
//! events over in order, so the member sees every event after its `seq`
//! exactly once.

use super::OpError;
use crate::state::AppState;
use bytes::Bytes;
use fanout::{Member, Outbound};
use shared::codec::Encoding;
use shared::protocol::ResumeOutcome;
use shared::{CanvasId, ErrorCode};
use store::{Position, StoreError};

/// A member now subscribed (its live events held at its gate), where the
/// canvas stands, and what to replay first.
pub(crate) struct Subscribed {
    pub position: Position,
    /// How a resume went; `None` for a fresh join.
    pub resume: Option<ResumeOutcome>,
    /// The missed events, oldest first, as bus payloads.
    pub replay: Vec<(u64, Bytes)>,
}

/// Where a resuming member stands: the last `seq` it has, and the epoch it
/// was numbered in, when it knows it.
pub(crate) struct Since<'a> {
    pub seq: u64,
    pub epoch: Option<&'a str>,
}

/// Subscribes `member` to `canvas` and plans its replay. On failure the
/// membership is undone and the error is E012.
pub(crate) async fn subscribe(
    state: &AppState,
    canvas: &CanvasId,
    member: Member,
    since: Option<Since<'_>>,
) -> Result<Subscribed, OpError> {
    let conn = member.conn;
    let planned = async {
        state
            .bus
            .join(canvas, member)
            .await
            .map_err(|e| e.to_string())?;
        let position = state
            .log
            .position(canvas)
            .await
            .map_err(|e| e.to_string())?;
        let (resume, replay) = match since {
            None => (None, Vec::new()),
            Some(since) => {
                let (outcome, events) = replay_plan(state, canvas, &position, &since)
                    .await
                    .map_err(|e| e.to_string())?;
                (Some(outcome), events)
            }
        };
        Ok::<_, String>(Subscribed {
            position,
            resume,
            replay,
        })
    }
    .await;
    planned.map_err(|err| {
        // Undo the membership (the hub may have kept it if only the
        // position read failed).
        state.bus.leave(canvas, conn);
        tracing::warn!(%canvas, error = %err, "join failed");
        OpError::new(
            ErrorCode::Unavailable,
            "could not subscribe to the canvas; try again",
        )
    })
}

/// Decides whether a resume can replay the events after `since` (in its
/// epoch, when the client knows it), and reads them if so.
async fn replay_plan(
    state: &AppState,
    canvas: &CanvasId,
    position: &Position,
    since: &Since<'_>,
) -> Result<(ResumeOutcome, Vec<(u64, Bytes)>), StoreError> {
    if since.epoch.is_some_and(|e| e != position.epoch) {
        return Ok((ResumeOutcome::EpochChanged, Vec::new()));
    }
    if since.seq > position.seq {
        return Ok((ResumeOutcome::Ahead, Vec::new()));
    }
    let missed = position.seq - since.seq;
    if missed == 0 {
        return Ok((ResumeOutcome::Replayed, Vec::new()));
    }
    if missed > state.settings.max_replay_events as u64 {
        return Ok((ResumeOutcome::HistoryUnavailable, Vec::new()));
    }
    let events = state
        .log
        .events(canvas, since.seq, position.seq, missed as usize)
        .await?;
    // Complete and gapless, or not at all: the log may have been trimmed.
    let complete = events.len() as u64 == missed
        && events
            .iter()
            .zip(since.seq + 1..)
            .all(|((seq, _), expected)| *seq == expected);
    if complete {
        Ok((ResumeOutcome::Replayed, events))
    } else {
        Ok((ResumeOutcome::HistoryUnavailable, Vec::new()))
    }
}

/// Queues the replay, waiting for room (the client reads at its own pace;
/// the caller bounds the wait). Gm-only events become `hidden` unless `gm`.
pub(crate) async fn queue_replay(
    queue: &Outbound,
    replay: &[(u64, Bytes)],
    encoding: Encoding,
    gm: bool,
) {
    for (_, payload) in replay {
        if let Some(frame) = fanout::client_frame(payload, encoding, gm) {
            // Replays are history: no fan-out latency.
            queue.offer_wait(frame, 0).await;
        }
    }
}
