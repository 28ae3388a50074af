//! The Redis bus: publishes through a deadpool-redis pool and receives on
//! one dedicated pub/sub connection per node.
//!
//! The subscriber task owns that connection. It keeps the set of canvases
//! this node wants (driven by the hub's first-join/last-leave commands),
//! applies changes in batches (one SUBSCRIBE or UNSUBSCRIBE for everything
//! that queued up), pings the connection to notice a dead server, and after
//! a reconnect subscribes everything again and tells the members of those
//! canvases to resynchronise, since events published in between are lost.

use crate::BusError;
use crate::backoff::Backoff;
use crate::hub::{Hub, SubCommand};
use crate::log::{Position, Snapshot, new_epoch, unpack_cells};
use crate::objects::{Change, ObjectChange, ObjectOp, Objects, Refusal};
use bytes::Bytes;
use deadpool_redis::{Config as PoolConfig, Runtime, Timeouts};
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use shared::protocol::ObjectState;
use shared::protocol::ResyncReason;
use shared::{CanvasId, keys};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Most channels named in one SUBSCRIBE/UNSUBSCRIBE.
const CHANNELS_PER_COMMAND: usize = 1000;

/// How to reach Redis and how patient to be with it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db` (or `rediss://`).
    pub url: String,
    /// Connections in the publish pool.
    pub pool_size: usize,
    /// Timeout for one publish, including taking a pooled connection.
    pub publish_timeout: Duration,
    /// How long a join waits for its subscription to be confirmed.
    pub subscribe_timeout: Duration,
    /// How often the pub/sub connection is pinged to detect a dead server.
    pub health_interval: Duration,
    /// Events kept per canvas stream (approximate, trimmed by Redis), when
    /// no persister runs (`backlog_limit` 0).
    pub log_max_events: usize,
    /// With a persister: refuse durable writes while this many events await
    /// it, and leave trimming to it. 0: no persister, trim by length.
    pub backlog_limit: usize,
}

impl RedisSettings {
    /// Settings with the defaults the gateway also uses.
    pub fn new(url: &str) -> Self {
        RedisSettings {
            url: url.to_owned(),
            pool_size: 16,
            publish_timeout: Duration::from_secs(2),
            subscribe_timeout: Duration::from_secs(5),
            health_interval: Duration::from_secs(5),
            log_max_events: 100_000,
            backlog_limit: 0,
        }
    }
}

/// The durable publish step (see `scripts/publish.lua`).
static PUBLISH_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/publish.lua")));
/// Position read (see `scripts/position.lua`).
static POSITION_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/position.lua")));
/// Initialisation or rebuild (see `scripts/restore.lua`).
static RESTORE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/restore.lua")));
/// Snapshot read (see `scripts/snapshot.lua`).
static PRESENCE_ENTER_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/presence_enter.lua")));

static ONLINE_ENTER_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/online_enter.lua")));

static ONLINE_EXPIRE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/online_expire.lua")));

static ONLINE_SWEEP_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/online_sweep.lua")));

static PRESENCE_SWEEP_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/presence_sweep.lua")));

/// Objects read (see `scripts/objects.lua`).
static OBJECTS_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/objects.lua")));

static SNAPSHOT_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("scripts/snapshot.lua")));

pub(crate) struct RedisBus {
    pool: deadpool_redis::Pool,
    publish_timeout: Duration,
    log_max_events: usize,
    backlog_limit: usize,
    /// Where to rebuild a canvas from when Redis has lost it.
    pub(crate) history: Option<std::sync::Arc<dyn crate::log::History>>,
    /// Whether the subscriber's pub/sub connection is up.
    connected: watch::Receiver<bool>,
}

