//! Presence on Redis: per canvas a sorted set of entries scored by expiry
//! and a hash of their details, changed by `enter.lua` and `sweep.lua`.

use super::{EntryInfo, fold};
use crate::{RedisPool, StoreError, key_ttl};
use shared::protocol::PresentUser;
use shared::{CanvasId, keys};
use std::sync::LazyLock;

static ENTER_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("enter.lua")));
static SWEEP_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("sweep.lua")));

/// Presence on Redis.
pub struct RedisPresence {
    redis: RedisPool,
}

impl RedisPresence {
    pub(crate) fn new(redis: RedisPool) -> Self {
        RedisPresence { redis }
    }

    /// See [`super::PresenceStore::enter`].
    pub async fn enter(
        &self,
        canvas: &CanvasId,
        entry: &str,
        info: &EntryInfo,
        expiry: u64,
        now: u64,
    ) -> Result<(bool, usize), StoreError> {
        let json = serde_json::to_string(info).map_err(StoreError::Presence)?;
        let user = super::user_of(entry).unwrap_or_default();
        let mut call = ENTER_SCRIPT.prepare_invoke();
        call.key(keys::canvas_presence(canvas))
            .key(keys::canvas_presence_info(canvas))
            .key(keys::canvas_presence_users(canvas))
            .arg(entry)
            .arg(expiry)
            .arg(now)
            .arg(json)
            .arg(user)
            .arg(key_ttl(expiry, now));
        let (first, count): (i64, usize) = self.redis.invoke(call).await?;
        Ok((first == 1, count))
    }

    /// Sets the expiry of existing entries (refresh, or the grace on leave),
    /// and keeps the keys alive.
    ///
    /// Per canvas one `ZADD XX` naming all its entries and one `PEXPIRE` of
    /// each of its keys (a refresh of 500 entries on one canvas is four
    /// commands, not 2,000); one pipeline, or on a cluster one per canvas
    /// (a pipeline's keys must share a slot there).
    pub async fn expire(
        &self,
        entries: &[(CanvasId, String)],
        expiry: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ttl = key_ttl(expiry, now);
        let mut pipes = vec![redis::pipe()];
        for (i, (canvas, names)) in by_canvas(entries).into_iter().enumerate() {
            if i > 0 && self.redis.is_cluster() {
                pipes.push(redis::pipe());
            }
            let Some(pipe) = pipes.last_mut() else { break };
            let zadd = pipe
                .cmd("ZADD")
                .arg(keys::canvas_presence(canvas))
                .arg("XX");
            for name in names {
                zadd.arg(expiry).arg(name);
            }
            zadd.ignore();
            for key in [
                keys::canvas_presence(canvas),
                keys::canvas_presence_info(canvas),
                keys::canvas_presence_users(canvas),
            ] {
                pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
            }
        }
        self.redis.run_pipelines(pipes).await
    }

    /// See [`super::PresenceStore::sweep`].
    pub async fn sweep(
        &self,
        canvas: &CanvasId,
        now: u64,
    ) -> Result<(Vec<String>, usize), StoreError> {
        let mut call = SWEEP_SCRIPT.prepare_invoke();
        call.key(keys::canvas_presence(canvas))
            .key(keys::canvas_presence_info(canvas))
            .key(keys::canvas_presence_users(canvas))
            .arg(now);
        let reply: Vec<String> = self.redis.invoke(call).await?;
        let mut values = reply.into_iter();
        let live = values.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let left = values.collect();
        Ok((left, live))
    }

    /// See [`super::PresenceStore::list`].
    pub async fn list(
        &self,
        canvas: &CanvasId,
        now: u64,
        gm: bool,
    ) -> Result<Vec<PresentUser>, StoreError> {
        let zset = keys::canvas_presence(canvas);
        let info = keys::canvas_presence_info(canvas);
        let (entries, details): (Vec<String>, Vec<Option<String>>) = self
            .redis
            .with_conn(|c| {
                Box::pin(async move {
                    let entries: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                        .arg(&zset)
                        .arg(format!("({now}"))
                        .arg("+inf")
                        .query_async(c)
                        .await?;
                    if entries.is_empty() {
                        return Ok((entries, Vec::new()));
                    }
                    let details: Vec<Option<String>> = redis::cmd("HMGET")
                        .arg(&info)
                        .arg(&entries)
                        .query_async(c)
                        .await?;
                    Ok((entries, details))
                })
            })
            .await?;
        let live = entries.iter().zip(details).filter_map(|(e, d)| {
            let info = serde_json::from_str(d.as_deref()?).ok()?;
            Some((e.as_str(), info))
        });
        Ok(fold(live, gm))
    }
}

/// The entries grouped by canvas, in the order canvases first appear.
fn by_canvas(entries: &[(CanvasId, String)]) -> Vec<(&CanvasId, Vec<&String>)> {
    let mut at: std::collections::HashMap<&CanvasId, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(&CanvasId, Vec<&String>)> = Vec::new();
    for (canvas, name) in entries {
        let i = *at.entry(canvas).or_insert_with(|| {
            groups.push((canvas, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(name);
    }
    groups
}
