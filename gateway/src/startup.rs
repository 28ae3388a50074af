//! Building the gateway's state from its settings: Redis (the bus and the
//! stores share one pool) or the in-memory versions, Postgres (the
//! catalogue and the history to rebuild from), the services and limits.

use crate::canvases::{self, CanvasDef, Catalogue};
use crate::config::Settings;
use crate::drain::Drain;
use crate::limits::{IpLimiter, Users};
use crate::metrics::Metrics;
use crate::online::Online;
use crate::presence::Presence;
use crate::state::AppState;
use fanout::{BusError, BusSettings, Fanout, Publisher};
use shared::auth::{AuthConfigError, TokenVerifier};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use store::{Log, LogSettings, OnlineRegistry, PresenceStore, RedisPool, StoreError};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the gateway could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("could not connect to redis at start")]
    Redis(#[from] StoreError),
    #[error("could not subscribe to redis at start")]
    Bus(#[from] BusError),
    #[error("JWT settings are unusable")]
    Auth(#[from] AuthConfigError),
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("postgres settings are unusable: {0}")]
    Database(String),
    #[error("metrics could not be registered")]
    Metrics(#[source] prometheus::Error),
}

/// The bus and the stores, on Redis or in memory.
struct Backends {
    bus: Arc<Fanout>,
    log: Log,
    presence: PresenceStore,
    online: OnlineRegistry,
    /// The Redis pool, when there is Redis.
    redis: Option<RedisPool>,
}

/// Connects everything and builds the state. The bus runs until
/// `bus_shutdown` is cancelled.
pub(crate) async fn build(
    settings: Settings,
    shutdown: CancellationToken,
    bus_shutdown: CancellationToken,
) -> Result<Arc<AppState>, GatewayError> {
    let database = match &settings.database {
        Some(db) => Some(connect_database(db).await?),
        None => None,
    };
    let history = database.clone().map(|pool| {
        tracing::info!("canvases lost by redis are rebuilt from postgres");
        Arc::new(crate::history::PgHistory::new(pool, settings.canvas)) as Arc<dyn store::History>
    });
    let backends = backends(&settings, history, bus_shutdown).await?;
    let members = crate::members::Members::new(database.clone());
    let canvases = catalogue(&settings, database).await?;
    let metrics = Metrics::new().map_err(GatewayError::Metrics)?;
    let hook = match &settings.join_hook {
        Some(hook) => Some(
            crate::hook::JoinHook::new(hook.clone(), metrics.registry())
                .map_err(GatewayError::Metrics)?,
        ),
        None => None,
    };
    metrics.backlog_limit.set(
        settings
            .redis
            .as_ref()
            .map_or(0, |r| r.backlog_limit as i64),
    );
    let node = settings.node_id.clone();
    let feed_pool = backends.redis.clone().filter(|_| settings.webhook_feed);
    let feed = Arc::new(
        crate::feed::Feed::new(feed_pool, metrics.registry(), shutdown.clone())
            .map_err(GatewayError::Metrics)?,
    );
    let presence = Presence::new(
        backends.presence,
        backends.bus.clone(),
        feed.clone(),
        node.clone(),
        (settings.presence_ttl, settings.presence_grace),
        settings.presence_events_max,
    );
    let online = Online::new(
        backends.online,
        backends.bus.clone(),
        node,
        settings.presence_ttl,
        settings.presence_grace,
    );
    Ok(Arc::new(AppState {
        users: Users::new(
            settings.user_rate_limits,
            settings.auto_create_rate,
            settings.max_connections_per_user,
        ),
        ip_limiter: settings.ip_connect_rate.map(IpLimiter::new),
        presence: Arc::new(presence),
        online: Arc::new(online),
        permits: Arc::new(Semaphore::new(settings.max_connections)),
        drain: Drain::new(settings.drain_window),
        verifier: TokenVerifier::new(&settings.auth)?,
        ws_config: ws_config(&settings),
        bus: backends.bus,
        log: backends.log,
        settings,
        canvases,
        members,
        hook,
        feed,
        tasks: TaskTracker::new(),
        shutdown,
        next_conn: AtomicU64::new(1),
        metrics,
    }))
}

/// Redis for the bus and every store, or all of them in memory.
async fn backends(
    settings: &Settings,
    history: Option<Arc<dyn store::History>>,
    bus_shutdown: CancellationToken,
) -> Result<Backends, GatewayError> {
    let node = &settings.node_id;
    let Some(redis) = &settings.redis else {
        let bus = Arc::new(Fanout::memory(node));
        let hub = bus.hub().clone();
        let deliver: store::Deliver =
            Arc::new(move |canvas, payload| hub.dispatch(canvas, payload));
        return Ok(Backends {
            bus,
            log: Log::memory(settings.log_max_events, deliver),
            presence: PresenceStore::memory(),
            online: OnlineRegistry::memory(),
            redis: None,
        });
    };
    let client = store::redis_client(&redis.url, redis.tls_ca.as_deref())
        .map_err(|e| GatewayError::Bus(BusError::Redis(e)))?;
    let connection = client.get_connection_info().clone();
    let ca = redis.tls_ca.as_deref();
    let pool = RedisPool::connect_with_ca(
        connection.clone(),
        ca,
        redis.pool_size,
        redis.publish_timeout,
    )
    .await?;
    // On a Redis Cluster the bus subscribes shard channels, which arrive
    // as RESP3 pushes.
    let (publisher, cluster) = match pool.connections() {
        store::Connections::Single(pool) => (Publisher::Single(pool.clone()), None),
        store::Connections::Cluster(conn) => {
            let client = store::cluster_builder(&connection, redis.subscribe_timeout, ca)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .build()
                .map_err(|e| GatewayError::Bus(BusError::Redis(e)))?;
            (Publisher::Cluster(conn.clone()), Some(client))
        }
    };
    let bus_settings = BusSettings {
        connection,
        publish_timeout: redis.publish_timeout,
        subscribe_timeout: redis.subscribe_timeout,
        health_interval: redis.health_interval,
        cluster,
    };
    let bus = Fanout::redis(node, &bus_settings, publisher, bus_shutdown).await?;
    let log_settings = LogSettings {
        log_max_events: redis.log_max_events,
        backlog_limit: redis.backlog_limit,
        ack_replicas: redis.ack_replicas,
    };
    Ok(Backends {
        bus: Arc::new(bus),
        log: Log::redis(pool.clone(), log_settings, history),
        presence: PresenceStore::redis(pool.clone()),
        online: OnlineRegistry::redis(pool.clone()),
        redis: Some(pool),
    })
}

/// A Postgres pool, with the schema migrated.
async fn connect_database(db: &schema::Database) -> Result<deadpool_postgres::Pool, GatewayError> {
    let manager = deadpool_postgres::Manager::from_config(
        db.config.clone(),
        db.tls.clone(),
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(4)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| GatewayError::Database(e.to_string()))?;
    let mut conn = pool
        .get()
        .await
        .map_err(|e| GatewayError::Database(format!("EASEL_DATABASE_URL (--database-url): {e}")))?;
    schema::migrate(&mut conn, &db.schema)
        .await
        .map_err(|e| GatewayError::Database(format!("migrations failed: {e}")))?;
    drop(conn);
    Ok(pool)
}

/// The catalogue: stored in Postgres (with the quickstart's `lobby`), or
/// implicit (every id a canvas of the configured size).
async fn catalogue(
    settings: &Settings,
    database: Option<deadpool_postgres::Pool>,
) -> Result<Catalogue, GatewayError> {
    let Some(pool) = database else {
        return Ok(Catalogue::implicit(settings.canvas));
    };
    let catalogue = Catalogue::stored(settings.canvas, pool, settings.auto_create_canvases);
    // A canvas to draw on out of the box (the quickstart's `lobby`).
    let lobby = CanvasDef {
        id: shared::CanvasId::new("lobby").map_err(|e| GatewayError::Database(e.to_string()))?,
        width: settings.canvas.width,
        height: settings.canvas.height,
        palette: canvases::default_palette(settings.canvas.palette_size),
        title: Some("Lobby".into()),
        visibility: canvases::Visibility::Public,
    };
    catalogue
        .create(lobby)
        .await
        .map_err(|e| GatewayError::Database(e.to_string()))?;
    Ok(catalogue)
}

/// WebSocket limits and buffer sizes for every connection.
fn ws_config(settings: &Settings) -> WebSocketConfig {
    let max_write = settings.max_message_bytes * 4 + 4096;
    WebSocketConfig::default()
        .read_buffer_size(settings.read_buffer_bytes)
        // The writer feeds everything queued, then flushes: one write per
        // batch (the buffer keeps the capacity the largest batch needed).
        .write_buffer_size(crate::ws::writer::WRITE_BUFFER_BYTES.min(max_write / 2))
        // Backpressure: the outbound queue is the bound, this only stops a
        // runaway buffer if writes keep failing. A larger frame than this
        // cannot be sent at all: reply pages stay under it
        // (`ops::history::page_bytes`, three times the message size).
        .max_write_buffer_size(max_write)
        .max_message_size(Some(settings.max_message_bytes))
        .max_frame_size(Some(settings.max_message_bytes))
}
