//! Keeping Redis from going back in time. A canvas's Redis state is
//! initialised from the durable history when Redis has none, and rebuilt
//! from it, under a new epoch, when Redis came back (restarted from an old
//! RDB or a truncated AOF, or a replica promoted after missing writes)
//! holding a canvas at a sequence number below what the history already
//! holds. Without that, new writes would reuse sequence numbers Postgres
//! has, and the persister could not store them.
//!
//! A restart or failover is noticed by the pool (a new server `run_id` on
//! a new connection, before that connection serves a call); each canvas is
//! then checked once against the history before its next write or read of
//! its position, on the very connection that write or read then uses (so
//! no call reaches a new server before the check).

use super::redis::RedisLog;
use super::{Position, new_epoch};
use crate::RedisConn as Connection;
use crate::objects::{self, Objects};
use crate::{Restored, StoreError};
use shared::{CanvasId, keys};
use std::sync::LazyLock;

/// Initialisation or rebuild (see `restore.lua`).
static RESTORE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("restore.lua")));
/// The run id of the master serving a canvas (see `server.lua`).
static SERVER_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("server.lua")));

impl RedisLog {
    /// After a guarded script ran on the master the canvas was verified
    /// on (see [`Self::verify`]): if it answered `NEWSERVER`, a failover
    /// moved the canvas since, so it is verified again, against the history
    /// on the new master, whose run id is returned to run the script again.
    pub(super) async fn moved<T>(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
        generation: u64,
        result: &Result<T, StoreError>,
    ) -> Result<Option<String>, StoreError> {
        match result {
            Err(StoreError::Redis(err)) if err.code() == Some("NEWSERVER") => {
                tracing::warn!(%canvas, "the canvas's redis master changed: checking it against postgres");
                self.checked.forget(canvas);
                Ok(Some(self.verify(conn, canvas, generation).await?))
            }
            _ => Ok(None),
        }
    }

    /// Checks the canvas against the history once per Redis server process
    /// (`generation`, read after taking `conn`; on a cluster, per master
    /// serving the canvas): if Redis holds it below the history's last
    /// sequence number, rebuilds it from the history under a new epoch
    /// before anything else uses it. Returns the run id of the master it
    /// was checked on (on a cluster, else ''), which writes then name.
    pub(super) async fn verify(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
        generation: u64,
    ) -> Result<String, StoreError> {
        let Some(history) = &self.history else {
            return Ok(String::new());
        };
        if let Some(server) = self.checked.server(canvas, generation) {
            return Ok(server);
        }
        // Read before the check: a failover between the two makes the
        // next write name the old master, which the new one refuses.
        let server = if self.redis.is_cluster() {
            let mut call = SERVER_SCRIPT.prepare_invoke();
            call.key(keys::canvas_meta(canvas));
            self.redis.call(call.invoke_async(conn)).await?
        } else {
            String::new()
        };
        let stored = history
            .last_seq(canvas)
            .await
            .map_err(StoreError::History)?;
        if let Some(found) = self.read_position(conn, canvas).await?
            && found.seq < stored
        {
            tracing::error!(
                %canvas, redis_seq = found.seq, stored_seq = stored, epoch = %found.epoch,
                "redis holds this canvas behind postgres (it restarted from older data): rebuilding it under a new epoch"
            );
            self.restore(conn, canvas, Some(&found)).await?;
        }
        // (A canvas without an epoch is initialised from the history on
        // first use, which is up to date by construction.)
        self.checked.insert(canvas, generation, server.clone());
        Ok(server)
    }

    /// Gives a canvas without an epoch its state, sequence counter and a new
    /// epoch: rebuilt from the durable history when there is one, else empty
    /// at seq 0. Nothing is served for the canvas until this succeeded.
    pub(super) async fn initialise(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
    ) -> Result<Position, StoreError> {
        self.restore(conn, canvas, None).await
    }

    /// Replaces the canvas's Redis state with the history's under a new
    /// epoch, if Redis still holds it at `expected` (`None`: no epoch).
    async fn restore(
        &self,
        conn: &mut Connection,
        canvas: &CanvasId,
        expected: Option<&Position>,
    ) -> Result<Position, StoreError> {
        let restored = match &self.history {
            Some(history) => history.load(canvas).await.map_err(StoreError::History)?,
            None => None,
        };
        let Restored {
            seq,
            packed,
            objects,
        } = restored.unwrap_or(Restored {
            seq: 0,
            packed: Vec::new(),
            objects: Objects::default(),
        });
        let mut call = RESTORE_SCRIPT.prepare_invoke();
        call.key(keys::canvas_meta(canvas))
            .key(keys::canvas_pixels(canvas))
            .key(keys::canvas_objects(canvas))
            .key(keys::canvas_op_keys(canvas))
            .key(keys::canvas_op_expiry(canvas))
            .arg(seq)
            .arg(new_epoch())
            .arg(packed)
            .arg(keys::canvas_object_prefix(canvas))
            .arg(keys::canvas_likers_prefix(canvas))
            .arg(expected.map_or("", |p| p.epoch.as_str()))
            .arg(expected.map_or(0, |p| p.seq));
        for (object, likers) in objects.records() {
            let fields = objects::redis::fields(object);
            call.arg(&object.id).arg(fields.len() / 2).arg(fields);
            call.arg(likers.len());
            for liker in likers {
                call.arg(liker);
            }
        }
        let (seq, epoch): (u64, String) = self.redis.call(call.invoke_async(conn)).await?;
        tracing::info!(%canvas, seq, %epoch, rebuilt = self.history.is_some(), "canvas initialised in redis");
        if epoch.is_empty() {
            // Another gateway's rebuild is under way or lost the state
            // again: initialise it now.
            return Box::pin(self.restore(conn, canvas, None)).await;
        }
        Ok(Position { seq, epoch })
    }
}
