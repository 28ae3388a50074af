//! Who is online anywhere in the cluster, for `user_online` /
//! `user_offline` on the global channel.
//!
//! Each open connection is an entry of its user with an expiry that its
//! gateway pushes forward while the connection lives, and sets to the end
//! of a short grace period when it closes; a gateway that dies stops
//! pushing, so its users' entries lapse within the lifetime. A user is
//! online while any entry is live. Sweeps (by every gateway) remove lapsed
//! entries and report each user left with none exactly once.
//!
//! Per user, not per canvas: an arrival looks at that user's entries only,
//! so a connect costs the same with ten users online or a million. On Redis
//! a sorted set per user plus an index scored by each user's latest expiry
//! (`redis.rs` and its scripts); standalone, the same in memory
//! (`memory.rs`). [`OnlineRegistry`] is the one interface to both.

mod memory;
mod redis;

pub use self::redis::RedisOnline;
pub use memory::MemoryOnline;

use crate::{RedisPool, StoreError};
use std::time::Duration;

/// What [`OnlineRegistry::enter`] learned about the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entered {
    /// The user had no live connection anywhere: it just came online.
    pub first: bool,
    /// Its open connections across the cluster, the new one included.
    pub open: usize,
    /// The gateways holding them.
    pub gateways: usize,
}

/// The online registry, in memory or on Redis.
pub enum OnlineRegistry {
    Memory(MemoryOnline),
    Redis(RedisOnline),
}

impl OnlineRegistry {
    /// The standalone registry.
    pub fn memory() -> Self {
        OnlineRegistry::Memory(MemoryOnline::default())
    }

    /// The registry on Redis.
    pub fn redis(pool: RedisPool) -> Self {
        OnlineRegistry::Redis(RedisOnline::new(pool))
    }

    /// Adds connection `entry` of `user`, expiring at `expiry` (ms since the
    /// epoch). Returns whether the user had no live connection anywhere (it
    /// just came online), and its open connections across the cluster, this
    /// one included (those not in the `grace` period after a close), and
    /// how many gateways hold them.
    pub async fn enter(
        &self,
        user: &str,
        entry: &str,
        expiry: u64,
        grace: Duration,
    ) -> Result<Entered, StoreError> {
        let now = shared::now_ms();
        let open_after = now + grace.as_millis() as u64;
        match self {
            OnlineRegistry::Memory(m) => Ok(m.enter(user, entry, expiry, now, open_after)),
            OnlineRegistry::Redis(r) => r.enter(user, entry, (expiry, now, open_after)).await,
        }
    }

    /// How many gateways hold `user`'s open connections (not those in the
    /// `grace` period after a close).
    pub async fn gateways(&self, user: &str, grace: Duration) -> Result<usize, StoreError> {
        let open_after = shared::now_ms() + grace.as_millis() as u64;
        match self {
            OnlineRegistry::Memory(m) => Ok(m.gateways(user, open_after)),
            OnlineRegistry::Redis(r) => r.gateways(user, open_after).await,
        }
    }

    /// Moves existing (user, entry) expiries to `expiry`.
    pub async fn expire(
        &self,
        entries: &[(String, String)],
        expiry: u64,
    ) -> Result<(), StoreError> {
        match self {
            OnlineRegistry::Memory(m) => {
                m.expire_at(entries, expiry);
                Ok(())
            }
            OnlineRegistry::Redis(r) => r.expire(entries, expiry, shared::now_ms()).await,
        }
    }

    /// Removes lapsed entries; the users now offline, each reported to
    /// exactly one caller.
    pub async fn sweep(&self) -> Result<Vec<String>, StoreError> {
        let now = shared::now_ms();
        match self {
            OnlineRegistry::Memory(m) => Ok(m.sweep(now)),
            OnlineRegistry::Redis(r) => r.sweep(now).await,
        }
    }

    /// Whether each user is online.
    pub async fn check(&self, users: &[String]) -> Result<Vec<bool>, StoreError> {
        let now = shared::now_ms();
        match self {
            OnlineRegistry::Memory(m) => Ok(m.check(users, now)),
            OnlineRegistry::Redis(r) => r.check(users, now).await,
        }
    }
}
