//! Global online status (see `store::online` for the registry): every
//! WebSocket connection is an entry of its user, kept alive while it is
//! open; `user_online` goes to the `online` channel when a user's first
//! connection anywhere opens, `user_offline` when a sweep finds the last one
//! lapsed (closed plus the presence grace period, or its gateway dead for
//! the presence TTL).

use crate::gather::{self, Gather};
use fanout::Fanout;
use parking_lot::Mutex;
use shared::CanvasId;
use shared::protocol::{Author, ServerMessage, UserOffline, UserOnline};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::OnlineRegistry;

/// This gateway's open connections in the online registry.
pub(crate) struct Online {
    /// The cluster's registry (Redis, or memory when standalone).
    registry: OnlineRegistry,
    /// Where `user_online`/`user_offline` are published.
    bus: Arc<Fanout>,
    /// This gateway's id, part of every entry's name.
    node: String,
    /// An entry lives this long without a refresh (the presence TTL).
    ttl: Duration,
    /// A closed connection's entry lapses after this (the presence grace).
    grace: Duration,
    /// (user, entry) by connection.
    local: Mutex<HashMap<u64, (String, String)>>,
    /// Closes, written together when many come at once.
    leaves: Gather<(String, String)>,
}

impl Online {
    pub fn new(
        registry: OnlineRegistry,
        bus: Arc<Fanout>,
        node: String,
        ttl: Duration,
        grace: Duration,
    ) -> Self {
        Online {
            registry,
            bus,
            node,
            ttl,
            grace,
            local: Mutex::new(HashMap::new()),
            leaves: Gather::default(),
        }
    }

    /// Connection `conn` of `author` opened: admitted unless the user then
    /// holds more than `max` open connections across the cluster (its entry
    /// is then removed at once). Announces the user if it was not online
    /// anywhere. Without the registry (Redis down) it admits. `Some` with
    /// the number of gateways holding the user's open connections (0 when
    /// the registry did not answer) when admitted.
    pub async fn admit(&self, conn: u64, author: &Author, max: usize) -> Option<usize> {
        let entry = store::presence::entry(&author.id, &self.node, conn);
        self.local
            .lock()
            .insert(conn, (author.id.clone(), entry.clone()));
        let expiry = shared::now_ms() + self.ttl.as_millis() as u64;
        match self
            .registry
            .enter(&author.id, &entry, expiry, self.grace)
            .await
        {
            Ok(entered) if entered.open > max => {
                self.forget(conn).await;
                None
            }
            Ok(entered) => {
                if entered.first {
                    let event = ServerMessage::UserOnline(UserOnline {
                        user: author.clone(),
                        ts: shared::now_ms(),
                    });
                    self.announce(&event).await;
                }
                Some(entered.gateways)
            }
            // Refreshes only move existing entries: this connection is not
            // counted online (logged); the user's next one is.
            Err(err) => {
                tracing::warn!(error = %err, "online entry not stored");
                Some(0)
            }
        }
    }

    /// Removes a refused connection's entry now (no grace period).
    async fn forget(&self, conn: u64) {
        let Some(entry) = self.local.lock().remove(&conn) else {
            return;
        };
        if let Err(err) = self.registry.expire(&[entry], shared::now_ms()).await {
            tracing::warn!(error = %err, "refused connection's online entry not removed");
        }
    }

    /// Connection `conn` closed: its entry lapses after the grace period
    /// unless the user is back, and a sweep announces the user offline.
    pub async fn leave(&self, conn: u64) {
        let Some(entry) = self.local.lock().remove(&conn) else {
            return;
        };
        let write = |entries: Vec<(String, String)>| async move {
            let expiry = shared::now_ms() + self.grace.as_millis() as u64;
            if let Err(err) = self.registry.expire(&entries, expiry).await {
                // The entries then lapse at their TTL instead.
                tracing::warn!(entries = entries.len(), error = %err, "online leave not stored");
            }
        };
        self.leaves.add(entry, write).await;
    }

    /// How many gateways hold `user`'s open connections.
    pub async fn gateways(&self, user: &str) -> Result<usize, store::StoreError> {
        self.registry.gateways(user, self.grace).await
    }

    /// Keeps this gateway's entries alive.
    pub async fn refresh(&self) {
        let entries: Vec<(String, String)> = self.local.lock().values().cloned().collect();
        let expiry = shared::now_ms() + self.ttl.as_millis() as u64;
        for chunk in entries.chunks(gather::CHUNK) {
            if let Err(err) = self.registry.expire(chunk, expiry).await {
                tracing::warn!(error = %err, "online refresh failed; retrying next round");
                return;
            }
        }
    }

    /// Announces the users whose last entry lapsed (each once, cluster-wide).
    pub async fn sweep(&self) {
        match self.registry.sweep().await {
            Ok(gone) => {
                for user in gone {
                    let event = ServerMessage::UserOffline(UserOffline {
                        user,
                        ts: shared::now_ms(),
                    });
                    self.announce(&event).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "online sweep failed; retrying next round"),
        }
    }

    /// Whether each user has a live connection anywhere in the cluster.
    pub async fn check(&self, users: &[String]) -> Result<Vec<bool>, store::StoreError> {
        self.registry.check(users).await
    }

    async fn announce(&self, event: &ServerMessage) {
        let header = shared::busframe::BusHeader::now(&self.node, 0);
        let channel = CanvasId::online_channel();
        if let Err(err) = self.bus.publish(&channel, &header, event).await {
            tracing::warn!(error = %err, "online status not published");
        }
    }
}
