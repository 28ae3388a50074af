//! Easel's PostgreSQL schema: migrations embedded in every binary that
//! needs the database (the persister, and gateways with a database), applied
//! at start.
//!
//! Each migration runs once, recorded in `schema_migrations`; one
//! transaction holding an advisory lock applies them, so processes that
//! start at the same time take turns.
//!
//! Every table lives in one schema (`easel` unless configured): the
//! migrations create it, and move the tables of a database that an older
//! Easel set up in `public` into it.

use tokio_postgres::{Client, Transaction};

mod db;
pub use db::{DEFAULT_SCHEMA, Database};

/// Every migration, in order. Never edit one that has shipped; add a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_events.sql")),
    (2, include_str!("migrations/0002_canvases.sql")),
    (3, include_str!("migrations/0003_chat_index.sql")),
    (4, include_str!("migrations/0004_canvas_title_deleted.sql")),
    (5, include_str!("migrations/0005_object_index.sql")),
    (6, include_str!("migrations/0006_diverged_events.sql")),
    (7, include_str!("migrations/0007_canvas_access.sql")),
    (8, include_str!("migrations/0008_webhook_outbox.sql")),
];

/// How many migrations there are (the version a migrated database is at).
pub fn migration_count() -> usize {
    MIGRATIONS.len()
}

/// An arbitrary constant identifying Easel's migration lock.
const LOCK_KEY: i64 = 0x000e_a5e1_0001;

/// Every table the migrations create, for moving them out of `public`.
const TABLES: &[&str] = &[
    "schema_migrations",
    "events",
    "canvases",
    "canvas_snapshots",
    "diverged_events",
    "canvas_members",
    "webhook_outbox",
];

/// Applies the migrations this database has not seen, in `schema`; returns
/// how many ran.
///
/// Everything runs in one transaction that first takes the advisory lock,
/// including creating `schema_migrations`: two processes migrating a fresh
/// database at once (a gateway and a persister starting together) would
/// otherwise race on `CREATE TABLE IF NOT EXISTS`, which PostgreSQL can fail
/// with a unique violation.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    enter_schema(&tx, schema).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let mut applied = 0;
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            applied += 1;
            tracing::info!(version, "applied migration");
        }
    }
    tx.commit().await?;
    Ok(applied)
}

/// Creates `schema` if it is missing (only then: creating needs a privilege
/// an existing schema's owner may lack), moves the tables of an Easel that
/// kept them in `public`, and makes it the transaction's search path.
async fn enter_schema(tx: &Transaction<'_>, schema: &str) -> Result<(), tokio_postgres::Error> {
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await?
        .is_some();
    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {quoted}")).await?;
    }
    if schema != "public" {
        let legacy = tx
            .query_one(
                "SELECT to_regclass('public.schema_migrations') IS NOT NULL
                    AND to_regclass(format('%I.schema_migrations', $1::text)) IS NULL",
                &[&schema],
            )
            .await?
            .get::<_, bool>(0);
        if legacy {
            for table in TABLES {
                tx.batch_execute(&format!(
                    "ALTER TABLE IF EXISTS public.{table} SET SCHEMA {quoted}"
                ))
                .await?;
            }
            tracing::info!(schema, "moved Easel's tables from public");
        }
    }
    tx.batch_execute(&format!("SET LOCAL search_path TO {quoted}"))
        .await
}
