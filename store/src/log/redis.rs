//! The durable log on Redis: per canvas a meta hash (seq, epoch, the
//! persisted mark), a BITFIELD of pixels, a stream of events and the
//! objects, changed only by `publish.lua` and `restore.lua`.

use super::{
    History, LogSettings, ObjectsPage, OpKey, Position, Snapshot, Written, payload_is, unpack_cells,
};
use crate::RedisConn as Connection;
use crate::objects::{self, Change, Refusal};
use crate::pool::RedisPool;
use crate::{StoreError, stream};
use bytes::Bytes;
use shared::{CanvasId, keys};
use std::sync::{Arc, LazyLock};

/// The durable publish step (see `publish.lua`).
static PUBLISH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("publish.lua")));
/// The same on a Redis Cluster: the server guard first (see `guard.lua`),
/// and the event goes out with SPUBLISH on the canvas's shard channel.
static PUBLISH_SHARDED_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    guarded(
        &include_str!("publish.lua").replace("redis.call('PUBLISH', ", "redis.call('SPUBLISH', "),
    )
});
/// Position read (see `position.lua`).
static POSITION_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("position.lua")));
/// The same behind the server guard, for a read on a Redis Cluster.
static POSITION_GUARDED_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| guarded(include_str!("position.lua")));
/// `body` behind the server guard (see `guard.lua`): on a Redis Cluster,
/// refused with `NEWSERVER` by a master other than the one named.
fn guarded(body: &str) -> redis::Script {
    redis::Script::new(&format!("{}\n{body}", include_str!("guard.lua")))
}

/// Snapshot read (see `snapshot.lua`).
static SNAPSHOT_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("snapshot.lua")));

/// A durable write's parts: the bus frame headers (all, gm-only), the
/// event, the state change and the operation key.
type WriteArgs<'a> = (
    &'a (Vec<u8>, Vec<u8>),
    &'a [u8],
    Option<&'a Change>,
    Option<&'a OpKey>,
);

/// The Redis log.
pub struct RedisLog {
    pub(super) redis: RedisPool,
    settings: LogSettings,
    /// Where to rebuild a canvas from when Redis has lost it.
    pub(super) history: Option<Arc<dyn History>>,
    /// Canvases checked against the history since Redis last became
    /// another server process (see `rebuild.rs`).
    pub(super) checked: super::checked::Checked,
}

impl RedisLog {
    pub(crate) fn new(
        redis: RedisPool,
        settings: LogSettings,
        history: Option<Arc<dyn History>>,
    ) -> Self {
        RedisLog {
            redis,
            settings,
            history,
            checked: Default::default(),
        }
    }

    /// [`Self::events`], completed from the history where Redis trimmed.
    pub(crate) async fn events_or_history(
        &self,
        canvas: &CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        let kept = self.events(canvas, after, until, limit).await?;
        // Redis trims below what Postgres holds: a range that does not
        // start right after `after` is read from the history.
        let complete = kept.first().is_some_and(|(seq, _)| *seq == after + 1);
        match &self.history {
            Some(history) if !complete => {
                // Postgres has what Redis trimmed (it trims only below the
                // persisted mark); Redis has the newest.
                let mut stored = history
                    .events(canvas, after, until, limit)
                    .await
                    .map_err(StoreError::History)?;
                let last = stored.last().map_or(after, |(seq, _)| *seq);
                stored.extend(kept.into_iter().filter(|(seq, _)| *seq > last));
                stored.truncate(limit);
                Ok(stored)
            }
            _ => Ok(kept),
        }
    }

    /// Whether `object` is a fog region: its hash's `kind`.
    pub(crate) async fn is_fog(&self, canvas: &CanvasId, object: &str) -> Result<bool, StoreError> {
        let key = format!("{}{object}", keys::canvas_object_prefix(canvas));
        let kind: Option<String> = self
            .redis
            .with_conn(|c| {
                Box::pin(
                    async move { redis::cmd("HGET").arg(key).arg("kind").query_async(c).await },
                )
            })
            .await?;
        Ok(kind.as_deref() == Some(shared::protocol::FOG_KIND))
    }

