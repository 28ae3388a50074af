//! The HTTP server: routes, shared state, and shutdown.
//!
//! Shutdown is a drain (see [`crate::drain`]): when the token is cancelled
//! the gateway turns unready, serves on for the drain delay, then stops
//! accepting and closes every connection with 1012 at a random moment in the
//! drain window (its queued frames flushed first), and `run` waits for the
//! connection tasks until the grace period, counted from the cancel, ends.

use crate::canvases::{CanvasDef, Catalogue};
use crate::config::Settings;
use crate::upgrade;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use fanout::{BusError, Fanout};
use shared::auth::{AuthConfigError, TokenVerifier};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the gateway could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("could not connect to redis at start")]
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

/// Everything a request or connection handler needs.
pub(crate) struct AppState {
    pub settings: Settings,
    pub fanout: Fanout,
    /// Canvas definitions (size, palette).
    pub canvases: Catalogue,
    pub verifier: TokenVerifier,
    /// One permit per allowed connection; a connection holds its permit until it ends.
    pub permits: Arc<Semaphore>,
    /// Connection tasks, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Cancelled when the drain begins: readiness fails at once.
    pub shutdown: CancellationToken,
    /// After the drain delay: connections close with 1012, spread out.
    pub drain: crate::drain::Drain,
    /// Source of per-node connection numbers.
    pub next_conn: AtomicU64,
    /// WebSocket limits and buffer sizes for every connection.
    pub ws_config: WebSocketConfig,
    /// Prometheus metrics, served at `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Users with connections here: shared rate limits and the connection cap.
    pub users: Arc<crate::limits::Users>,
    /// New connections per client IP, when limited.
    pub ip_limiter: Option<crate::limits::IpLimiter>,
    /// Who is on which canvas.
    pub presence: crate::presence::Presence,
    /// This gateway's connections in the cluster's online registry.
    pub online: crate::online::Online,
}

impl AppState {
    /// The bus header of an event this gateway publishes now for connection
    /// `conn` (0: from no connection, so no member is skipped as its sender).
    pub(crate) fn bus_header(&self, conn: u64) -> shared::busframe::BusHeader {
        shared::busframe::BusHeader {
            node: self.settings.node_id.clone(),
            conn,
            ingest_us: shared::now_us(),
            gm_only: false,
        }
    }
}