impl RedisBus {
    pub(crate) async fn start(
        node: &str,
        settings: RedisSettings,
        shutdown: CancellationToken,
    ) -> Result<(RedisBus, Arc<Hub>), BusError> {
        let mut cfg = PoolConfig::from_url(settings.url.clone());
        let mut pool_cfg = deadpool_redis::PoolConfig::new(settings.pool_size);
        pool_cfg.timeouts = Timeouts {
            wait: Some(settings.publish_timeout),
            create: Some(settings.publish_timeout),
            recycle: Some(settings.publish_timeout),
        };
        cfg.pool = Some(pool_cfg);
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(BusError::CreatePool)?;
        // Fail at start, with a clear error, if Redis is not there at all.
        let mut conn = pool.get().await.map_err(BusError::Pool)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(BusError::Redis)?;
        drop(conn);
        let client = redis::Client::open(settings.url.as_str()).map_err(BusError::Redis)?;

        let (tx, rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(node, Some(tx)));
        let (connected_tx, mut connected) = watch::channel(false);
        let subscriber = Subscriber {
            client,
            hub: hub.clone(),
            commands: rx,
            desired: HashSet::new(),
            actual: HashSet::new(),
            waiters: HashMap::new(),
            connected: connected_tx,
            health_interval: settings.health_interval,
        };
        tokio::spawn(subscriber.run(shutdown));
        // Serve nothing until events can be received.
        match tokio::time::timeout(settings.subscribe_timeout, connected.wait_for(|up| *up)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(BusError::Stopped),
            Err(_) => return Err(BusError::Timeout(settings.subscribe_timeout)),
        }
        Ok((
            RedisBus {
                pool,
                publish_timeout: settings.publish_timeout,
                log_max_events: settings.log_max_events,
                backlog_limit: settings.backlog_limit,
                history: None,
                connected,
            },
            hub,
        ))
    }

    pub(crate) fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    pub(crate) async fn publish(
        &self,
        canvas: &CanvasId,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        let channel = keys::canvas_channel(canvas);
        let attempt = async {
            let mut conn = self.pool.get().await.map_err(BusError::Pool)?;
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(BusError::Redis)
        };
        match tokio::time::timeout(self.publish_timeout, attempt).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(BusError::Timeout(self.publish_timeout)),
        }
    }
}

impl RedisBus {
    pub(crate) async fn presence_enter(
        &self,
        canvas: &CanvasId,
        entry: &str,
        info: &str,
        (expiry, now, key_ttl): (u64, u64, u64),
    ) -> Result<(bool, usize), BusError> {
        let user = entry.split('\x1f').next().unwrap_or_default();
        let prefix = crate::presence::user_prefix(user);
        let mut call = PRESENCE_ENTER_SCRIPT.prepare_invoke();
        call.key(keys::canvas_presence(canvas))
            .key(keys::canvas_presence_info(canvas))
            .arg(entry)
            .arg(expiry)
            .arg(now)
            .arg(info)
            .arg(prefix)
            .arg(key_ttl);
        let (first, count): (i64, usize) = self
            .with_conn(|c| Box::pin(async move { call.invoke_async(c).await }))
            .await?;
        Ok((first == 1, count))
    }

