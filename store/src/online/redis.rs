//! The online registry on Redis: per user a sorted set of its connections
//! scored by expiry, and an index of users scored by their latest expiry,
//! changed by `enter.lua`, `expire.lua` and `sweep.lua`. Users are spread
//! over [`keys::ONLINE_SHARDS`] shards, each with its own index and hash
//! tag; a call about several users runs once per shard they fall in.

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
        call.key(keys::online_index(keys::online_shard(user)))
            .key(keys::online_user(user))
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
        call.key(keys::online_user(user)).arg(open_after);
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
        let calls = by_shard(entries.iter().map(|(user, entry)| (user, entry)))
            .into_iter()
            .map(|(shard, entries)| {
                let mut call = EXPIRE_SCRIPT.prepare_invoke();
                call.key(keys::online_index(shard))
                    .arg(expiry)
                    .arg(key_ttl(expiry, now));
                for (user, entry) in entries {
                    call.key(keys::online_user(user)).arg(user).arg(entry);
                }
                self.redis.invoke::<()>(call)
            });
        futures_util::future::try_join_all(calls).await.map(|_| ())
    }

    /// See [`super::OnlineRegistry::sweep`]: every shard.
    pub async fn sweep(&self, now: u64) -> Result<Vec<String>, StoreError> {
        let calls = (0..keys::ONLINE_SHARDS).map(|shard| {
            let mut call = SWEEP_SCRIPT.prepare_invoke();
            call.key(keys::online_index(shard))
                .arg(now)
                .arg(keys::online_user_prefix(shard));
            self.redis.invoke::<Vec<String>>(call)
        });
        let gone = futures_util::future::try_join_all(calls).await?;
        Ok(gone.into_iter().flatten().collect())
    }

    /// See [`super::OnlineRegistry::check`]: one ZMSCORE per shard.
    pub async fn check(&self, users: &[String], now: u64) -> Result<Vec<bool>, StoreError> {
        let groups = by_shard(users.iter().enumerate().map(|(i, user)| (user, i)));
        let calls = groups.into_iter().map(|(shard, members)| {
            let mut cmd = redis::cmd("ZMSCORE");
            cmd.arg(keys::online_index(shard));
            for (user, _) in &members {
                cmd.arg(user.as_str());
            }
            async move {
                let scores: Vec<Option<f64>> = self
                    .redis
                    .with_conn(|c| Box::pin(async move { cmd.query_async(c).await }))
                    .await?;
                Ok::<_, StoreError>(members.into_iter().map(|(_, i)| i).zip(scores))
            }
        });
        let mut online = vec![false; users.len()];
        for group in futures_util::future::try_join_all(calls).await? {
            for (i, score) in group {
                online[i] = score.is_some_and(|s| s > now as f64);
            }
        }
        Ok(online)
    }
}

/// Items keyed by user, grouped by the user's registry shard.
fn by_shard<'a, T>(
    items: impl Iterator<Item = (&'a String, T)>,
) -> std::collections::BTreeMap<u32, Vec<(&'a String, T)>> {
    let mut groups = std::collections::BTreeMap::<u32, Vec<_>>::new();
    for (user, item) in items {
        groups
            .entry(keys::online_shard(user))
            .or_default()
            .push((user, item));
    }
    groups
}
