//! Writing events and snapshots to Postgres.

use deadpool_postgres::Pool;

/// One event as stored.
#[derive(Debug, Clone)]
pub struct Row {
    pub canvas_id: String,
    pub seq: i64,
    pub epoch: String,
    pub kind: String,
    pub author_id: Option<String>,
    pub ingest_us: i64,
    pub payload: Vec<u8>,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no postgres connection")]
    Pool(#[source] deadpool_postgres::PoolError),
    #[error("postgres write failed")]
    Query(#[source] tokio_postgres::Error),
}

/// What committing a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Rows inserted into `events`.
    pub inserted: u64,
    /// Rows whose `(canvas, seq)` was stored with a different payload:
    /// kept in `diverged_events`, as `(canvas, seq)`, first seen now.
    pub diverged: Vec<(String, i64)>,
}

/// Inserts a batch in one transaction with one statement. A row already
/// stored with the same payload (a replay after a crash) is skipped; one
/// stored with a different payload is divergence, kept in
/// `diverged_events` and reported, never counted as a replay. Newly stored
/// events of the `hooked` kinds are queued for the webhook in the same
/// statement.
pub async fn insert_events(
    pool: &Pool,
    rows: &[Row],
    hooked: &[String],
) -> Result<Committed, StoreError> {
    if rows.is_empty() {
        return Ok(Committed::default());
    }
    let mut client = pool.get().await.map_err(StoreError::Pool)?;
    let tx = client.transaction().await.map_err(StoreError::Query)?;
    let stmt = tx
        // Every part sees the table as it was before the statement, so the
        // join finds exactly the rows that conflict.
        .prepare_cached(
            "WITH input AS (
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[],
                                      $5::text[], $6::bigint[], $7::bytea[])
                     AS t(canvas_id, seq, epoch, kind, author_id, ingest_us, payload)
             ), inserted AS (
                 INSERT INTO events (canvas_id, seq, epoch, kind, author_id, ingest_us, payload)
                 SELECT * FROM input
                 ON CONFLICT (canvas_id, seq) DO NOTHING
                 RETURNING canvas_id, seq, kind, payload
             ), hooked AS (
                 INSERT INTO webhook_outbox (event_id, canvas_id, seq, kind, payload)
                 SELECT canvas_id || ':' || seq, canvas_id, seq, kind, payload
                 FROM inserted WHERE kind = ANY($8::text[])
                 ON CONFLICT (event_id) DO NOTHING
                 RETURNING 1
             ), diverged AS (
                 INSERT INTO diverged_events
                     (canvas_id, seq, epoch, kind, author_id, ingest_us, payload, stored_epoch)
                 SELECT i.canvas_id, i.seq, i.epoch, i.kind, i.author_id, i.ingest_us,
                        i.payload, e.epoch
                 FROM input i JOIN events e ON e.canvas_id = i.canvas_id AND e.seq = i.seq
                 WHERE e.payload <> i.payload
                 ON CONFLICT DO NOTHING
                 RETURNING canvas_id, seq
             )
             SELECT (SELECT count(*) FROM inserted),
                    ARRAY(SELECT canvas_id FROM diverged ORDER BY canvas_id, seq),
                    ARRAY(SELECT seq FROM diverged ORDER BY canvas_id, seq)",
        )
        .await
        .map_err(StoreError::Query)?;
    let canvas: Vec<&str> = rows.iter().map(|r| r.canvas_id.as_str()).collect();
    let seq: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let epoch: Vec<&str> = rows.iter().map(|r| r.epoch.as_str()).collect();
    let kind: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let author: Vec<Option<&str>> = rows.iter().map(|r| r.author_id.as_deref()).collect();
    let ingest: Vec<i64> = rows.iter().map(|r| r.ingest_us).collect();
    let payload: Vec<&[u8]> = rows.iter().map(|r| r.payload.as_slice()).collect();
    let row = tx
        .query_one(
            &stmt,
            &[
                &canvas, &seq, &epoch, &kind, &author, &ingest, &payload, &hooked,
            ],
        )
        .await
        .map_err(StoreError::Query)?;
    tx.commit().await.map_err(StoreError::Query)?;
    let inserted: i64 = row.get(0);
    let canvases: Vec<String> = row.get(1);
    let seqs: Vec<i64> = row.get(2);
    Ok(Committed {
        inserted: u64::try_from(inserted).unwrap_or(0),
        diverged: canvases.into_iter().zip(seqs).collect(),
    })
}

/// Stores a canvas snapshot unless a newer one is already stored.
pub async fn upsert_snapshot(
    pool: &Pool,
    canvas_id: &str,
    seq: i64,
    epoch: &str,
    cells: &[u8],
) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(StoreError::Pool)?;
    client
        .execute(
            "INSERT INTO canvas_snapshots (canvas_id, seq, epoch, cells) VALUES ($1, $2, $3, $4)
             ON CONFLICT (canvas_id) DO UPDATE
               SET seq = EXCLUDED.seq, epoch = EXCLUDED.epoch, cells = EXCLUDED.cells, taken_at = now()
               WHERE canvas_snapshots.seq < EXCLUDED.seq",
            &[&canvas_id, &seq, &epoch, &cells],
        )
        .await
        .map_err(StoreError::Query)?;
    Ok(())
}
