//! Global online status (see `fanout::online` for the registry): every
//! WebSocket connection is an entry of its user, kept alive while it is
//! open; `user_online` goes to the `online` channel when a user's first
//! connection anywhere opens, `user_offline` when a sweep finds the last one
//! lapsed (closed plus the presence grace period, or its gateway dead for
//! the presence TTL).

use crate::server::AppState;
use parking_lot::Mutex;
use shared::CanvasId;
use shared::protocol::{Author, ServerMessage, UserOffline, UserOnline};
use std::collections::HashMap;

/// Entries refreshed per Redis round trip.
const REFRESH_CHUNK: usize = 500;

/// This gateway's open connections in the online registry.
#[derive(Default)]
pub(crate) struct Online {
    /// (user, entry) by connection.
    local: Mutex<HashMap<u64, (String, String)>>,
}

impl Online {
    /// Connection `conn` of `author` opened: admitted unless the user then
    /// holds more than `max` open connections across the cluster (its entry
    /// is then removed at once). Announces the user if it was not online
    /// anywhere. Without the registry (Redis down) it admits.
    pub async fn admit(&self, state: &AppState, conn: u64, author: &Author, max: usize) -> bool {
        let entry = fanout::presence::entry(&author.id, &state.settings.node_id, conn);
        self.local
            .lock()
            .insert(conn, (author.id.clone(), entry.clone()));
        let expiry = shared::now_ms() + state.presence.ttl.as_millis() as u64;
        let grace = state.presence.grace;
        match state
            .fanout
            .online_enter(&author.id, &entry, expiry, grace)
            .await
        {
            Ok((_, open)) if open > max => {
                self.forget(state, conn).await;
                false
            }
            Ok((first, _)) => {
                if first {
                    let event = ServerMessage::UserOnline(UserOnline {
                        user: author.clone(),
                        ts: shared::now_ms(),
                    });
                    announce(state, &event).await;
                }
                true
            }
            // Refreshes only move existing entries: this connection is not
            // counted online (logged); the user's next one is.
            Err(err) => {
                tracing::warn!(error = %err, "online entry not stored");
                true
            }
        }
    }

    /// Removes a refused connection's entry now (no grace period).
    async fn forget(&self, state: &AppState, conn: u64) {
        let Some(entry) = self.local.lock().remove(&conn) else {
            return;
        };
        if let Err(err) = state.fanout.online_expire(&[entry], shared::now_ms()).await {
            tracing::warn!(error = %err, "refused connection's online entry not removed");
        }
    }

    /// Connection `conn` closed: its entry lapses after the grace period
    /// unless the user is back, and a sweep announces the user offline.
    pub async fn leave(&self, state: &AppState, conn: u64) {
        let Some(entry) = self.local.lock().remove(&conn) else {
            return;
        };
        let expiry = shared::now_ms() + state.presence.grace.as_millis() as u64;
        if let Err(err) = state.fanout.online_expire(&[entry], expiry).await {
            // The entry then lapses at its TTL instead.
            tracing::warn!(error = %err, "online leave not stored");
        }
    }

    /// Keeps this gateway's entries alive.
    pub async fn refresh(&self, state: &AppState) {
        let entries: Vec<(String, String)> = self.local.lock().values().cloned().collect();
        let expiry = shared::now_ms() + state.presence.ttl.as_millis() as u64;
        for chunk in entries.chunks(REFRESH_CHUNK) {
            if let Err(err) = state.fanout.online_expire(chunk, expiry).await {
                tracing::warn!(error = %err, "online refresh failed; retrying next round");
                return;
            }
        }
    }

    /// Announces the users whose last entry lapsed (each once, cluster-wide).
    pub async fn sweep(&self, state: &AppState) {
        match state.fanout.online_sweep().await {
            Ok(gone) => {
                for user in gone {
                    let event = ServerMessage::UserOffline(UserOffline {
                        user,
                        ts: shared::now_ms(),
                    });
                    announce(state, &event).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "online sweep failed; retrying next round"),
        }
    }
}

async fn announce(state: &AppState, event: &ServerMessage) {
    let header = state.bus_header(0);
    if let Err(err) = state
        .fanout
        .publish(&CanvasId::online_channel(), &header, event)
        .await
    {
        tracing::warn!(error = %err, "online status not published");
    }
}
