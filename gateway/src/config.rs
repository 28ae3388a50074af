//! Gateway configuration: flags with matching `EASEL_*` environment
//! variables, validated once at start into [`Settings`]. A bad value fails
//! with an error naming the setting; nothing silently falls back.

use clap::{Parser, Subcommand, ValueEnum};
use shared::auth::{AuthSettings, JwtAlgorithm, VerifyKey};
use shared::validate::CanvasGeometry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Command-line flags and environment variables.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about = "Easel WebSocket gateway")]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address for HTTP and WebSocket clients.
    #[arg(long, env = "EASEL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address for `/healthz`, `/readyz` and `/metrics` (keep it private:
    /// probes and Prometheus only).
    #[arg(long, env = "EASEL_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// This node's id (letters, digits, `_ - .`); defaults to the host name
    /// plus a random suffix.
    #[arg(long, env = "EASEL_NODE_ID")]
    pub node_id: Option<String>,

    /// Redis URL; without it the gateway runs standalone on the in-memory bus.
    #[arg(long, env = "EASEL_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Postgres the persister writes to; with it, a canvas Redis has lost is
    /// rebuilt from its stored history before it is served again.
    #[arg(long, env = "EASEL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// With a database: create unknown canvases on first use with the
    /// configured size and palette, instead of answering "not found".
    #[arg(long, env = "EASEL_AUTO_CREATE_CANVASES", default_value_t = false)]
    pub auto_create_canvases: bool,

    /// Connections in the Redis publish pool.
    #[arg(long, env = "EASEL_REDIS_POOL_SIZE", default_value_t = 16)]
    pub redis_pool_size: usize,

    /// JWT signature algorithm: HS256, RS256 or ES256. Tokens naming any other are rejected.
    #[arg(long, env = "EASEL_JWT_ALGORITHM", default_value = "HS256")]
    pub jwt_algorithm: JwtAlgorithm,

    /// HS256 shared secret (at least 32 bytes).
    #[arg(long, env = "EASEL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// RS256/ES256 public key file (PEM).
    #[arg(long, env = "EASEL_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// Required token issuer (`iss`).
    #[arg(long, env = "EASEL_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required token audience (`aud`).
    #[arg(long, env = "EASEL_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew allowed on `exp`/`nbf`, seconds.
    #[arg(long, env = "EASEL_JWT_LEEWAY_SECS", default_value_t = 5)]
    pub jwt_leeway_secs: u64,

    /// Allowed browser origins, comma-separated (`https://app.example.com`);
    /// `*` allows any. Requests without an Origin header (non-browser clients) are always allowed.
    #[arg(long, env = "EASEL_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Deadline for the token when it comes in a `handshake` message, ms.
    #[arg(long, env = "EASEL_HANDSHAKE_TIMEOUT_MS", default_value_t = 5000)]
    pub handshake_timeout_ms: u64,

    /// Largest WebSocket message (and frame) accepted, bytes.
    #[arg(long, env = "EASEL_MAX_MESSAGE_BYTES", default_value_t = 65536)]
    pub max_message_bytes: usize,

    /// Most simultaneous WebSocket connections on this node.
    #[arg(long, env = "EASEL_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Most canvases one connection may join.
    #[arg(long, env = "EASEL_MAX_CANVASES_PER_CONNECTION", default_value_t = 8)]
    pub max_canvases_per_connection: usize,

    /// Most objects (tiles, tokens, shapes, fog regions) on one canvas.
    #[arg(long, env = "EASEL_MAX_OBJECTS_PER_CANVAS", default_value_t = 10_000)]
    pub max_objects_per_canvas: usize,

    /// Most pixels in one `draw`.
    #[arg(long, env = "EASEL_MAX_PIXELS_PER_DRAW", default_value_t = 256)]
    pub max_pixels_per_draw: usize,

    /// Most cursor updates per second a connection publishes per canvas;
    /// faster ones are coalesced (the latest position wins and is always
    /// sent). 0 publishes every update.
    #[arg(long, env = "EASEL_CURSOR_HZ", default_value_t = 30)]
    pub cursor_hz: u32,

    /// Outbound queue length per connection, in messages; a client that lets it fill is disconnected (4008).
    #[arg(long, env = "EASEL_OUTBOUND_QUEUE", default_value_t = 256)]
    pub outbound_queue: usize,

    /// Interval between server WebSocket pings, seconds.
    #[arg(long, env = "EASEL_PING_INTERVAL_SECS", default_value_t = 25)]
    pub ping_interval_secs: u64,

    /// Close a connection that sent nothing (not even a pong) for this long, seconds.
    #[arg(long, env = "EASEL_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// After SIGTERM: the longest the whole drain may take before the process
    /// exits, seconds. Must exceed the drain delay plus the drain window.
    #[arg(long, env = "EASEL_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,

    /// After SIGTERM the gateway reports unready at once but keeps serving
    /// (new connections too) this long, so load balancers stop sending it
    /// clients first, milliseconds. Default 5000; 0 with --dev.
    #[arg(long, env = "EASEL_DRAIN_DELAY_MS")]
    pub drain_delay_ms: Option<u64>,

    /// Then connections are closed with 1012 at random moments spread over
    /// this window, so their reconnects do not arrive at once, milliseconds.
    /// Default 15000; 0 with --dev.
    #[arg(long, env = "EASEL_DRAIN_WINDOW_MS")]
    pub drain_window_ms: Option<u64>,

    /// WebSocket read buffer per connection, bytes (allocated up front; small keeps idle connections cheap).
    #[arg(long, env = "EASEL_READ_BUFFER_BYTES", default_value_t = 2048)]
    pub read_buffer_bytes: usize,

    /// Events kept per canvas log (Redis stream, or memory when standalone).
    #[arg(long, env = "EASEL_LOG_MAX_EVENTS", default_value_t = 100_000)]
    pub log_max_events: usize,

    /// With a persister: refuse durable writes on a canvas while this many of
    /// its events await the persister (and let the persister trim). 0: no
    /// persister; the log is trimmed to EASEL_LOG_MAX_EVENTS.
    #[arg(long, env = "EASEL_BACKLOG_LIMIT", default_value_t = 0)]
    pub backlog_limit: usize,

    /// Most events a resuming client is sent; further behind, it reloads the snapshot instead.
    #[arg(long, env = "EASEL_MAX_REPLAY_EVENTS", default_value_t = 10_000)]
    pub max_replay_events: usize,

    /// Width of every canvas, pixels (until canvases are stored with their own size).
    #[arg(long, env = "EASEL_CANVAS_WIDTH", default_value_t = 1024)]
    pub canvas_width: u32,

    /// Height of every canvas, pixels.
    #[arg(long, env = "EASEL_CANVAS_HEIGHT", default_value_t = 1024)]
    pub canvas_height: u32,

    /// Palette entries of every canvas; colours are indexes 0..palette_size.
    #[arg(long, env = "EASEL_PALETTE_SIZE", default_value_t = 32)]
    pub palette_size: u16,

    /// Development mode: without a configured secret, generate one and log a
    /// ready-to-use token; allow any origin.
    #[arg(long, env = "EASEL_DEV", default_value_t = false)]
    pub dev: bool,

    /// Log format.
    #[arg(long, env = "EASEL_LOG_FORMAT", default_value = "plain")]
    pub log_format: LogFormat,

    /// Per-connection rate limits, `CLASS=RATE/s:BURST` for pixels (one
    /// token per pixel), chat and cursors; unnamed classes keep the default.
    #[arg(
        long,
        env = "EASEL_RATE_LIMITS",
        default_value = "pixels=1000/s:2000,chat=5/s:20,cursors=300/s:300"
    )]
    pub rate_limits: String,

    /// Per-user rate limits on this gateway, shared by the user's
    /// connections to it; the same form.
    #[arg(
        long,
        env = "EASEL_USER_RATE_LIMITS",
        default_value = "pixels=2000/s:4000,chat=10/s:30,cursors=600/s:600"
    )]
    pub user_rate_limits: String,

    /// Refused operations within 10 s after which the connection is closed
    /// with 4029; 0 never closes.
    #[arg(long, env = "EASEL_RATE_ABUSE_LIMIT", default_value_t = 100)]
    pub rate_abuse_limit: u32,

    /// New connections per client IP, `RATE/s:BURST`, or `off`.
    #[arg(long, env = "EASEL_IP_CONNECT_RATE", default_value = "50/s:200")]
    pub ip_connect_rate: String,

    /// Proxies (addresses or CIDR blocks, comma-separated) whose
    /// X-Forwarded-For names the client, for the per-IP limit and logs.
    #[arg(long, env = "EASEL_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// A presence entry lives this long without its gateway refreshing it
    /// (a third of it): the longest a dead gateway's users stay listed,
    /// plus one sweep interval. Seconds.
    #[arg(long, env = "EASEL_PRESENCE_TTL_SECS", default_value_t = 30)]
    pub presence_ttl_secs: u64,

    /// After a user's last connection leaves a canvas, this long before
    /// `user_left`, so a quick reconnect is no leave/join pair. Milliseconds.
    #[arg(long, env = "EASEL_PRESENCE_GRACE_MS", default_value_t = 3000)]
    pub presence_grace_ms: u64,

    /// How often expired presence entries are swept and departures
    /// announced. Milliseconds.
    #[arg(long, env = "EASEL_PRESENCE_SWEEP_MS", default_value_t = 2000)]
    pub presence_sweep_ms: u64,

    /// `user_joined`/`user_left` are sent on canvases with at most this
    /// many connections (0: never); beyond, clients ask with `presence`.
    #[arg(long, env = "EASEL_PRESENCE_EVENTS_MAX", default_value_t = 100)]
    pub presence_events_max: usize,

    /// Keys for the server-side API (comma-separated, each at least 32
    /// characters); none: the server API answers 401.
    #[arg(
        long,
        env = "EASEL_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub api_keys: String,

    /// Role on a canvas for tokens that name none (neither in `roles` for
    /// that canvas nor `role`): spectator, player or gm.
    #[arg(long, env = "EASEL_DEFAULT_ROLE", default_value = "player")]
    pub default_role: String,

    /// Most connections one user may hold on this gateway; more are
    /// closed with 4011 after authentication.
    #[arg(long, env = "EASEL_MAX_CONNECTIONS_PER_USER", default_value_t = 16)]
    pub max_connections_per_user: usize,

    /// Async runtime worker threads; 0 for one per available core (which
    /// honours a cgroup CPU quota). Set it when several processes share
    /// the cores, e.g. two gateways and a load tester on one machine.
    #[arg(long, env = "EASEL_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Commands other than serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print an HS256 token signed with the configured secret (for development and tests).
    Token {
        /// The user id (`sub`).
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Display name (`name`).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
        /// Let the token create, change and delete canvases (`admin`).
        #[arg(long)]
        admin: bool,
    },
}

