//! Gateway configuration. Each setting is declared once, as a field of
//! [`Config`]: its flag, its `EASEL_*` variable, its default and its help.
//! Validation (`settings.rs`) names a setting by its field, and the name in
//! an error (`EASEL_X (--x)`) and the README's table (`names.rs`) are
//! derived from the declaration, so the three cannot drift apart. A bad
//! value fails at start; nothing silently falls back.

mod names;
mod settings;
mod stores;
#[cfg(test)]
mod tests;

pub use names::table as settings_table;
pub use settings::{OriginPolicy, Settings};
pub use shared::config::ConfigError;
use shared::config::bad;
pub use stores::RedisSettings;

use clap::{Parser, Subcommand, ValueEnum};
use shared::auth::JwtAlgorithm;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    #[arg(long, env = "EASEL_ADMIN_LISTEN", default_value = "127.0.0.1:9810")]
    pub admin_listen: SocketAddr,

    /// This gateway's id in connection ids and logs (letters, digits,
    /// `_ - .`); none: the host name plus a random suffix.
    #[arg(long, env = "EASEL_NODE_ID")]
    pub node_id: Option<String>,

    /// Redis for the cluster bus and the canvas state (`redis://`, or
    /// `rediss://` for TLS): one server, or any node of a Redis Cluster
    /// (found at start); none: the gateway runs alone on an in-memory bus.
    #[arg(long, env = "EASEL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// For a `rediss://` URL: a PEM file of the CA certificates that sign
    /// Redis's certificate, trusted instead of the system's store.
    #[arg(long, env = "EASEL_REDIS_CA_FILE")]
    pub redis_ca_file: Option<std::path::PathBuf>,

    /// The persister's Postgres; with it, a canvas Redis has lost is rebuilt
    /// from its stored history before it is served again (needs
    /// EASEL_REDIS_URL), and canvases are kept in a catalogue.
    /// `?sslmode=require` for TLS (docs/OPERATIONS.md).
    #[arg(long, env = "EASEL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The Postgres schema Easel's tables live in (created, and an older
    /// Easel's tables moved there from `public`, at start).
    #[arg(long, env = "EASEL_DATABASE_SCHEMA", default_value = "easel")]
    pub database_schema: String,

    /// With a database: create unknown canvases on first use with the
    /// configured size and palette, instead of refusing them with E008 (always on
    /// with --dev).
    #[arg(long, env = "EASEL_AUTO_CREATE_CANVASES", default_value_t = false)]
    pub auto_create_canvases: bool,

    /// Canvases one user may create by using them (auto-creation), per
    /// gateway, as RATE/s:BURST; beyond it, using an unknown canvas is
    /// refused with E004 and retry_after_ms.
    #[arg(long, env = "EASEL_AUTO_CREATE_RATE", default_value = "0.2/s:20")]
    pub auto_create_rate: String,

    /// Connections in the Redis pool the canvas state and the bus share.
    #[arg(long, env = "EASEL_REDIS_POOL_SIZE", default_value_t = 16)]
    pub redis_pool_size: usize,

    /// JWT signature algorithm: HS256, RS256 or ES256. Tokens naming any other are rejected.
    #[arg(long, env = "EASEL_JWT_ALGORITHM", default_value = "HS256")]
    pub jwt_algorithm: JwtAlgorithm,

    /// HS256 shared secret, at least 32 bytes; required for HS256 (--dev
    /// generates one).
    #[arg(long, env = "EASEL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// RS256/ES256 public key file (PEM); required for those.
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

    /// Longest lifetime a token may have (`exp` minus `iat`, or minus now
    /// without `iat`), seconds; longer ones are refused with E002. 0: any.
    #[arg(long, env = "EASEL_JWT_MAX_LIFETIME_SECS", default_value_t = 0)]
    pub jwt_max_lifetime_secs: u64,

    /// Allowed browser origins, comma-separated (`https://host[:port]`), or
    /// `*` for any; none: no browser origin. Clients without an Origin
    /// header are not affected.
    #[arg(long, env = "EASEL_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Deadline for an HTTP request's headers (a WebSocket upgrade, REST,
    /// SSE), counted from the connection's start or, kept alive, from the
    /// previous response: a client that has not sent them all by then is
    /// disconnected.
    #[arg(long, env = "EASEL_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,

    /// Deadline for the token when it comes in a `handshake` message, ms.
    #[arg(long, env = "EASEL_HANDSHAKE_TIMEOUT_MS", default_value_t = 5000)]
    pub handshake_timeout_ms: u64,

    /// Largest WebSocket message (and frame) accepted, bytes.
    #[arg(long, env = "EASEL_MAX_MESSAGE_BYTES", default_value_t = 65536)]
    pub max_message_bytes: usize,

    /// Most simultaneous connections (WebSockets and SSE streams) on this
    /// node; more are refused with 503.
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

    /// Messages queued per connection before it is closed as a slow
    /// consumer (4008).
    #[arg(long, env = "EASEL_OUTBOUND_QUEUE", default_value_t = 256)]
    pub outbound_queue: usize,

    /// Payload bytes queued per connection (WebSocket or SSE stream) before
    /// it is closed as a slow consumer (4008), whatever it asked for; one
    /// frame is always admitted into an empty queue.
    #[arg(long, env = "EASEL_OUTBOUND_QUEUE_BYTES", default_value_t = 1 << 20)]
    pub outbound_queue_bytes: usize,

    /// Interval between server WebSocket pings, seconds.
    #[arg(long, env = "EASEL_PING_INTERVAL_SECS", default_value_t = 25)]
    pub ping_interval_secs: u64,

    /// Close a connection that sent nothing (not even a pong) for this long,
    /// seconds; must exceed the ping interval.
    #[arg(long, env = "EASEL_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// After SIGTERM: the longest the whole drain may take before the process
    /// exits, seconds; must exceed the drain delay plus the drain window.
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

    /// WebSocket read buffer per connection, bytes (allocated up front, grown
    /// to fit a larger message; also the most one socket read takes).
    #[arg(long, env = "EASEL_READ_BUFFER_BYTES", default_value_t = 512)]
    pub read_buffer_bytes: usize,

    /// Shortest time between two socket writes to one connection,
    /// microseconds (0 to 100000): frames that arrive sooner after a write
    /// wait for the rest of it and go out together in one write; a frame
    /// after a quiet spell goes out at once. 0: write whenever a frame is
    /// queued (frames queued meanwhile still share the write).
    #[arg(long, env = "EASEL_FLUSH_DELAY_US", default_value_t = 2000)]
    pub flush_delay_us: u64,

    /// How long an operation key is remembered, seconds: a durable command
    /// resent with the same key within this window is answered with the
    /// first one's ack and not applied again.
    #[arg(long, env = "EASEL_OP_KEY_WINDOW_SECS", default_value_t = 300)]
    pub op_key_window_secs: u64,

    /// Events kept per canvas log (Redis stream, or memory when standalone).
    #[arg(long, env = "EASEL_LOG_MAX_EVENTS", default_value_t = 100_000)]
    pub log_max_events: usize,

    /// With a persister: refuse durable writes on a canvas (E013) while this
    /// many of its events await the persister, and let the persister trim
    /// the log. 0: no persister; the log is trimmed to EASEL_LOG_MAX_EVENTS.
    #[arg(long, env = "EASEL_BACKLOG_LIMIT", default_value_t = 0)]
    pub backlog_limit: usize,

    /// Ack a durable write only once this many Redis replicas have it
    /// (Redis WAIT, within the 2 s Redis timeout; if fewer confirm in time
    /// the client gets E012 "may or may not have been applied" and resends
    /// with its operation key). 0: ack once the primary has it.
    #[arg(long, env = "EASEL_DURABLE_ACK_REPLICAS", default_value_t = 0)]
    pub durable_ack_replicas: usize,

    /// Most missed events replayed on resume; further behind, the client
    /// reloads the snapshot instead.
    #[arg(long, env = "EASEL_MAX_REPLAY_EVENTS", default_value_t = 10_000)]
    pub max_replay_events: usize,

    /// Default canvas width, pixels: of every canvas without a database, of
    /// auto-created ones and of `lobby` with one.
    #[arg(long, env = "EASEL_CANVAS_WIDTH", default_value_t = 1024)]
    pub canvas_width: u32,

    /// Default canvas height, pixels (as the width).
    #[arg(long, env = "EASEL_CANVAS_HEIGHT", default_value_t = 1024)]
    pub canvas_height: u32,

    /// Default palette entries; colours are indexes 0..palette_size.
    #[arg(long, env = "EASEL_PALETTE_SIZE", default_value_t = 32)]
    pub palette_size: u16,

    /// Development mode: without a configured secret, generate one and log a
    /// ready-to-use token (and answer GET /dev/token with more); allow any
    /// origin; drain at once.
    #[arg(long, env = "EASEL_DEV", default_value_t = false)]
    pub dev: bool,

    /// A directory of static files served at `/` on the public port (GET
    /// and HEAD; `index.html` for a directory), e.g. the demo app
    /// (clients/demo/dist). Unset: `/` answers 404.
    #[arg(long, env = "EASEL_STATIC_DIR")]
    pub static_dir: Option<std::path::PathBuf>,

    /// Log format, `plain` or `json` (logs go to stderr; EASEL_LOG filters
    /// them, e.g. `info,gateway=debug`).
    #[arg(long, env = "EASEL_LOG_FORMAT", default_value = "plain")]
    pub log_format: LogFormat,

    /// Per-connection token buckets, `CLASS=RATE/s:BURST` for pixels (one
    /// token per pixel), chat, cursors and objects; unnamed classes keep the
    /// default. Over them: E004 with retry_after_ms.
    #[arg(
        long,
        env = "EASEL_RATE_LIMITS",
        default_value = "pixels=1000/s:2000,chat=5/s:20,cursors=300/s:300"
    )]
    pub rate_limits: String,

    /// Per-user rate limits, shared by the user's connections across the
    /// cluster (each of the N gateways holding some allows 1/N); the same form.
    #[arg(
        long,
        env = "EASEL_USER_RATE_LIMITS",
        default_value = "pixels=2000/s:4000,chat=10/s:30,cursors=600/s:600"
    )]
    pub user_rate_limits: String,

    /// Refused operations within 10 s after which the connection is closed
    /// with 4029; 0: never.
    #[arg(long, env = "EASEL_RATE_ABUSE_LIMIT", default_value_t = 100)]
    pub rate_abuse_limit: u32,

    /// New connections (WebSockets and SSE streams) per client address,
    /// `RATE/s:BURST`, or `off`; over it: HTTP 429.
    #[arg(long, env = "EASEL_IP_CONNECT_RATE", default_value = "50/s:200")]
    pub ip_connect_rate: String,

    /// Proxies (addresses or CIDR blocks, comma-separated) whose
    /// X-Forwarded-For names the client, for the per-address limit and logs.
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

    /// `user_joined`/`user_left`, and the list in the join ack, only on
    /// canvases with at most this many connections (0: never); beyond,
    /// clients ask with `presence` (a mass join costs the square of it).
    #[arg(long, env = "EASEL_PRESENCE_EVENTS_MAX", default_value_t = 100)]
    pub presence_events_max: usize,

    /// Keys for the server API (comma-separated, each at least 32
    /// characters): notify a user, broadcast, canvas notices, and changing
    /// the catalogue; none: the server API answers 401.
    #[arg(
        long,
        env = "EASEL_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub api_keys: String,

    /// Role on a public canvas for tokens that name none (neither in
    /// `roles` for that canvas nor `role`): none, spectator, player or gm.
    /// Spectators may not draw; `none` admits only users whose token gives
    /// them a role.
    #[arg(long, env = "EASEL_DEFAULT_ROLE", default_value = "player")]
    pub default_role: String,

    /// Queue the events only gateways see (member_joined, member_left,
    /// canvas_occupied, canvas_vacated, refused) on Redis for the
    /// persister's webhook (EASEL_WEBHOOK_URL on the persister). Needs
    /// EASEL_REDIS_URL.
    #[arg(long, env = "EASEL_WEBHOOK_FEED", default_value_t = false)]
    pub webhook_feed: bool,

    /// The app backend's join hook, asked whether a user may see a canvas
    /// whose visibility is `hook` (an http:// URL). Unset: hook canvases
    /// admit only users whose token names them in `roles`.
    #[arg(long, env = "EASEL_JOIN_HOOK_URL")]
    pub join_hook_url: Option<String>,

    /// Sent to the join hook as `Authorization: Bearer <secret>`.
    #[arg(long, env = "EASEL_JOIN_HOOK_SECRET", hide_env_values = true)]
    pub join_hook_secret: Option<String>,

    /// How long the gateway waits for the join hook, in milliseconds,
    /// before refusing the join (E012).
    #[arg(long, env = "EASEL_JOIN_HOOK_TIMEOUT_MS", default_value_t = 2000)]
    pub join_hook_timeout_ms: u64,

    /// How long a join hook answer is reused for the same user and canvas,
    /// in seconds (0: ask every time).
    #[arg(long, env = "EASEL_JOIN_HOOK_CACHE_SECS", default_value_t = 10)]
    pub join_hook_cache_secs: u64,

    /// Most open connections (WebSockets and SSE streams) one user may hold
    /// across the cluster; the next WebSocket is closed with 4011 after
    /// authentication, the next stream refused with 429 E011.
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
    /// Print the settings as the Markdown table in the README.
    SettingsTable,
}