    /// Chat before `before`: the tail above the persisted mark from Redis,
    /// the rest from the history.
    pub(crate) async fn chat_before(
        &self,
        canvas: &CanvasId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        let kind = "chat";
        let Some(history) = &self.history else {
            return self.kind_before(canvas, kind, before, limit, None).await;
        };
        // Everything up to the mark is in the history; only the tail above
        // it needs scanning in Redis.
        let mark = self.persisted(canvas).await?;
        let mut found = self
            .kind_before(canvas, kind, before, limit, Some(mark))
            .await?;
        if found.len() < limit {
            let below = before.min(mark + 1);
            let stored = history
                .chat_before(canvas, below, limit - found.len())
                .await
                .map_err(StoreError::History)?;
            found.extend(stored);
        }
        Ok(found)
    }

    pub async fn publish_durable(
        &self,
        canvas: &CanvasId,
        headers: (Vec<u8>, Vec<u8>),
        event: Vec<u8>,
        change: Option<&Change>,
        key: Option<&OpKey>,
    ) -> Result<Written, StoreError> {
        let (mut conn, generation) = self.redis.checked().await?;
        let conn = &mut conn;
        let mut server = self.verify(conn, canvas, generation).await?;
        let write = (&headers, event.as_slice(), change, key);
        let mut result = self.publish_once(conn, canvas, &server, write).await;
        if let Some(moved) = self.moved(conn, canvas, generation, &result).await? {
            server = moved;
            result = self.publish_once(conn, canvas, &server, write).await;
        }
        match result {
            // Redis lost the canvas (or never had it): initialise it, from
            // the durable history if there is one, then publish.
            Err(StoreError::Redis(err)) if err.code() == Some("UNINIT") => {
                self.initialise(conn, canvas).await?;
                self.publish_once(conn, canvas, &server, write).await
            }
            other => other,
        }
    }

    /// One run of the publish script; `server` is the master the canvas was
    /// checked on (on a cluster).
    async fn publish_once(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
        server: &str,
        (headers, event, change, key): WriteArgs<'_>,
    ) -> Result<Written, StoreError> {
        let cluster = self.redis.is_cluster();
        let script = if cluster {
            &PUBLISH_SHARDED_SCRIPT
        } else {
            &PUBLISH_SCRIPT
        };
        let mut call = script.prepare_invoke();
        call.key(keys::canvas_meta(canvas))
            .key(keys::canvas_pixels(canvas))
            .key(keys::canvas_log(canvas))
            .key(keys::canvas_objects(canvas))
            .key(keys::canvas_op_keys(canvas))
            .key(keys::canvas_op_expiry(canvas))
            .arg(keys::canvas_channel(canvas))
            .arg(&headers.0)
            .arg(event)
            .arg(if self.settings.backlog_limit > 0 {
                0
            } else {
                self.settings.log_max_events
            })
            .arg(self.settings.backlog_limit);
        let mode = match change {
            None => "",
            Some(Change::Pixels(p)) if p.bits == 8 => "u8",
            Some(Change::Pixels(_)) => "u5",
            Some(Change::Object(_)) => "obj",
            Some(Change::Clear) => "clear",
        };
        call.arg(mode)
            .arg(keys::canvas_object_prefix(canvas))
            .arg(keys::canvas_likers_prefix(canvas))
            .arg(key.map(OpKey::field).unwrap_or_default())
            .arg(key.map_or(0, |k| k.window.as_millis().max(1) as u64));
        match change {
            Some(Change::Pixels(change)) => {
                for &(cell, color) in &change.cells {
                    call.arg(cell).arg(color);
                }
            }
            Some(Change::Object(change)) => objects::redis::args(&mut call, change, &headers.1),
            Some(Change::Clear) | None => {}
        }
        if cluster {
            call.arg(server);
        }
        // {seq, epoch, ''}, or {seq, epoch, '=' .. object} for a repeat.
        let result = self.invoke_replicated(conn, canvas, call).await;
        match result {
            Ok((seq, _epoch, repeat)) if repeat.starts_with('=') => Ok(Written::Repeated {
                seq,
                object: Some(repeat[1..].to_owned()).filter(|o| !o.is_empty()),
            }),
            Ok((0, _epoch, _)) => Ok(Written::Unchanged),
            Ok((seq, _epoch, _)) => Ok(Written::Applied(seq)),
            Err(StoreError::Redis(err)) if err.code().and_then(Refusal::from_script).is_some() => {
                Err(StoreError::Refused(
                    err.code()
                        .and_then(Refusal::from_script)
                        .unwrap_or(Refusal::NoObject),
                ))
            }
            Err(StoreError::Redis(err)) if err.code() == Some("BACKLOG") => {
                let backlog = err
                    .detail()
                    .and_then(|d| d.trim().parse().ok())
                    .unwrap_or(self.settings.backlog_limit as u64);
                Err(StoreError::BacklogFull { backlog })
            }
            Err(err) => Err(err),
        }
    }

