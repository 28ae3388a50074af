//! Who is on a canvas, across gateways.
//!
//! Each connection on a canvas is an entry `<user>\x1f<node>\x1f<conn>`
//! with an expiry. The gateway owning the connection pushes the expiry
//! forward while the connection lives; on leave it sets the expiry to the
//! end of a short grace period instead of removing the entry, so a quick
//! reconnect is no departure. Reads ignore expired entries, so a gateway
//! that dies leaves no ghost beyond the entries' lifetime; sweeps (by any
//! gateway with members on the canvas) remove expired entries and report
//! the users left without one, exactly once each.
//!
//! On Redis the entries are a sorted set scored by expiry, a hash of their
//! details and a hash of how many entries each user has, changed by
//! scripts (`redis.rs`) whose cost does not grow with the canvas: an
//! arrival is a user's count going from 0 to 1, a departure a sweep
//! taking it back to 0. Standalone, the same in memory (`memory.rs`).
//! [`PresenceStore`] is the one interface to both.

mod memory;
mod redis;

pub use self::redis::RedisPresence;
pub use memory::MemoryPresence;

use crate::{RedisPool, StoreError};
use serde::{Deserialize, Serialize};
use shared::CanvasId;
use shared::auth::Role;
use shared::protocol::PresentUser;
use std::collections::BTreeMap;

/// Separates the parts of an entry; not allowed in user ids.
const SEP: char = '\x1f';

/// An entry's name: user, node and connection.
pub fn entry(user: &str, node: &str, conn: u64) -> String {
    format!("{user}{SEP}{node}{SEP}{conn}")
}

pub(crate) fn user_of(entry: &str) -> Option<&str> {
    entry.split_once(SEP).map(|(user, _)| user)
}

/// What is stored with an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: Role,
    /// When the connection joined, ms since the Unix epoch.
    pub since: u64,
    /// What the connection last said its user is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<shared::protocol::Activity>,
    /// The activity's place (an object, a position) is gm-only data (it
    /// names a fog region): others see only its state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gm_only: bool,
}

impl EntryInfo {
    /// The activity as a viewer sees it: without its place when it is
    /// gm-only and the viewer is not a gm.
    fn activity_for(&self, gm: bool) -> Option<shared::protocol::Activity> {
        let mut a = self.activity.clone()?;
        if self.gm_only && !gm {
            (a.x, a.y, a.object) = (None, None, None);
        }
        Some(a)
    }
}

/// Folds live entries into one [`PresentUser`] per user: the earliest
/// `since`, the details of that entry, the number of connections, and the
/// latest activity any of them reported, as seen by a gm or not.
fn fold<'a>(live: impl IntoIterator<Item = (&'a str, EntryInfo)>, gm: bool) -> Vec<PresentUser> {
    let mut users: BTreeMap<String, PresentUser> = BTreeMap::new();
    for (entry, info) in live {
        let Some(id) = user_of(entry) else { continue };
        let u = users.entry(id.to_owned()).or_insert_with(|| PresentUser {
            id: id.to_owned(),
            name: info.name.clone(),
            role: info.role,
            since: info.since,
            connections: 0,
            activity: None,
        });
        u.connections += 1;
        if let Some(a) = info.activity_for(gm)
            && u.activity.as_ref().is_none_or(|b| a.ts > b.ts)
        {
            u.activity = Some(a);
        }
        if info.since < u.since {
            u.since = info.since;
            u.name = info.name.clone();
            u.role = info.role;
        }
    }
    let mut list: Vec<PresentUser> = users.into_values().collect();
    list.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
    list
}

/// Presence, in memory or on Redis.
pub enum PresenceStore {
    Memory(MemoryPresence),
    Redis(RedisPresence),
}

impl PresenceStore {
    /// Standalone presence.
    pub fn memory() -> Self {
        PresenceStore::Memory(MemoryPresence::default())
    }

    /// Presence on Redis.
    pub fn redis(pool: RedisPool) -> Self {
        PresenceStore::Redis(RedisPresence::new(pool))
    }

    /// Adds (or renews) a presence entry expiring at `expiry` (ms since the
    /// epoch); true if its user had no other live entry on the canvas, and
    /// the canvas's live entries.
    pub async fn enter(
        &self,
        canvas: &CanvasId,
        entry: &str,
        info: &EntryInfo,
        expiry: u64,
    ) -> Result<(bool, usize), StoreError> {
        let now = shared::now_ms();
        match self {
            PresenceStore::Memory(m) => Ok(m.enter(canvas, entry, info.clone(), expiry, now)),
            PresenceStore::Redis(r) => r.enter(canvas, entry, info, expiry, now).await,
        }
    }

    /// Moves existing entries' expiry to `expiry` (a refresh, or the grace
    /// period on leave).
    pub async fn expire(
        &self,
        entries: &[(CanvasId, String)],
        expiry: u64,
    ) -> Result<(), StoreError> {
        match self {
            PresenceStore::Memory(m) => {
                for (canvas, entry) in entries {
                    m.expire_at(canvas, entry, expiry);
                }
                Ok(())
            }
            PresenceStore::Redis(r) => r.expire(entries, expiry, shared::now_ms()).await,
        }
    }

    /// Removes the canvas's expired entries; returns the users left with
    /// none (each reported by exactly one caller) and the live entries.
    pub async fn sweep(&self, canvas: &CanvasId) -> Result<(Vec<String>, usize), StoreError> {
        let now = shared::now_ms();
        match self {
            PresenceStore::Memory(m) => Ok(m.sweep(canvas, now)),
            PresenceStore::Redis(r) => r.sweep(canvas, now).await,
        }
    }

    /// The users with a live entry on the canvas, earliest first, as a gm
    /// sees them or (`gm` false) anyone else.
    pub async fn list(&self, canvas: &CanvasId, gm: bool) -> Result<Vec<PresentUser>, StoreError> {
        let now = shared::now_ms();
        match self {
            PresenceStore::Memory(m) => Ok(m.list(canvas, now, gm)),
            PresenceStore::Redis(r) => r.list(canvas, now, gm).await,
        }
    }
}
