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

/// Inserts a batch in one transaction with one statement; rows that already
/// exist (a replay after a crash) are skipped. Returns rows inserted.
pub async fn insert_events(pool: &Pool, rows: &[Row]) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut client = pool.get().await.map_err(StoreError::Pool)?;
    let tx = client.transaction().await.map_err(StoreError::Query)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (canvas_id, seq, epoch, kind, author_id, ingest_us, payload)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bytea[])
             ON CONFLICT (canvas_id, seq) DO NOTHING",
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
    let inserted = tx
        .execute(
            &stmt,
            &[&canvas, &seq, &epoch, &kind, &author, &ingest, &payload],
        )
        .await
        .map_err(StoreError::Query)?;
    tx.commit().await.map_err(StoreError::Query)?;
    Ok(inserted)
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
