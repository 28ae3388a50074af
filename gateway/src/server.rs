//! The HTTP server: routes, the background housekeeping, and shutdown.
//!
//! Shutdown is a drain (see [`crate::drain`]): when the token is cancelled
//! the gateway turns unready, serves on for the drain delay, then stops
//! accepting and closes every connection with 1012 at a random moment in the
//! drain window (its queued frames flushed first), and `run` waits for the
//! connection tasks until the grace period, counted from the cancel, ends.

use crate::config::{OriginPolicy, Settings};
use crate::http::serve::serve;
use crate::startup::GatewayError;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
    let state = crate::startup::build(settings, shutdown.clone(), bus_shutdown.clone()).await?;
    let local = listener.local_addr().map_err(GatewayError::Serve)?;
    announce(&state, local);

    let housekeeping_stop = CancellationToken::new();
    let housekeeping = tokio::spawn(housekeeping(state.clone(), housekeeping_stop.clone()));
    let admin_stop = CancellationToken::new();
    let header_timeout = state.settings.http_header_timeout;
    let admin_server = tokio::spawn(serve(
        admin,
        admin_router(state.clone()),
        header_timeout,
        admin_stop.clone().cancelled_owned(),
    ));
    // SIGTERM (the token) starts the drain; the delay runs beside the
    // server, which keeps accepting until the drain begins.
    let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel();
    let drain_timer = tokio::spawn(drain_timer(state.clone(), shutdown, deadline_tx));
    let served = serve(listener, router(state.clone()), header_timeout, {
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
    .unwrap_or_else(|| Instant::now() + state.settings.shutdown_grace);
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
    housekeeping_stop.cancel();
    let _ = housekeeping.await;
    bus_shutdown.cancel();
    admin_stop.cancel();
    let admin_served = match admin_server.await {
        Ok(r) => r,
        Err(join) => Err(std::io::Error::other(join)),
    };
    tracing::info!("gateway stopped");
    served.and(admin_served).map_err(GatewayError::Serve)
}

/// Logs what a newcomer needs: where it listens, and in development mode
/// a token to connect with.
fn announce(state: &AppState, local: SocketAddr) {
    let settings = &state.settings;
    tracing::info!(
        node = %settings.node_id,
        bus = state.bus.mode(),
        addr = %local,
        "gateway listening{}",
        if settings.redis.is_none() { " (standalone: in-memory bus, single node)" } else { "" }
    );
    if let OriginPolicy::List(list) = &settings.origins
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
}

/// After `shutdown`: records the grace deadline, serves on for the drain
/// delay, then begins closing connections.
async fn drain_timer(
    state: Arc<AppState>,
    shutdown: CancellationToken,
    deadline: tokio::sync::oneshot::Sender<Instant>,
) {
    shutdown.cancelled().await;
    let settings = &state.settings;
    let _ = deadline.send(Instant::now() + settings.shutdown_grace);
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

/// Keeps this gateway's presence and online entries alive and sweeps
/// departures, until `stop`.
async fn housekeeping(state: Arc<AppState>, stop: CancellationToken) {
    let settings = &state.settings;
    let mut refresh = tokio::time::interval(settings.presence_ttl / 3);
    let mut sweep = tokio::time::interval(settings.presence_sweep);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A round in progress is abandoned at the stop: with Redis
        // unreachable each canvas's call waits out its timeout, and a
        // sweep over a thousand canvases would hold the exit for minutes.
        // (What it did not get to, the next gateway's sweep does.)
        let round = async {
            tokio::select! {
                _ = refresh.tick() => {
                    state.presence.refresh().await;
                    state.online.refresh().await;
                }
                _ = sweep.tick() => {
                    state.presence.sweep().await;
                    state.online.sweep().await;
                }
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            () = round => {}
        }
    }
}

/// The public routes (see [`crate::routes`]).
fn router(state: Arc<AppState>) -> Router {
    use crate::routes::{Audience, ROUTES};
    let mut browser = Router::new();
    let mut router = Router::new();
    let dev = state.settings.dev_secret.is_some();
    for r in ROUTES {
        match r.audience {
            Audience::Browser => browser = browser.route(r.path, (r.handler)()),
            Audience::Direct => router = router.route(r.path, (r.handler)()),
            Audience::Dev if dev => router = router.route(r.path, (r.handler)()),
            Audience::Dev => {}
        }
    }
    // What browsers may call from other origins (see http/cors.rs).
    let browser = browser.layer(crate::http::cors::layer(&state.settings.origins));
    let router = router.merge(browser);
    let router = match &state.settings.static_dir {
        Some(dir) => router.fallback_service(
            tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
        ),
        None => router,
    };
    router.with_state(state)
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
            .render(state.bus.hub(), state.bus.is_connected()),
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
    } else if !state.bus.is_connected() {
        (StatusCode::SERVICE_UNAVAILABLE, "bus disconnected")
    } else {
        (StatusCode::OK, "ready")
    }
}