use crate::limits::{ClassRates, OpClass, Rate, TrustedProxies};
pub use shared::config::ConfigError;
use shared::config::{bad, check_range};

/// Which browser origins may open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any origin (configured as `*`, or development mode).
    Any,
    /// Exactly these normalised origins (`scheme://host[:port]`, lower case).
    List(Vec<String>),
}

impl OriginPolicy {
    /// Whether a request with this Origin header value may connect.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (OriginPolicy::Any, _) | (_, None) => true,
            (OriginPolicy::List(list), Some(o)) => {
                let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
                list.contains(&o)
            }
        }
    }
}

/// How to reach Redis and how patient to be with it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Connections in the pool the stores and the bus's publisher share.
    pub pool_size: usize,
    /// Timeout for one Redis call, including taking a pooled connection.
    pub publish_timeout: Duration,
    /// How long a join waits for its subscription to be confirmed.
    pub subscribe_timeout: Duration,
    /// How often the pub/sub connection is pinged to detect a dead server.
    pub health_interval: Duration,
    /// Events kept per canvas stream when no persister runs.
    pub log_max_events: usize,
    /// With a persister: refuse durable writes while this many events await
    /// it. 0: no persister, trim by length.
    pub backlog_limit: usize,
}

impl RedisSettings {
    /// Settings with the gateway's defaults.
    pub fn new(url: &str) -> Self {
        RedisSettings {
            url: url.to_owned(),
            pool_size: 16,
            publish_timeout: Duration::from_secs(2),
            subscribe_timeout: Duration::from_secs(5),
            health_interval: Duration::from_secs(5),
            log_max_events: 100_000,
            backlog_limit: 0,
        }
    }
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_id: String,
    pub redis: Option<RedisSettings>,
    pub database: Option<tokio_postgres::Config>,
    /// Create unknown canvases on first use (always on in development mode).
    pub auto_create_canvases: bool,
    pub auth: AuthSettings,
    /// Set in development mode when the secret was generated, so the token can be logged.
    pub dev_secret: Option<Vec<u8>>,
    pub origins: OriginPolicy,
    pub handshake_timeout: Duration,
    pub max_message_bytes: usize,
    pub max_connections: usize,
    pub max_canvases_per_connection: usize,
    pub max_objects_per_canvas: usize,
    pub max_pixels_per_draw: usize,
    /// Shortest interval between two published cursor updates of one
    /// connection on one canvas; zero: no coalescing.
    pub cursor_interval: Duration,
    /// Per-connection buckets by operation class.
    pub rate_limits: ClassRates,
    /// Per-user buckets (on this gateway) by operation class.
    pub user_rate_limits: ClassRates,
    /// Refusals in the abuse window before closing with 4029 (0: never).
    pub rate_abuse_limit: u32,
    /// New connections per client IP; `None`: unlimited.
    pub ip_connect_rate: Option<Rate>,
    pub trusted_proxies: TrustedProxies,
    pub max_connections_per_user: usize,
    /// Role for tokens that name none for a canvas.
    pub default_role: shared::auth::Role,
    pub presence_ttl: Duration,
    pub presence_grace: Duration,
    pub presence_sweep: Duration,
    pub presence_events_max: usize,
    /// Keys accepted by the server-side API.
    pub api_keys: Vec<String>,
    pub outbound_queue: usize,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Serving on after SIGTERM, while unready.
    pub drain_delay: Duration,
    /// Closes spread over this window after the delay.
    pub drain_window: Duration,
    pub read_buffer_bytes: usize,
    pub log_max_events: usize,
    pub max_replay_events: usize,
    pub canvas: CanvasGeometry,
}

