//! The online registry on Redis: per user a sorted set of its connections
//! scored by expiry, and an index of users scored by their latest expiry,
//! changed by `enter.lua`, `expire.lua` and `sweep.lua`.

use crate::{RedisPool, StoreError, key_ttl};
use shared::keys;
use std::sync::LazyLock;

static ENTER_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        include_str!("gateways_of.lua"),
        include_str!("enter.lua")
    ))
});
static EXPIRE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("expire.lua")));
static GATEWAYS_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        include_str!("gateways_of.lua"),
        include_str!("gateways.lua")
    ))
});
static SWEEP_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("sweep.lua")));

/// The online registry on Redis.
pub struct RedisOnline {
    redis: RedisPool,
}

impl RedisOnline {
    pub(crate) fn new(redis: RedisPool) -> Self {
        RedisOnline { redis }
    }

    /// `times`: (expiry, now, the end of a grace period starting now), ms.
    pub async fn enter(
        &self,
        user: &str,
        entry: &str,
        (expiry, now, open_after): (u64, u64, u64),
    ) -> Result<super::Entered, StoreError> {
        let mut call = ENTER_SCRIPT.prepare_invoke();
        call.key(keys::online_index())
            .key(format!("{}{user}", keys::online_user_prefix()))
            .arg(user)
            .arg(entry)
            .arg(expiry)
            .arg(now)
            .arg(key_ttl(expiry, now))
            .arg(open_after);
        let (first, open, gateways): (u8, usize, usize) = self.redis.invoke(call).await?;
        Ok(super::Entered {
            first: first == 1,
            open,
            gateways,
        })
    }

    /// See [`super::OnlineRegistry::gateways`].
    pub async fn gateways(&self, user: &str, open_after: u64) -> Result<usize, StoreError> {
        let mut call = GATEWAYS_SCRIPT.prepare_invoke();
        call.key(format!("{}{user}", keys::online_user_prefix()))
            .arg(open_after);
        self.redis.invoke(call).await
    }

    /// See [`super::OnlineRegistry::expire`].
    pub async fn expire(
        &self,
        entries: &[(String, String)],
        expiry: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut call = EXPIRE_SCRIPT.prepare_invoke();
        call.key(keys::online_index())
            .arg(expiry)
            .arg(key_ttl(expiry, now));
        let prefix = keys::online_user_prefix();
        for (user, entry) in entries {
            call.key(format!("{prefix}{user}")).arg(user).arg(entry);
        }
        self.redis.invoke::<()>(call).await
    }

    /// See [`super::OnlineRegistry::sweep`].
    pub async fn sweep(&self, now: u64) -> Result<Vec<String>, StoreError> {
        let mut call = SWEEP_SCRIPT.prepare_invoke();
        call.key(keys::online_index())
            .arg(now)
            .arg(keys::online_user_prefix());
        self.redis.invoke(call).await
    }

    /// See [`super::OnlineRegistry::check`].
    pub async fn check(&self, users: &[String], now: u64) -> Result<Vec<bool>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZMSCORE");
        cmd.arg(keys::online_index()).arg(users);
        let scores: Vec<Option<f64>> = self
            .redis
            .with_conn(|c| Box::pin(async move { cmd.query_async(c).await }))
            .await?;
        Ok(scores
            .into_iter()
            .map(|s| s.is_some_and(|s| s > now as f64))
            .collect())
    }
}
