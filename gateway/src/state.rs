//! The gateway's shared state: settings, the bus, the stores and the
//! services, built once at start and shared by every connection and
//! request. It sits at the bottom: it imports services, never handlers,
//! and no service takes it back as an argument.

use crate::canvases::Catalogue;
use crate::config::Settings;
use crate::drain::Drain;
use crate::hook::JoinHook;
use crate::limits::{IpLimiter, Users};
use crate::members::Members;
use crate::metrics::Metrics;
use crate::online::Online;
use crate::presence::Presence;
use fanout::Fanout;
use shared::auth::TokenVerifier;
use shared::busframe::BusHeader;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::Log;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a request or connection handler needs.
pub(crate) struct AppState {
    pub settings: Settings,
    /// The local hub and the bus between gateways.
    pub bus: Arc<Fanout>,
    /// The durable canvas log and canvas state.
    pub log: Log,
    /// Canvas definitions (size, palette, visibility).
    pub canvases: Catalogue,
    /// Who is a member of which `members` canvas.
    pub members: Members,
    /// The app backend's join hook, for `hook` canvases.
    pub hook: Option<JoinHook>,
    /// Events queued for the persister's webhook.
    pub feed: Arc<crate::feed::Feed>,
    pub verifier: TokenVerifier,
    /// One permit per allowed connection (WebSocket or SSE stream); a
    /// connection holds its permit until it ends.
    pub permits: Arc<Semaphore>,
    /// Connection tasks, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Cancelled when the drain begins: readiness fails at once.
    pub shutdown: CancellationToken,
    /// After the drain delay: connections close with 1012, spread out.
    pub drain: Drain,
    /// Source of per-node connection numbers.
    pub next_conn: AtomicU64,
    /// WebSocket limits and buffer sizes for every connection.
    pub ws_config: WebSocketConfig,
    /// Prometheus metrics, served at `/metrics`.
    pub metrics: Metrics,
    /// Users with connections here: shared rate limits and the connection cap.
    pub users: Arc<Users>,
    /// New connections per client IP, when limited.
    pub ip_limiter: Option<IpLimiter>,
    /// Who is on which canvas.
    pub presence: Arc<Presence>,
    /// This gateway's connections in the cluster's online registry.
    pub online: Arc<Online>,
}

impl AppState {
    /// The bus header of an event this gateway publishes now for connection
    /// `conn` (0: from no connection, so no member is skipped as its sender).
    pub fn bus_header(&self, conn: u64) -> BusHeader {
        BusHeader::now(&self.settings.node_id, conn)
    }

    /// A new connection number on this node.
    pub fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}