    /// Runs the publish script and, when acks wait for replicas, `WAIT`s
    /// on the same connection (covering its write) for them.
    async fn invoke_replicated(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
        call: redis::ScriptInvocation<'static>,
    ) -> Result<(u64, String, String), StoreError> {
        let needed = self.settings.ack_replicas;
        if needed == 0 {
            return self.redis.call(call.invoke_async(conn)).await;
        }
        // Half the call's budget: a WAIT that runs out answers how many
        // confirmed, rather than the whole call timing out.
        let wait_ms = (self.redis.timeout().as_millis() / 2).max(1) as u64;
        let (out, confirmed) = self
            .redis
            .call(async {
                let out: (u64, String, String) = call.invoke_async(conn).await?;
                if out.0 == 0 {
                    return Ok((out, needed)); // changed nothing
                }
                let meta = keys::canvas_meta(canvas);
                let confirmed = conn.wait_replicas(&meta, needed, wait_ms).await?;
                Ok((out, confirmed))
            })
            .await?;
        if confirmed < needed {
            return Err(StoreError::NotReplicated { confirmed, needed });
        }
        Ok(out)
    }

    pub async fn events(
        &self,
        canvas: &CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        let key = keys::canvas_log(canvas);
        let reply: redis::streams::StreamRangeReply = self
            .redis
            .with_conn(|conn| {
                Box::pin(async move {
                    redis::cmd("XRANGE")
                        .arg(key)
                        .arg(stream::entry_id(after + 1))
                        .arg(stream::entry_id(until))
                        .arg("COUNT")
                        .arg(limit)
                        .query_async(conn)
                        .await
                })
            })
            .await?;
        Ok(reply.ids.iter().filter_map(stream::entry).collect())
    }

