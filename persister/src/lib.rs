//! The persister: consumes the canvas logs from Redis Streams and writes
//! them to Postgres exactly once, keeps periodic canvas snapshots, and
//! trims each stream only below what Postgres holds.
//!
//! `main.rs` parses flags and binds; [`run`] does the rest, so tests can run
//! it in-process or as the built binary (to kill it with SIGKILL).

mod config;
mod evict;
mod metrics;
mod store;
pub mod webhooks;
mod worker;

pub use config::{Config, ConfigError, Settings};
pub use metrics::Metrics;
pub use schema::migrate;
pub use worker::GROUP;

use ::store::managed::Managed as Redis;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use shared::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the persister could not run.
#[derive(Debug, thiserror::Error)]
pub enum PersisterError {
    #[error("redis is unusable")]
    Redis(#[from] redis::RedisError),
    #[error("the postgres pool could not be built")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("metrics could not be registered")]
    Metrics(#[from] prometheus::Error),
    #[error("the admin server failed")]
    Admin(#[source] std::io::Error),
}

struct AdminState {
    metrics: Metrics,
    pool: deadpool_postgres::Pool,
    redis: Redis,
    shutdown: CancellationToken,
}

/// Runs until `shutdown`: migrations (retried until Postgres answers), then
/// the worker; the admin server answers throughout.
pub async fn run(
    settings: Settings,
    admin: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), PersisterError> {
    let manager = deadpool_postgres::Manager::from_config(
        settings.database.config.clone(),
        settings.database.tls.clone(),
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(settings.database_pool_size)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()?;
    let ca = settings.redis_ca.as_deref();
    let ops = ::store::managed::connect(&settings.redis, ca, Duration::from_secs(5)).await?;
    let reader =
        ::store::managed::connect(&settings.redis, ca, settings.block + Duration::from_secs(5))
            .await?;
    let metrics = Metrics::new()?;

    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        pool: pool.clone(),
        redis: ops.clone(),
        shutdown: shutdown.clone(),
    });
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(admin_state);
    let admin_shutdown = shutdown.clone();
    let admin_task = tokio::spawn(async move {
        axum::serve(admin, app)
            .with_graceful_shutdown(admin_shutdown.cancelled_owned())
            .await
    });

    // Postgres may start after us: keep trying, with backoff.
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let attempt = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            migrate(&mut conn, &settings.database.schema)
                .await
                .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(applied) => {
                tracing::info!(applied, "schema up to date");
                break;
            }
            Err(err) => {
                metrics.errors.with_label_values(&["postgres"]).inc();
                tracing::warn!(error = %err, "postgres not ready for migrations; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    tracing::info!(consumer = %settings.consumer, "persister running");
    let evictor = settings.evict_idle.map(|idle| {
        let evictor = evict::Evictor::new(idle, ops.clone(), pool.clone(), metrics.clone());
        tokio::spawn(evictor.run(shutdown.clone()))
    });
    let sender = match settings.webhook.clone() {
        Some(webhook) => {
            Some(start_webhooks(&settings, webhook, &pool, &metrics, &shutdown).await?)
        }
        None => None,
    };
    worker::Worker::new(settings, pool, reader, ops, metrics)
        .run(shutdown)
        .await;
    if let Some((sender, feed)) = sender {
        let _ = sender.await;
        let _ = feed.await;
    }
    if let Some(evictor) = evictor {
        let _ = evictor.await;
    }
    match admin_task.await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(e)) => Err(PersisterError::Admin(e)),
    }
}

/// The webhook's sender and the reader of the gateways' feed.
async fn start_webhooks(
    settings: &Settings,
    webhook: webhooks::WebhookSettings,
    pool: &deadpool_postgres::Pool,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>), PersisterError> {
    let webhook_metrics = webhooks::WebhookMetrics::new(&metrics.registry)?;
    let sender = webhooks::Sender::new(webhook.clone(), pool.clone(), webhook_metrics);
    // Its own connection: its reads block.
    let ca = settings.redis_ca.as_deref();
    let redis = ::store::managed::connect(&settings.redis, ca, Duration::from_secs(6)).await?;
    let feed = webhooks::FeedReader {
        redis,
        pool: pool.clone(),
        consumer: settings.consumer.clone(),
        settings: webhook,
    };
    Ok((
        tokio::spawn(sender.run(shutdown.clone())),
        tokio::spawn(feed.run(shutdown.clone())),
    ))
}

async fn metrics_handler(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}

/// Ready when both Postgres and Redis answer and no shutdown has begun.
async fn readyz(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let pg = tokio::time::timeout(Duration::from_secs(2), async {
        let conn = state.pool.get().await.ok()?;
        conn.simple_query("SELECT 1").await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    if !pg {
        return (StatusCode::SERVICE_UNAVAILABLE, "postgres unreachable");
    }
    let mut redis = state.redis.clone();
    let ping: Result<Result<String, _>, _> = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PING").query_async(&mut redis),
    )
    .await;
    if !matches!(ping, Ok(Ok(_))) {
        return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable");
    }
    (StatusCode::OK, "ready")
}
