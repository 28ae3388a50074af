//! Reloading a canvas's history from Postgres (what the persister wrote)
//! so Redis can be rebuilt after it lost its data: the latest snapshot, then
//! every later event re-applied to its packed cells.

use shared::CanvasId;
use shared::busframe;
use shared::codec::{self, Encoding};
use shared::protocol::ServerMessage;
use shared::validate::CanvasGeometry;
use store::{History, HistoryFuture, Objects, PixelChange, Restored, pack_cell};

/// Postgres-backed [`History`].
pub(crate) struct PgHistory {
    pool: deadpool_postgres::Pool,
    /// The geometry of canvases the catalogue does not have.
    geometry: CanvasGeometry,
}

impl PgHistory {
    pub fn new(pool: deadpool_postgres::Pool, geometry: CanvasGeometry) -> Self {
        PgHistory { pool, geometry }
    }

    /// Stored events as (seq, bus payload): the rows `sql` selects with
    /// `params`; none when no persister has created the table yet.
    async fn payloads(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(u64, bytes::Bytes)>, String> {
        let conn = self.pool.get().await.map_err(|e| e.to_string())?;
        let rows = match conn.query(sql, params).await {
            Ok(rows) => rows,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.to_string()),
        };
        Ok(rows
            .into_iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let payload: Vec<u8> = r.get(1);
                (u64::try_from(seq).unwrap_or(0), bytes::Bytes::from(payload))
            })
            .collect())
    }

    async fn events_inner(
        &self,
        canvas: &CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, bytes::Bytes)>, String> {
        self.payloads(
            "SELECT seq, payload FROM events
             WHERE canvas_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
            &[
                &canvas.as_str(),
                &(after as i64),
                &(until as i64),
                &(limit as i64),
            ],
        )
        .await
    }

    async fn chat_before_inner(
        &self,
        canvas: &CanvasId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, bytes::Bytes)>, String> {
        self.payloads(
            "SELECT seq, payload FROM events
             WHERE canvas_id = $1 AND kind = 'chat' AND seq < $2
             ORDER BY seq DESC LIMIT $3",
            &[
                &canvas.as_str(),
                &i64::try_from(before).unwrap_or(i64::MAX),
                &(limit as i64),
            ],
        )
        .await
    }

    async fn last_seq_inner(&self, canvas: &CanvasId) -> Result<u64, String> {
        let conn = self.pool.get().await.map_err(|e| e.to_string())?;
        let row = conn
            .query_one(
                "SELECT GREATEST(
                     (SELECT max(seq) FROM events WHERE canvas_id = $1),
                     (SELECT max(seq) FROM canvas_snapshots WHERE canvas_id = $1))",
                &[&canvas.as_str()],
            )
            .await;
        match row {
            Ok(row) => Ok(row
                .get::<_, Option<i64>>(0)
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0)),
            // No persister has ever migrated this database: no history.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn load_inner(&self, canvas: &CanvasId) -> Result<Option<Restored>, String> {
        let conn = self.pool.get().await.map_err(|e| e.to_string())?;
        let snapshot = match conn
            .query_opt(
                "SELECT seq, cells FROM canvas_snapshots WHERE canvas_id = $1",
                &[&canvas.as_str()],
            )
            .await
        {
            Ok(row) => row.map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1))),
            // No persister has ever migrated this database: no history.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                return Ok(None);
            }
            Err(e) => return Err(e.to_string()),
        };
        let (mut seq, mut packed) = match snapshot {
            Some((seq, cells)) => (u64::try_from(seq).unwrap_or(0), cells),
            None => (0, Vec::new()),
        };
        let rows = conn
            .query(
                "SELECT seq, payload FROM events WHERE canvas_id = $1 AND seq > $2 ORDER BY seq",
                &[&canvas.as_str(), &(seq as i64)],
            )
            .await
            .map_err(|e| e.to_string())?;
        if seq == 0 && rows.is_empty() {
            return Ok(None);
        }
        // The canvas's own size and palette, if the catalogue has it.
        let geometry = match conn
            .query_opt(
                "SELECT width, height, cardinality(palette) FROM canvases WHERE id = $1",
                &[&canvas.as_str()],
            )
            .await
        {
            Ok(Some(r)) => CanvasGeometry {
                width: u32::try_from(r.get::<_, i32>(0)).unwrap_or(self.geometry.width),
                height: u32::try_from(r.get::<_, i32>(1)).unwrap_or(self.geometry.height),
                palette_size: u16::try_from(r.get::<_, i32>(2))
                    .unwrap_or(self.geometry.palette_size),
            },
            _ => self.geometry,
        };
        let bits = PixelChange::bits_for(geometry.palette_size);
        for row in rows {
            let event_seq: i64 = row.get(0);
            let payload: Vec<u8> = row.get(1);
            seq = seq.max(u64::try_from(event_seq).unwrap_or(0));
            let Ok(parts) = busframe::split(&bytes::Bytes::from(payload)) else {
                tracing::warn!(%canvas, seq = event_seq, "stored event unreadable; skipped in rebuild");
                continue;
            };
            match codec::decode_server(Encoding::Msgpack, &parts.event) {
                Ok(ServerMessage::Draw(d)) => {
                    for p in d.pixels {
                        if p.x < geometry.width && p.y < geometry.height {
                            let index = (p.y * geometry.width + p.x) as usize;
                            pack_cell(&mut packed, bits, index, p.color);
                        }
                    }
                }
                Ok(ServerMessage::Cleared(_)) => packed.clear(),
                _ => {}
            }
        }
        // Objects are not in the pixel snapshots: replay every object event
        // (read through their own index).
        let rows = conn
            .query(
                "SELECT seq, payload FROM events WHERE canvas_id = $1 AND kind IN (
                     'object_created', 'object_updated', 'object_moved',
                     'object_deleted', 'object_liked', 'cleared')
                 ORDER BY seq",
                &[&canvas.as_str()],
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut objects = Objects::default();
        for row in rows {
            let event_seq: i64 = row.get(0);
            let payload: Vec<u8> = row.get(1);
            match fanout::visible_event(&bytes::Bytes::from(payload), true) {
                Some(event) => objects.apply_event(&event),
                None => {
                    tracing::warn!(%canvas, seq = event_seq, "stored object event unreadable; skipped in rebuild")
                }
            }
        }
        Ok(Some(Restored {
            seq,
            packed,
            objects,
        }))
    }
}

impl History for PgHistory {
    fn load<'a>(&'a self, canvas: &'a CanvasId) -> HistoryFuture<'a, Option<Restored>> {
        Box::pin(self.load_inner(canvas))
    }

    fn last_seq<'a>(&'a self, canvas: &'a CanvasId) -> HistoryFuture<'a, u64> {
        Box::pin(self.last_seq_inner(canvas))
    }

    fn events<'a>(
        &'a self,
        canvas: &'a CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> HistoryFuture<'a, Vec<(u64, bytes::Bytes)>> {
        Box::pin(self.events_inner(canvas, after, until, limit))
    }

    fn chat_before<'a>(
        &'a self,
        canvas: &'a CanvasId,
        before: u64,
        limit: usize,
    ) -> HistoryFuture<'a, Vec<(u64, bytes::Bytes)>> {
        Box::pin(self.chat_before_inner(canvas, before, limit))
    }
}