/// Runs the gateway until `shutdown` is cancelled: clients on `listener`,
/// and `/healthz`, `/readyz` and `/metrics` on `admin`, which keeps
/// answering (readiness 503) while the gateway drains.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    // The bus outlives the listener so that closing connections can still
    // leave their canvases cleanly; it stops after the connections.
    let bus_shutdown = CancellationToken::new();
    let mut fanout = match &settings.redis {
        Some(redis) => {
            Fanout::redis(&settings.node_id, redis.clone(), bus_shutdown.clone()).await?
        }
        None => Fanout::memory(&settings.node_id, settings.log_max_events),
    };
    let database = if let Some(db) = &settings.database {
        let manager = deadpool_postgres::Manager::from_config(
            db.clone(),
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(4)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| GatewayError::Database(e.to_string()))?;
        {
            let mut conn = pool.get().await.map_err(|e| {
                GatewayError::Database(format!("EASEL_DATABASE_URL (--database-url): {e}"))
            })?;
            schema::migrate(&mut conn)
                .await
                .map_err(|e| GatewayError::Database(format!("migrations failed: {e}")))?;
        }
        fanout = fanout.with_history(Arc::new(crate::history::PgHistory::new(
            pool.clone(),
            settings.canvas,
        )));
        tracing::info!("canvases lost by redis are rebuilt from postgres");
        Some(pool)
    } else {
        None
    };
    let canvases = match database {
        Some(pool) => {
            let catalogue = Catalogue::stored(settings.canvas, pool, settings.auto_create_canvases);
            // A canvas to draw on out of the box (the quickstart's `lobby`).
            let lobby = CanvasDef {
                id: shared::CanvasId::new("lobby")
                    .map_err(|e| GatewayError::Database(e.to_string()))?,
                width: settings.canvas.width,
                height: settings.canvas.height,
                palette: crate::canvases::default_palette(settings.canvas.palette_size),
                title: Some("Lobby".into()),
            };
            catalogue
                .create(lobby)
                .await
                .map_err(|e| GatewayError::Database(e.to_string()))?;
            catalogue
        }
        None => Catalogue::implicit(settings.canvas),
    };
    let verifier = TokenVerifier::new(&settings.auth)?;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(settings.read_buffer_bytes)
        // Frames are written as they are queued; batching happens in the
        // writer, which feeds everything queued and flushes once.
        .write_buffer_size(0)
        // Backpressure: the outbound queue is the bound, this only stops a
        // runaway buffer if writes keep failing.
        .max_write_buffer_size(settings.max_message_bytes * 4 + 4096)
        .max_message_size(Some(settings.max_message_bytes))
        .max_frame_size(Some(settings.max_message_bytes));

    let local = listener.local_addr().map_err(GatewayError::Serve)?;
    tracing::info!(
        node = %settings.node_id,
        bus = fanout.mode(),
        addr = %local,
        "gateway listening{}",
        if settings.redis.is_none() { " (standalone: in-memory bus, single node)" } else { "" }
    );
    if let crate::config::OriginPolicy::List(list) = &settings.origins
        && list.is_empty()
    {
        tracing::warn!(
            "EASEL_ALLOWED_ORIGINS is empty: browser connections (which send an Origin header) are refused"
        );
    }
    if let Some(secret) = &settings.dev_secret {
        let mut claims = shared::auth::MintClaims::for_user("dev", 86_400);
        // The developer owns the dev gateway: they may manage canvases.
        claims.admin = true;
        claims.name = Some("Developer".into());
        match shared::auth::mint_hs256(secret, &claims) {
            Ok(token) => tracing::warn!(
                "development mode: generated a JWT secret; connect with ws://{local}/ws?token={token} \
                 (mint more with: EASEL_JWT_SECRET={} gateway token --sub NAME)",
                String::from_utf8_lossy(secret)
            ),
            Err(err) => tracing::error!(error = %err, "could not mint the development token"),
        }
    }

    let metrics = crate::metrics::Metrics::new().map_err(GatewayError::Metrics)?;
    metrics.backlog_limit.set(
        settings
            .redis
            .as_ref()
            .map_or(0, |r| r.backlog_limit as i64),
    );
    let state = Arc::new(AppState {
        users: crate::limits::Users::new(
            settings.user_rate_limits,
            settings.max_connections_per_user,
        ),
        ip_limiter: settings.ip_connect_rate.map(crate::limits::IpLimiter::new),
        presence: crate::presence::Presence::new(
            settings.presence_ttl,
            settings.presence_grace,
            settings.presence_sweep,
            settings.presence_events_max,
        ),
        online: crate::online::Online::default(),
        permits: Arc::new(Semaphore::new(settings.max_connections)),
        drain: crate::drain::Drain::new(settings.drain_window),
        settings,
        fanout,
        canvases,
        verifier,
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        next_conn: AtomicU64::new(1),
        ws_config,
        metrics,
    });

    let presence_stop = CancellationToken::new();
    let presence_task = tokio::spawn(crate::presence::Presence::run(
        state.clone(),
        presence_stop.clone(),
    ));
    let admin_stop = CancellationToken::new();
    let admin_server = tokio::spawn(
        axum::serve(admin, admin_router(state.clone()))
            .with_graceful_shutdown(admin_stop.clone().cancelled_owned())
            .into_future(),
    );
    let app = router(state.clone());
    // Small frames must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    // SIGTERM (the token) starts the drain; the delay runs here, beside
    // the server, which keeps accepting until the drain begins.
    let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel();
    let drain_timer = tokio::spawn({
        let state = state.clone();
        async move {
            shutdown.cancelled().await;
            let settings = &state.settings;
            let _ = deadline_tx.send(tokio::time::Instant::now() + settings.shutdown_grace);
            tracing::info!(
                delay = ?settings.drain_delay,
                window = ?settings.drain_window,
                open = state.metrics.connections_open.get(),
                "draining: unready; serving on for the drain delay"
            );
            tokio::time::sleep(settings.drain_delay).await;
            tracing::info!("drain delay over: closing connections over the drain window");
            state.drain.begin();
        }
    });
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let state = state.clone();
        async move { state.drain.closing().await }
    })
    .await;

    // The listener is closed; each connection closes with 1012 at its turn.
    let grace_over = match &served {
        // The drain began, so the timer has set the deadline.
        Ok(()) => deadline_rx.await.ok(),
        // The server failed on its own: close everyone now.
        Err(_) => None,
    }
    .unwrap_or_else(|| tokio::time::Instant::now() + state.settings.shutdown_grace);
    drain_timer.abort();
    state.drain.begin();
    state.tasks.close();
    if tokio::time::timeout_at(grace_over, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = state.metrics.connections_open.get(),
            "grace period over; abandoning remaining connections"
        );
    }
    presence_stop.cancel();
    let _ = presence_task.await;
    bus_shutdown.cancel();
    admin_stop.cancel();
    let admin_served = match admin_server.await {
        Ok(r) => r,
        Err(join) => Err(std::io::Error::other(join)),
    };
    tracing::info!("gateway stopped");
    served.and(admin_served).map_err(GatewayError::Serve)
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ws", get(upgrade::websocket))
        .route(
            "/api/canvases",
            get(crate::api::list_canvases).post(crate::api::create_canvas),
        )
        .route(
            "/api/canvases/{id}",
            get(crate::api::get_canvas)
                .patch(crate::api::update_canvas)
                .delete(crate::api::delete_canvas),
        )
        .route("/api/canvases/{id}/snapshot", get(crate::api::snapshot))
        .route("/api/canvases/{id}/events", get(crate::api::events))
        .route("/api/canvases/{id}/presence", get(crate::api::presence))
        .route("/api/canvases/{id}/objects", get(crate::api::objects))
        .route(
            "/api/canvases/{id}/draw",
            axum::routing::post(crate::rest_ops::draw),
        )
        .route(
            "/api/canvases/{id}/cursor",
            axum::routing::post(crate::rest_ops::cursor),
        )
        .route(
            "/api/canvases/{id}/activity",
            get(crate::rest_ops::activity),
        )
        .route("/api/canvases/{id}/chat", get(crate::rest_ops::chat))
        .route("/sse/canvases/{id}", get(crate::sse::canvas_events))
        .route("/sse/notifications", get(crate::sse::notifications))
        .route("/sse/system", get(crate::sse::system))
        .route("/sse/online", get(crate::sse::online))
        .route("/api/users/online", get(crate::api::online))
        .route(
            "/api/server/canvases/{id}/notice",
            axum::routing::post(crate::server_api::notice),
        )
        .route(
            "/api/server/users/{id}/notify",
            axum::routing::post(crate::server_api::notify),
        )
        .route(
            "/api/server/broadcast",
            axum::routing::post(crate::server_api::broadcast),
        )
        .with_state(state)
}

/// The admin port: probes and metrics, apart from client traffic so they
/// can stay private and answer during a drain.
fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Prometheus text exposition.
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state
            .metrics
            .render(state.fanout.hub(), state.fanout.is_connected()),
    )
}

/// Liveness: the process serves HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: not shutting down, and the bus can deliver.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !state.fanout.is_connected() {
        (StatusCode::SERVICE_UNAVAILABLE, "bus disconnected")
    } else {
        (StatusCode::OK, "ready")
    }
}