    /// The canvas log's events of `kind` with `seq < before`, newest first,
    /// at most `limit`, scanning back page by page no further than `floor`
    /// (exclusive). Returns them and the persisted mark read first.
    pub async fn kind_before(
        &self,
        canvas: &CanvasId,
        kind: &str,
        before: u64,
        limit: usize,
        floor: Option<u64>,
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        const PAGE: usize = 1000;
        let key = keys::canvas_log(canvas);
        let mut out = Vec::new();
        let mut upper = before;
        let lower = floor.map_or_else(|| "-".to_owned(), |f| stream::entry_id(f + 1));
        while out.len() < limit && upper > 1 && floor.is_none_or(|f| upper > f + 1) {
            let (key, lower) = (key.clone(), lower.clone());
            let reply: redis::streams::StreamRangeReply = self
                .redis
                .with_conn(|conn| {
                    Box::pin(async move {
                        redis::cmd("XREVRANGE")
                            .arg(key)
                            .arg(stream::entry_id(upper - 1))
                            .arg(lower)
                            .arg("COUNT")
                            .arg(PAGE)
                            .query_async(conn)
                            .await
                    })
                })
                .await?;
            let n = reply.ids.len();
            for (seq, payload) in reply.ids.iter().filter_map(stream::entry) {
                upper = upper.min(seq);
                if out.len() < limit && payload_is(&payload, kind) {
                    out.push((seq, payload));
                }
            }
            if n < PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// The canvas's persisted mark: every event up to it is in the durable
    /// history.
    pub async fn persisted(&self, canvas: &CanvasId) -> Result<u64, StoreError> {
        let key = keys::canvas_meta(canvas);
        let mark: Option<u64> = self
            .redis
            .with_conn(|conn| {
                Box::pin(async move {
                    redis::cmd("HGET")
                        .arg(key)
                        .arg("persisted")
                        .query_async(conn)
                        .await
                })
            })
            .await?;
        Ok(mark.unwrap_or(0))
    }

    /// The canvas's position (initialising it if Redis has none), checked
    /// against the durable history first if Redis may have restarted with
    /// older data since the last check (on a cluster: if the master serving
    /// the canvas is not the one it was checked on, as for a write).
    pub async fn position(&self, canvas: &CanvasId) -> Result<Position, StoreError> {
        let (mut conn, generation) = self.redis.checked().await?;
        let conn = &mut conn;
        let server = self.verify(conn, canvas, generation).await?;
        let mut found = self.read_position_on(conn, canvas, &server).await;
        if let Some(moved) = self.moved(conn, canvas, generation, &found).await? {
            found = self.read_position_on(conn, canvas, &moved).await;
        }
        match found? {
            Some(position) => Ok(position),
            None => self.initialise(conn, canvas).await,
        }
    }

    /// The position Redis holds, `None` if the canvas has no epoch.
    pub(super) async fn read_position(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
    ) -> Result<Option<Position>, StoreError> {
        self.read_position_on(conn, canvas, "").await
    }

    /// [`Self::read_position`] on a cluster only from `server` (the run id
    /// the canvas was checked on; '' reads from any): another master answers
    /// the error `NEWSERVER`.
    async fn read_position_on(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
        server: &str,
    ) -> Result<Option<Position>, StoreError> {
        let mut call = if self.redis.is_cluster() {
            let mut call = POSITION_GUARDED_SCRIPT.prepare_invoke();
            call.arg(server);
            call
        } else {
            POSITION_SCRIPT.prepare_invoke()
        };
        call.key(keys::canvas_meta(canvas));
        let (seq, epoch): (u64, Option<String>) = self.redis.call(call.invoke_async(conn)).await?;
        Ok(epoch.map(|epoch| Position { seq, epoch }))
    }

    /// A page of the canvas's objects in id order after `after`, ending
    /// within `budget` bytes (fog regions only for a gm), the position they
    /// include, and the last id when more follow.
    pub async fn objects(
        &self,
        canvas: &CanvasId,
        gm: bool,
        after: Option<&str>,
        budget: usize,
    ) -> Result<ObjectsPage, StoreError> {
        // Initialises the canvas (rebuilding it) if Redis lost it.
        self.position(canvas).await?;
        let mut call = objects::redis::READ_SCRIPT.prepare_invoke();
        call.key(keys::canvas_meta(canvas))
            .key(keys::canvas_objects(canvas))
            .arg(keys::canvas_object_prefix(canvas))
            .arg(after.unwrap_or_default())
            .arg(if gm { "1" } else { "" })
            .arg(budget);
        let (seq, epoch, entries, next): (u64, Option<String>, Vec<Vec<String>>, String) =
            self.redis.invoke(call).await?;
        let objects = entries
            .iter()
            .filter_map(|entry| objects::redis::parse(entry))
            .collect();
        Ok(ObjectsPage {
            position: Position {
                seq,
                epoch: epoch.unwrap_or_default(),
            },
            objects,
            next: Some(next).filter(|n| !n.is_empty()),
        })
    }

    pub async fn snapshot(
        &self,
        canvas: &CanvasId,
        bits: u8,
        cell_count: usize,
    ) -> Result<Snapshot, StoreError> {
        let canvas = canvas.clone();
        let (seq, epoch, packed) = self
            .redis
            .with_conn(|conn| Box::pin(async move { snapshot_packed(conn, &canvas).await }))
            .await?;
        Ok(Snapshot {
            seq,
            epoch,
            cells: unpack_cells(&packed, bits, cell_count),
        })
    }
}

/// Reads a canvas's packed cells and the position they include, atomically:
/// `(seq, epoch, packed BITFIELD bytes)`. Shared with the persister, which
/// stores these as canvas snapshots.
pub async fn snapshot_packed<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    canvas: &CanvasId,
) -> redis::RedisResult<(u64, Option<String>, Vec<u8>)> {
    let mut call = SNAPSHOT_SCRIPT.prepare_invoke();
    call.key(keys::canvas_meta(canvas))
        .key(keys::canvas_pixels(canvas));
    call.invoke_async(conn).await
}