    /// Sets the expiry of existing entries (refresh, or the grace on leave),
    /// and keeps the keys alive `key_ttl` ms.
    pub(crate) async fn presence_expire(
        &self,
        entries: &[(CanvasId, String)],
        expiry: u64,
        key_ttl: u64,
    ) -> Result<(), BusError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (canvas, entry) in entries {
            pipe.cmd("ZADD")
                .arg(keys::canvas_presence(canvas))
                .arg("XX")
                .arg(expiry)
                .arg(entry)
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(keys::canvas_presence(canvas))
                .arg(key_ttl)
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(keys::canvas_presence_info(canvas))
                .arg(key_ttl)
                .ignore();
        }
        self.with_conn(|c| Box::pin(async move { pipe.query_async::<()>(c).await }))
            .await
    }

    /// `times`: (expiry, now, the end of a grace period starting now), ms.
    pub(crate) async fn online_enter(
        &self,
        user: &str,
        entry: &str,
        times: (u64, u64, u64),
        key_ttl: u64,
    ) -> Result<(bool, usize), BusError> {
        let (expiry, now, open_after) = times;
        let mut call = ONLINE_ENTER_SCRIPT.prepare_invoke();
        call.key(keys::online_index())
            .key(format!("{}{user}", keys::online_user_prefix()))
            .arg(user)
            .arg(entry)
            .arg(expiry)
            .arg(now)
            .arg(key_ttl)
            .arg(open_after);
        let (first, open): (u8, usize) = self
            .with_conn(|c| Box::pin(async move { call.invoke_async(c).await }))
            .await?;
        Ok((first == 1, open))
    }

    pub(crate) async fn online_expire(
        &self,
        entries: &[(String, String)],
        expiry: u64,
        key_ttl: u64,
    ) -> Result<(), BusError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut call = ONLINE_EXPIRE_SCRIPT.prepare_invoke();
        call.key(keys::online_index()).arg(expiry).arg(key_ttl);
        let prefix = keys::online_user_prefix();
        for (user, entry) in entries {
            call.key(format!("{prefix}{user}")).arg(user).arg(entry);
        }
        self.with_conn(|c| Box::pin(async move { call.invoke_async::<()>(c).await }))
            .await
    }

    pub(crate) async fn online_sweep(&self, now: u64) -> Result<Vec<String>, BusError> {
        let mut call = ONLINE_SWEEP_SCRIPT.prepare_invoke();
        call.key(keys::online_index())
            .arg(now)
            .arg(keys::online_user_prefix());
        self.with_conn(|c| Box::pin(async move { call.invoke_async(c).await }))
            .await
    }

    pub(crate) async fn online_check(
        &self,
        users: &[String],
        now: u64,
    ) -> Result<Vec<bool>, BusError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZMSCORE");
        cmd.arg(keys::online_index()).arg(users);
        let scores: Vec<Option<f64>> = self
            .with_conn(|c| Box::pin(async move { cmd.query_async(c).await }))
            .await?;
        Ok(scores
            .into_iter()
            .map(|s| s.is_some_and(|s| s > now as f64))
            .collect())
    }

    pub(crate) async fn presence_sweep(
        &self,
        canvas: &CanvasId,
        now: u64,
    ) -> Result<(Vec<String>, usize), BusError> {
        let mut call = PRESENCE_SWEEP_SCRIPT.prepare_invoke();
        call.key(keys::canvas_presence(canvas))
            .key(keys::canvas_presence_info(canvas))
            .arg(now);
        let reply: Vec<String> = self
            .with_conn(|c| Box::pin(async move { call.invoke_async(c).await }))
            .await?;
        let mut values = reply.into_iter();
        let live = values.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let left = values.collect();
        Ok((left, live))
    }

    pub(crate) async fn presence_list(
        &self,
        canvas: &CanvasId,
        now: u64,
    ) -> Result<Vec<shared::protocol::PresentUser>, BusError> {
        let zset = keys::canvas_presence(canvas);
        let info = keys::canvas_presence_info(canvas);
        let (entries, details): (Vec<String>, Vec<Option<String>>) = self
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
        Ok(crate::presence::fold(live))
    }

    /// Runs a Redis operation on a pooled connection within the publish timeout.
    async fn with_conn<T, F>(&self, op: F) -> Result<T, BusError>
    where
        F: for<'c> FnOnce(
            &'c mut deadpool_redis::Connection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = redis::RedisResult<T>> + Send + 'c>,
        >,
    {
        let attempt = async {
            let mut conn = self.pool.get().await.map_err(BusError::Pool)?;
            op(&mut conn).await.map_err(BusError::Redis)
        };
        match tokio::time::timeout(self.publish_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Timeout(self.publish_timeout)),
        }
    }

    pub(crate) async fn publish_durable(
        &self,
        canvas: &CanvasId,
        headers: (Vec<u8>, Vec<u8>),
        event: Vec<u8>,
        change: Option<&Change>,
    ) -> Result<Option<u64>, BusError> {
        match self.publish_once(canvas, &headers, &event, change).await {
            // Redis lost the canvas (or never had it): initialise it, from
            // the durable history if there is one, then publish.
            Err(BusError::Redis(err)) if err.code() == Some("UNINIT") => {
                self.initialise(canvas).await?;
                self.publish_once(canvas, &headers, &event, change).await
            }
            other => other,
        }
    }

    async fn publish_once(
        &self,
        canvas: &CanvasId,
        headers: &(Vec<u8>, Vec<u8>),
        event: &[u8],
        change: Option<&Change>,
    ) -> Result<Option<u64>, BusError> {
        let mut call = PUBLISH_SCRIPT.prepare_invoke();
        call.key(keys::canvas_meta(canvas))
            .key(keys::canvas_pixels(canvas))
            .key(keys::canvas_log(canvas))
            .key(keys::canvas_objects(canvas))
            .arg(keys::canvas_channel(canvas))
            .arg(&headers.0)
            .arg(event)
            .arg(if self.backlog_limit > 0 {
                0
            } else {
                self.log_max_events
            })
            .arg(self.backlog_limit);
        let mode = match change {
            None => "",
            Some(Change::Pixels(p)) if p.bits == 8 => "u8",
            Some(Change::Pixels(_)) => "u5",
            Some(Change::Object(_)) => "obj",
            Some(Change::Clear) => "clear",
        };
        call.arg(mode)
            .arg(keys::canvas_object_prefix(canvas))
            .arg(keys::canvas_likers_prefix(canvas));
        match change {
            Some(Change::Pixels(change)) => {
                for &(cell, color) in &change.cells {
                    call.arg(cell).arg(color);
                }
            }
            Some(Change::Object(change)) => object_args(&mut call, change, &headers.1),
            Some(Change::Clear) | None => {}
        }
        let result: Result<(u64, String), BusError> = self
            .with_conn(|conn| Box::pin(async move { call.invoke_async(conn).await }))
            .await;
        match result {
            Ok((0, _epoch)) => Ok(None),
            Ok((seq, _epoch)) => Ok(Some(seq)),
            Err(BusError::Redis(err)) if err.code().and_then(Refusal::from_script).is_some() => {
                Err(BusError::Refused(
                    err.code()
                        .and_then(Refusal::from_script)
                        .unwrap_or(Refusal::NoObject),
                ))
            }
            Err(BusError::Redis(err)) if err.code() == Some("BACKLOG") => {
                let backlog = err
                    .detail()
                    .and_then(|d| d.trim().parse().ok())
                    .unwrap_or(self.backlog_limit as u64);
                Err(BusError::BacklogFull { backlog })
            }
            Err(err) => Err(err),
        }
    }

    pub(crate) async fn events(
        &self,
        canvas: &CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, BusError> {
        let key = keys::canvas_log(canvas);
        let reply: redis::streams::StreamRangeReply = self
            .with_conn(|conn| {
                Box::pin(async move {
                    redis::cmd("XRANGE")
                        .arg(key)
                        .arg(format!("{}-0", after + 1))
                        .arg(format!("{until}-0"))
                        .arg("COUNT")
                        .arg(limit)
                        .query_async(conn)
                        .await
                })
            })
            .await?;
        let mut out = Vec::with_capacity(reply.ids.len());
        for entry in reply.ids {
            let seq = entry
                .id
                .split_once('-')
                .and_then(|(ms, _)| ms.parse::<u64>().ok());
            let payload: Option<Vec<u8>> = entry.get("p");
            if let (Some(seq), Some(payload)) = (seq, payload) {
                out.push((seq, Bytes::from(payload)));
            }
        }
        Ok(out)
    }

    /// The canvas log's events of `kind` with `seq < before`, newest first,
    /// at most `limit`, scanning back page by page no further than `floor`
    /// (exclusive). Returns them and the persisted mark read first.
    pub(crate) async fn kind_before(
        &self,
        canvas: &CanvasId,
        kind: &str,
        before: u64,
        limit: usize,
        floor: Option<u64>,
    ) -> Result<Vec<(u64, Bytes)>, BusError> {
        const PAGE: usize = 1000;
        let key = keys::canvas_log(canvas);
        let mut out = Vec::new();
        let mut upper = before;
        let lower = floor.map_or_else(|| "-".to_owned(), |f| format!("{}-0", f + 1));
        while out.len() < limit && upper > 1 && floor.is_none_or(|f| upper > f + 1) {
            let (key, lower) = (key.clone(), lower.clone());
            let reply: redis::streams::StreamRangeReply = self
                .with_conn(|conn| {
                    Box::pin(async move {
                        redis::cmd("XREVRANGE")
                            .arg(key)
                            .arg(format!("{}-0", upper - 1))
                            .arg(lower)
                            .arg("COUNT")
                            .arg(PAGE)
                            .query_async(conn)
                            .await
                    })
                })
                .await?;
            let n = reply.ids.len();
            for entry in reply.ids {
                let seq = entry
                    .id
                    .split_once('-')
                    .and_then(|(ms, _)| ms.parse::<u64>().ok());
                let payload: Option<Vec<u8>> = entry.get("p");
                if let (Some(seq), Some(payload)) = (seq, payload) {
                    upper = upper.min(seq);
                    let payload = Bytes::from(payload);
                    if out.len() < limit && crate::log::payload_is(&payload, kind) {
                        out.push((seq, payload));
                    }
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
    pub(crate) async fn persisted(&self, canvas: &CanvasId) -> Result<u64, BusError> {
        let key = keys::canvas_meta(canvas);
        let mark: Option<u64> = self
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

    pub(crate) async fn position(&self, canvas: &CanvasId) -> Result<Position, BusError> {
        let mut call = POSITION_SCRIPT.prepare_invoke();
        call.key(keys::canvas_meta(canvas));
        let (seq, epoch): (u64, Option<String>) = self
            .with_conn(|conn| Box::pin(async move { call.invoke_async(conn).await }))
            .await?;
        match epoch {
            Some(epoch) => Ok(Position { seq, epoch }),
            None => self.initialise(canvas).await,
        }
    }

    /// Gives a canvas without an epoch its state, sequence counter and a new
    /// epoch: rebuilt from the durable history when there is one, else empty
    /// at seq 0. Nothing is served for the canvas until this succeeded.
    async fn initialise(&self, canvas: &CanvasId) -> Result<Position, BusError> {
        let restored = match &self.history {
            Some(history) => history.load(canvas).await.map_err(BusError::History)?,
            None => None,
        };
        let (seq, packed, objects) = match restored {
            Some(r) => (r.seq, r.packed, r.objects),
            None => (0, Vec::new(), Objects::default()),
        };
        let mut call = RESTORE_SCRIPT.prepare_invoke();
        call.key(keys::canvas_meta(canvas))
            .key(keys::canvas_pixels(canvas))
            .key(keys::canvas_objects(canvas))
            .arg(seq)
            .arg(new_epoch())
            .arg(packed)
            .arg(keys::canvas_object_prefix(canvas))
            .arg(keys::canvas_likers_prefix(canvas));
        for (object, likers) in objects.records() {
            let fields = object_fields(object);
            call.arg(&object.id).arg(fields.len() / 2).arg(fields);
            call.arg(likers.len());
            for liker in likers {
                call.arg(liker);
            }
        }
        let (seq, epoch): (u64, String) = self
            .with_conn(|conn| Box::pin(async move { call.invoke_async(conn).await }))
            .await?;
        tracing::info!(%canvas, seq, %epoch, rebuilt = self.history.is_some(), "canvas initialised in redis");
        Ok(Position { seq, epoch })
    }

    pub(crate) async fn objects(
        &self,
        canvas: &CanvasId,
        gm: bool,
    ) -> Result<(Position, Vec<ObjectState>), BusError> {
        // Initialises the canvas (rebuilding it) if Redis lost it.
        self.position(canvas).await?;
        let mut call = OBJECTS_SCRIPT.prepare_invoke();
        call.key(keys::canvas_meta(canvas))
            .key(keys::canvas_objects(canvas))
            .arg(keys::canvas_object_prefix(canvas));
        let (seq, epoch, entries): (u64, Option<String>, Vec<Vec<String>>) = self
            .with_conn(|conn| Box::pin(async move { call.invoke_async(conn).await }))
            .await?;
        let mut objects: Vec<ObjectState> = entries
            .iter()
            .filter_map(|entry| parse_object(entry))
            .filter(|o| gm || !o.is_fog())
            .collect();
        objects.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((
            Position {
                seq,
                epoch: epoch.unwrap_or_default(),
            },
            objects,
        ))
    }

    pub(crate) async fn snapshot(
        &self,
        canvas: &CanvasId,
        bits: u8,
        cell_count: usize,
    ) -> Result<Snapshot, BusError> {
        let canvas = canvas.clone();
        let (seq, epoch, packed) = self
            .with_conn(|conn| Box::pin(async move { snapshot_packed(conn, &canvas).await }))
            .await?;
        Ok(Snapshot {
            seq,
            epoch,
            cells: unpack_cells(&packed, bits, cell_count),
        })
    }
}

/// The publish script's arguments for an object operation (after the
/// pixel/object mode and key prefixes).
fn object_args(call: &mut redis::ScriptInvocation<'_>, change: &ObjectChange, gm_header: &[u8]) {
    let op = match &change.op {
        ObjectOp::Create(_) => "create",
        ObjectOp::Update { .. } => "update",
        ObjectOp::Move { .. } => "move",
        ObjectOp::Delete { .. } => "delete",
        ObjectOp::Like { .. } => "like",
    };
    call.arg(op)
        .arg(change.op.object())
        .arg(&change.user)
        .arg(if change.gm { "1" } else { "" })
        .arg(gm_header)
        .arg(change.max_objects);
    let optional = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    match &change.op {
        ObjectOp::Create(o) => {
            call.arg(&o.kind)
                .arg(o.x.to_string())
                .arg(o.y.to_string())
                .arg(o.w.to_string())
                .arg(o.h.to_string())
                .arg(&o.owner);
            for (name, value) in &o.props {
                call.arg(name).arg(value.to_string());
            }
        }
        ObjectOp::Update { props, .. } => {
            for (name, value) in props {
                let json = if value.is_null() {
                    String::new()
                } else {
                    value.to_string()
                };
                call.arg(name).arg(json);
            }
        }
        ObjectOp::Move { x, y, w, h, .. } => {
            call.arg(x.to_string())
                .arg(y.to_string())
                .arg(optional(*w))
                .arg(optional(*h));
        }
        ObjectOp::Delete { .. } | ObjectOp::Like { .. } => {}
    }
}

/// An object as its Redis hash holds it: (field, value) pairs.
fn object_fields(o: &ObjectState) -> Vec<String> {
    let mut fields = vec![
        "kind".to_owned(),
        o.kind.clone(),
        "x".to_owned(),
        o.x.to_string(),
        "y".to_owned(),
        o.y.to_string(),
        "w".to_owned(),
        o.w.to_string(),
        "h".to_owned(),
        o.h.to_string(),
        "owner".to_owned(),
        o.owner.clone(),
        "likes".to_owned(),
        o.likes.to_string(),
    ];
    for (name, value) in &o.props {
        fields.push(format!("p:{name}"));
        fields.push(value.to_string());
    }
    fields
}

/// An object from `scripts/objects.lua`'s `{id, field, value, ...}`; `None`
/// (logged) if a field is unreadable.
fn parse_object(entry: &[String]) -> Option<ObjectState> {
    let (id, pairs) = entry.split_first()?;
    let mut o = ObjectState {
        id: id.clone(),
        kind: String::new(),
        x: 0.0,
        y: 0.0,
        w: 0.0,
        h: 0.0,
        props: Default::default(),
        likes: 0,
        owner: String::new(),
    };
    for pair in pairs.chunks_exact(2) {
        let (field, value) = (pair[0].as_str(), &pair[1]);
        let ok = match field {
            "kind" => {
                o.kind = value.clone();
                true
            }
            "owner" => {
                o.owner = value.clone();
                true
            }
            "x" => value.parse().map(|v| o.x = v).is_ok(),
            "y" => value.parse().map(|v| o.y = v).is_ok(),
            "w" => value.parse().map(|v| o.w = v).is_ok(),
            "h" => value.parse().map(|v| o.h = v).is_ok(),
            "likes" => value.parse().map(|v| o.likes = v).is_ok(),
            _ => match field.strip_prefix("p:") {
                Some(name) => serde_json::from_str(value)
                    .map(|v| {
                        o.props.insert(name.to_owned(), v);
                    })
                    .is_ok(),
                None => true,
            },
        };
        if !ok {
            tracing::warn!(object = %o.id, field, "unreadable object field; object skipped");
            return None;
        }
    }
    (!o.kind.is_empty()).then_some(o)
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

type Waiter = oneshot::Sender<Result<(), BusError>>;

struct Subscriber {
    client: redis::Client,
    hub: Arc<Hub>,
    commands: mpsc::UnboundedReceiver<SubCommand>,
    /// Canvases with local members: what should be subscribed.
    desired: HashSet<CanvasId>,
    /// What the current connection has confirmed.
    actual: HashSet<CanvasId>,
    /// Joins waiting for their canvas's subscription to be confirmed.
    waiters: HashMap<CanvasId, Vec<Waiter>>,
    /// Shared with the bus for readiness and fast-failing joins.
    connected: watch::Sender<bool>,
    health_interval: Duration,
}

/// Why the connected loop ended.
enum Ended {
    Shutdown,
    Lost,
}

impl Subscriber {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut ever_connected = false;
        loop {
            let connect =
                tokio::time::timeout(Duration::from_secs(5), self.client.get_async_pubsub());
            let pubsub = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = connect => r,
            };
            let (mut sink, mut stream) = match pubsub {
                Ok(Ok(pubsub)) => pubsub.split(),
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "redis pub/sub connect failed");
                    if !self.pause(&mut backoff, &shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(_) => {
                    tracing::warn!("redis pub/sub connect timed out");
                    if !self.pause(&mut backoff, &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            // Fold in everything that changed while we were away, then
            // subscribe the whole set on the new connection.
            self.drain_commands();
            self.actual.clear();
            if let Err(err) = self.sync(&mut sink).await {
                tracing::warn!(error = %err, "redis resubscribe failed");
                if !self.pause(&mut backoff, &shutdown).await {
                    return;
                }
                continue;
            }
            self.connected.send_replace(true);
            backoff.reset();
            if ever_connected {
                self.hub
                    .stats()
                    .bus_reconnects
                    .fetch_add(1, Ordering::Relaxed);
                // Channels (users', global) carry no sequence to resync.
                let canvases: Vec<CanvasId> = self
                    .actual
                    .iter()
                    .filter(|c| !c.is_channel())
                    .cloned()
                    .collect();
                tracing::warn!(
                    canvases = canvases.len(),
                    "redis pub/sub reconnected; members told to resync"
                );
                self.hub.resync(&canvases, ResyncReason::BusReconnected);
            } else {
                tracing::info!("redis pub/sub connected");
            }
            ever_connected = true;

            let ended = self.connected_loop(&mut sink, &mut stream, &shutdown).await;
            self.connected.send_replace(false);
            self.set_subscriptions(0);
            match ended {
                Ended::Shutdown => return,
                Ended::Lost => {
                    tracing::warn!("redis pub/sub connection lost; reconnecting");
                }
            }
        }
    }

    fn set_subscriptions(&self, n: usize) {
        self.hub
            .stats()
            .subscriptions
            .store(n as u64, Ordering::Relaxed);
    }

    /// Waits out one backoff step; false if shutdown came first.
    async fn pause(&mut self, backoff: &mut Backoff, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(backoff.next_delay()) => true,
        }
    }

    async fn connected_loop(
        &mut self,
        sink: &mut PubSubSink,
        stream: &mut PubSubStream,
        shutdown: &CancellationToken,
    ) -> Ended {
        let mut health = tokio::time::interval(self.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ended::Shutdown,
                msg = stream.next() => {
                    let Some(msg) = msg else { return Ended::Lost };
                    match keys::canvas_from_channel(msg.get_channel_name()) {
                        Some(canvas) => {
                            let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                            self.hub.dispatch(&canvas, &payload);
                        }
                        None => tracing::warn!(channel = msg.get_channel_name(), "message on an unknown channel"),
                    }
                }
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { return Ended::Shutdown };
                    self.apply(cmd);
                    self.drain_commands();
                    if let Err(err) = self.sync(sink).await {
                        tracing::warn!(error = %err, "redis subscribe/unsubscribe failed");
                        return Ended::Lost;
                    }
                }
                _ = health.tick() => {
                    // In subscribed mode (RESP2) the reply is the array
                    // ["pong", ""], not +PONG: any reply proves the link.
                    let ping = tokio::time::timeout(self.health_interval, sink.ping::<redis::Value>()).await;
                    match ping {
                        Ok(Ok(_)) => {
                            self.hub.stats().bus_pings.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "redis pub/sub ping failed");
                            return Ended::Lost;
                        }
                        Err(_) => {
                            tracing::warn!("redis pub/sub ping timed out");
                            return Ended::Lost;
                        }
                    }
                }
            }
        }
    }

    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            self.apply(cmd);
        }
    }

    fn apply(&mut self, cmd: SubCommand) {
        match cmd {
            SubCommand::Want(canvas) => {
                self.desired.insert(canvas);
            }
            SubCommand::Unwant(canvas) => {
                self.desired.remove(&canvas);
            }
            SubCommand::Await(canvas, waiter) => {
                if self.actual.contains(&canvas) && self.desired.contains(&canvas) {
                    let _ = waiter.send(Ok(()));
                } else {
                    self.waiters.entry(canvas).or_default().push(waiter);
                }
            }
        }
    }

    /// Brings the connection's subscriptions to the desired set, then
    /// answers the joins waiting on canvases that are now subscribed.
    async fn sync(&mut self, sink: &mut PubSubSink) -> Result<(), redis::RedisError> {
        let to_sub: Vec<String> = self
            .desired
            .difference(&self.actual)
            .map(keys::canvas_channel)
            .collect();
        let to_unsub: Vec<CanvasId> = self.actual.difference(&self.desired).cloned().collect();
        for chunk in to_sub.chunks(CHANNELS_PER_COMMAND) {
            sink.subscribe(chunk).await?;
        }
        if !to_unsub.is_empty() {
            let channels: Vec<String> = to_unsub.iter().map(keys::canvas_channel).collect();
            for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
                sink.unsubscribe(chunk).await?;
            }
        }
        self.actual = self.desired.clone();
        self.set_subscriptions(self.actual.len());
        let ready: Vec<CanvasId> = self
            .waiters
            .keys()
            .filter(|c| self.actual.contains(*c))
            .cloned()
            .collect();
        for canvas in ready {
            for waiter in self.waiters.remove(&canvas).unwrap_or_default() {
                let _ = waiter.send(Ok(()));
            }
        }
        // Waiters for canvases nobody wants any more (the member left while
        // waiting) are dropped, which their join sees as a failure.
        let desired = &self.desired;
        self.waiters.retain(|c, _| desired.contains(c));
        Ok(())
    }
}