fn normalise_origin(origin: &str) -> Result<String, String> {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = o
        .split_once("://")
        .ok_or_else(|| format!("{origin:?} is not scheme://host[:port]"))?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return Err(format!("{origin:?} is not http(s)://host[:port]"));
    }
    Ok(o)
}

impl Config {
    /// Validates everything and resolves keys and defaults.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let node_id = match self.node_id {
            Some(id) => {
                shared::CanvasId::new(&id).map_err(|_| {
                    bad(
                        "EASEL_NODE_ID (--node-id)",
                        format!("{id:?}: use 1-64 of A-Z a-z 0-9 _ - ."),
                    )
                })?;
                id
            }
            None => default_node_id(),
        };

        let redis = match self.redis_url {
            None => None,
            Some(url) => {
                redis::Client::open(url.as_str())
                    .map_err(|e| bad("EASEL_REDIS_URL (--redis-url)", e.to_string()))?;
                let mut r = RedisSettings::new(&url);
                r.log_max_events = self.log_max_events;
                r.backlog_limit = self.backlog_limit;
                r.pool_size = check_range(
                    "EASEL_REDIS_POOL_SIZE (--redis-pool-size)",
                    self.redis_pool_size,
                    1,
                    1024,
                )?;
                Some(r)
            }
        };

        let database = match &self.database_url {
            None => None,
            Some(_) if redis.is_none() => {
                return Err(bad(
                    "EASEL_DATABASE_URL (--database-url)",
                    "rebuilding from Postgres needs EASEL_REDIS_URL; standalone mode keeps canvases in memory",
                ));
            }
            Some(url) => Some(
                url.parse::<tokio_postgres::Config>()
                    .map_err(|e| bad("EASEL_DATABASE_URL (--database-url)", e.to_string()))?,
            ),
        };

        let mut dev_secret = None;
        let key = match self.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                if self.jwt_public_key_file.is_some() {
                    return Err(bad(
                        "EASEL_JWT_PUBLIC_KEY_FILE (--jwt-public-key-file)",
                        "HS256 uses EASEL_JWT_SECRET; set EASEL_JWT_ALGORITHM=RS256 or ES256 to use a public key",
                    ));
                }
                match self.jwt_secret {
                    Some(s) => VerifyKey::Secret(s.into_bytes()),
                    None if self.dev => {
                        let secret: [u8; 32] = rand::random();
                        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                        dev_secret = Some(hex.clone().into_bytes());
                        VerifyKey::Secret(hex.into_bytes())
                    }
                    None => {
                        return Err(bad(
                            "EASEL_JWT_SECRET (--jwt-secret)",
                            "required for HS256 (or run with --dev / EASEL_DEV=true to generate one)",
                        ));
                    }
                }
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
                let path = self.jwt_public_key_file.ok_or_else(|| {
                    bad(
                        "EASEL_JWT_PUBLIC_KEY_FILE (--jwt-public-key-file)",
                        "required for RS256/ES256",
                    )
                })?;
                let pem = std::fs::read(&path).map_err(|e| {
                    bad(
                        "EASEL_JWT_PUBLIC_KEY_FILE (--jwt-public-key-file)",
                        format!("{}: {e}", path.display()),
                    )
                })?;
                VerifyKey::PublicKeyPem(pem)
            }
        };
        let auth = AuthSettings {
            algorithm: self.jwt_algorithm,
            key,
            issuer: self.jwt_issuer,
            audience: self.jwt_audience,
            leeway_secs: check_range(
                "EASEL_JWT_LEEWAY_SECS (--jwt-leeway-secs)",
                self.jwt_leeway_secs,
                0,
                300,
            )?,
        };
        // Build a verifier once now so a bad key fails at start, naming the setting.
        shared::auth::TokenVerifier::new(&auth).map_err(|e| {
            let setting = match self.jwt_algorithm {
                JwtAlgorithm::Hs256 => "EASEL_JWT_SECRET (--jwt-secret)",
                _ => "EASEL_JWT_PUBLIC_KEY_FILE (--jwt-public-key-file)",
            };
            bad(setting, e.to_string())
        })?;

        let origins = if self.dev || self.allowed_origins.iter().any(|o| o.trim() == "*") {
            OriginPolicy::Any
        } else if self.allowed_origins.iter().all(|o| o.trim().is_empty()) {
            OriginPolicy::List(Vec::new())
        } else {
            let list = self
                .allowed_origins
                .iter()
                .filter(|o| !o.trim().is_empty())
                .map(|o| normalise_origin(o))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| bad("EASEL_ALLOWED_ORIGINS (--allowed-origins)", m))?;
            OriginPolicy::List(list)
        };

        let ping_interval = Duration::from_secs(check_range(
            "EASEL_PING_INTERVAL_SECS (--ping-interval-secs)",
            self.ping_interval_secs,
            1,
            3600,
        )?);
        let idle_timeout = Duration::from_secs(check_range(
            "EASEL_IDLE_TIMEOUT_SECS (--idle-timeout-secs)",
            self.idle_timeout_secs,
            2,
            7200,
        )?);
        if idle_timeout <= ping_interval {
            return Err(bad(
                "EASEL_IDLE_TIMEOUT_SECS (--idle-timeout-secs)",
                format!(
                    "must be longer than EASEL_PING_INTERVAL_SECS ({}s), or live clients are dropped between pings",
                    ping_interval.as_secs()
                ),
            ));
        }

        let canvas = CanvasGeometry {
            width: self.canvas_width,
            height: self.canvas_height,
            palette_size: self.palette_size,
        };
        canvas.check().map_err(|m| {
            bad(
                "EASEL_CANVAS_WIDTH/EASEL_CANVAS_HEIGHT/EASEL_PALETTE_SIZE",
                m,
            )
        })?;

        let shutdown_grace = Duration::from_secs(check_range(
            "EASEL_SHUTDOWN_GRACE_SECS (--shutdown-grace-secs)",
            self.shutdown_grace_secs,
            1,
            3600,
        )?);
        let (default_delay, default_window) = if self.dev { (0, 0) } else { (5_000, 15_000) };
        let drain_delay = Duration::from_millis(check_range(
            "EASEL_DRAIN_DELAY_MS (--drain-delay-ms)",
            self.drain_delay_ms.unwrap_or(default_delay),
            0,
            600_000,
        )?);
        let drain_window = Duration::from_millis(check_range(
            "EASEL_DRAIN_WINDOW_MS (--drain-window-ms)",
            self.drain_window_ms.unwrap_or(default_window),
            0,
            600_000,
        )?);
        if drain_delay + drain_window >= shutdown_grace {
            return Err(bad(
                "EASEL_SHUTDOWN_GRACE_SECS (--shutdown-grace-secs)",
                format!(
                    "{} s leaves no time to flush after the drain delay ({} ms) and window ({} ms); \
                     raise it or shorten those",
                    shutdown_grace.as_secs(),
                    drain_delay.as_millis(),
                    drain_window.as_millis()
                ),
            ));
        }

        let rate_limits = ClassRates::parse(&self.rate_limits, ClassRates::CONNECTION_DEFAULTS)
            .map_err(|m| bad("EASEL_RATE_LIMITS (--rate-limits)", m))?;
        let user_rate_limits = ClassRates::parse(&self.user_rate_limits, ClassRates::USER_DEFAULTS)
            .map_err(|m| bad("EASEL_USER_RATE_LIMITS (--user-rate-limits)", m))?;
        for (setting, rates) in [
            ("EASEL_RATE_LIMITS (--rate-limits)", &rate_limits),
            (
                "EASEL_USER_RATE_LIMITS (--user-rate-limits)",
                &user_rate_limits,
            ),
        ] {
            if rates.get(OpClass::Pixels).burst < self.max_pixels_per_draw as f64 {
                return Err(bad(
                    setting,
                    format!(
                        "the pixels burst must be at least EASEL_MAX_PIXELS_PER_DRAW ({}), or the largest draw could never pass",
                        self.max_pixels_per_draw
                    ),
                ));
            }
        }
        let ip_connect_rate = match self.ip_connect_rate.trim() {
            "off" => None,
            r => Some(
                Rate::parse(r).map_err(|m| bad("EASEL_IP_CONNECT_RATE (--ip-connect-rate)", m))?,
            ),
        };
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|m| bad("EASEL_TRUSTED_PROXIES (--trusted-proxies)", m))?;

        Ok(Settings {
            node_id,
            rate_limits,
            user_rate_limits,
            rate_abuse_limit: self.rate_abuse_limit,
            presence_events_max: self.presence_events_max,
            api_keys: {
                let keys: Vec<String> = self
                    .api_keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect();
                if keys.iter().any(|k| k.len() < 32) {
                    return Err(bad(
                        "EASEL_API_KEYS (--api-keys)",
                        "every key must be at least 32 characters",
                    ));
                }
                keys
            },
            presence_ttl: Duration::from_secs(check_range(
                "EASEL_PRESENCE_TTL_SECS (--presence-ttl-secs)",
                self.presence_ttl_secs,
                2,
                600,
            )?),
            presence_grace: Duration::from_millis(check_range(
                "EASEL_PRESENCE_GRACE_MS (--presence-grace-ms)",
                self.presence_grace_ms,
                0,
                60_000,
            )?),
            presence_sweep: Duration::from_millis(check_range(
                "EASEL_PRESENCE_SWEEP_MS (--presence-sweep-ms)",
                self.presence_sweep_ms,
                100,
                60_000,
            )?),
            default_role: self
                .default_role
                .trim()
                .parse()
                .map_err(|m| bad("EASEL_DEFAULT_ROLE (--default-role)", m))?,
            ip_connect_rate,
            trusted_proxies,
            max_connections_per_user: check_range(
                "EASEL_MAX_CONNECTIONS_PER_USER (--max-connections-per-user)",
                self.max_connections_per_user,
                1,
                1_000_000,
            )?,
            redis,
            database,
            auto_create_canvases: self.auto_create_canvases || self.dev,
            auth,
            dev_secret,
            origins,
            handshake_timeout: Duration::from_millis(check_range(
                "EASEL_HANDSHAKE_TIMEOUT_MS (--handshake-timeout-ms)",
                self.handshake_timeout_ms,
                100,
                60_000,
            )?),
            max_message_bytes: check_range(
                "EASEL_MAX_MESSAGE_BYTES (--max-message-bytes)",
                self.max_message_bytes,
                1024,
                16 << 20,
            )?,
            max_connections: check_range(
                "EASEL_MAX_CONNECTIONS (--max-connections)",
                self.max_connections,
                1,
                10_000_000,
            )?,
            max_canvases_per_connection: check_range(
                "EASEL_MAX_CANVASES_PER_CONNECTION (--max-canvases-per-connection)",
                self.max_canvases_per_connection,
                1,
                1024,
            )?,
            max_objects_per_canvas: check_range(
                "EASEL_MAX_OBJECTS_PER_CANVAS (--max-objects-per-canvas)",
                self.max_objects_per_canvas,
                1,
                1_000_000,
            )?,
            max_pixels_per_draw: check_range(
                "EASEL_MAX_PIXELS_PER_DRAW (--max-pixels-per-draw)",
                self.max_pixels_per_draw,
                1,
                10_000,
            )?,
            cursor_interval: match check_range(
                "EASEL_CURSOR_HZ (--cursor-hz)",
                self.cursor_hz,
                0,
                1000,
            )? {
                0 => Duration::ZERO,
                hz => Duration::from_secs(1) / hz,
            },
            outbound_queue: check_range(
                "EASEL_OUTBOUND_QUEUE (--outbound-queue)",
                self.outbound_queue,
                4,
                65_536,
            )?,
            ping_interval,
            idle_timeout,
            shutdown_grace,
            drain_delay,
            drain_window,
            read_buffer_bytes: check_range(
                "EASEL_READ_BUFFER_BYTES (--read-buffer-bytes)",
                self.read_buffer_bytes,
                256,
                1 << 20,
            )?,
            log_max_events: check_range(
                "EASEL_LOG_MAX_EVENTS (--log-max-events)",
                self.log_max_events,
                100,
                100_000_000,
            )?,
            max_replay_events: check_range(
                "EASEL_MAX_REPLAY_EVENTS (--max-replay-events)",
                self.max_replay_events,
                1,
                1_000_000,
            )?,
            canvas,
        })
    }
}

fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .take(48)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut all = vec!["gateway"];
        all.extend_from_slice(args);
        Config::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .into_settings()
            .map_err(|e| e.to_string())
    }

    const SECRET: &str = "--jwt-secret=0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_with_a_secret_are_valid_and_standalone() {
        let s = parse(&[SECRET]).expect("valid");
        assert!(s.redis.is_none());
        assert_eq!(s.max_message_bytes, 65536);
        assert_eq!(s.outbound_queue, 256);
        assert_eq!(s.handshake_timeout, Duration::from_secs(5));
        assert_eq!(s.ping_interval, Duration::from_secs(25));
        assert_eq!(s.origins, OriginPolicy::List(vec![]));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "EASEL_JWT_SECRET"),
            (&["--jwt-secret=short"], "EASEL_JWT_SECRET"),
            (
                &[SECRET, "--max-message-bytes=10"],
                "EASEL_MAX_MESSAGE_BYTES",
            ),
            (&[SECRET, "--outbound-queue=0"], "EASEL_OUTBOUND_QUEUE"),
            (&[SECRET, "--rate-limits=chat=5"], "EASEL_RATE_LIMITS"),
            (&[SECRET, "--default-role=admin"], "EASEL_DEFAULT_ROLE"),
            (
                &[SECRET, "--user-rate-limits=pixels=10/s:10"],
                "EASEL_USER_RATE_LIMITS",
            ),
            (&[SECRET, "--ip-connect-rate=fast"], "EASEL_IP_CONNECT_RATE"),
            (
                &[SECRET, "--trusted-proxies=10.0.0.0/40"],
                "EASEL_TRUSTED_PROXIES",
            ),
            (
                &[SECRET, "--max-connections-per-user=0"],
                "EASEL_MAX_CONNECTIONS_PER_USER",
            ),
            (
                &[SECRET, "--drain-window-ms=30000"],
                "EASEL_SHUTDOWN_GRACE_SECS",
            ),
            (&[SECRET, "--drain-delay-ms=700000"], "EASEL_DRAIN_DELAY_MS"),
            (
                &[SECRET, "--idle-timeout-secs=10", "--ping-interval-secs=20"],
                "EASEL_IDLE_TIMEOUT_SECS",
            ),
            (
                &[SECRET, "--allowed-origins=example.com"],
                "EASEL_ALLOWED_ORIGINS",
            ),
            (&[SECRET, "--redis-url=http://nope"], "EASEL_REDIS_URL"),
            (&[SECRET, "--node-id=bad id"], "EASEL_NODE_ID"),
            (&[SECRET, "--canvas-width=0"], "EASEL_CANVAS_WIDTH"),
            (&["--jwt-algorithm=RS256"], "EASEL_JWT_PUBLIC_KEY_FILE"),
            (
                &[
                    "--jwt-algorithm=RS256",
                    "--jwt-public-key-file=/nonexistent.pem",
                ],
                "EASEL_JWT_PUBLIC_KEY_FILE",
            ),
            (&[SECRET, "--max-connections=abc"], "--max-connections"),
            (&[SECRET, "--jwt-algorithm=none"], "--jwt-algorithm"),
        ];
        for (args, needle) in cases {
            let err = parse(args).expect_err(needle);
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn origins_are_normalised_and_matched_exactly() {
        let s = parse(&[
            SECRET,
            "--allowed-origins=https://App.example.com/,http://localhost:3000",
        ])
        .expect("valid");
        assert!(s.origins.allows(Some("https://app.example.com")));
        assert!(s.origins.allows(Some("http://localhost:3000")));
        assert!(s.origins.allows(None), "non-browser clients send no Origin");
        assert!(!s.origins.allows(Some("https://evil.example.com")));
        assert!(!s.origins.allows(Some("http://app.example.com")));
        assert!(!s.origins.allows(Some("null")));
        let any = parse(&[SECRET, "--allowed-origins=*"]).expect("valid");
        assert!(any.origins.allows(Some("https://whatever.example")));
    }

    #[test]
    fn dev_mode_generates_a_secret() {
        let s = parse(&["--dev"]).expect("valid");
        assert!(s.dev_secret.as_ref().is_some_and(|k| k.len() >= 32));
        assert_eq!(s.origins, OriginPolicy::Any);
    }
}
