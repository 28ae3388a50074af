//! [`Config`] validated into [`Settings`]: one function per group of
//! settings, each naming a bad value's setting through [`Names`].

use super::names::Names;
use super::stores::RedisSettings;
use super::{Config, ConfigError};
use crate::limits::{ClassRates, OpClass, Rate, TrustedProxies};
use shared::auth::{AuthSettings, JwtAlgorithm, VerifyKey};
use shared::validate::CanvasGeometry;
use std::time::Duration;

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

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_id: String,
    pub redis: Option<RedisSettings>,
    pub database: Option<schema::Database>,
    /// Create unknown canvases on first use (always on in development mode).
    pub auto_create_canvases: bool,
    /// Canvases a user may create by use, per gateway.
    pub auto_create_rate: Rate,
    pub auth: AuthSettings,
    /// Set in development mode when the secret was generated, so the token can be logged.
    pub dev_secret: Option<Vec<u8>>,
    /// Static files served at `/`.
    pub static_dir: Option<std::path::PathBuf>,
    pub origins: OriginPolicy,
    pub handshake_timeout: Duration,
    /// Deadline for an HTTP request's headers.
    pub http_header_timeout: Duration,
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
    /// The app backend's join hook, for `hook` canvases.
    pub join_hook: Option<crate::hook::HookSettings>,
    /// Queue gateway-only events for the persister's webhook.
    pub webhook_feed: bool,
    pub presence_ttl: Duration,
    pub presence_grace: Duration,
    pub presence_sweep: Duration,
    pub presence_events_max: usize,
    /// Keys accepted by the server-side API.
    pub api_keys: Vec<String>,
    pub outbound_queue: usize,
    /// Payload bytes queued per connection before it is closed as slow.
    pub outbound_queue_bytes: usize,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Serving on after SIGTERM, while unready.
    pub drain_delay: Duration,
    /// Closes spread over this window after the delay.
    pub drain_window: Duration,
    pub read_buffer_bytes: usize,
    /// Shortest time between two writes to one connection.
    pub flush_delay: Duration,
    pub log_max_events: usize,
    /// How long an operation key is remembered.
    pub op_key_window: Duration,
    pub max_replay_events: usize,
    pub canvas: CanvasGeometry,
}

/// What [`Config::windows`] validates.
struct Windows {
    http_header_timeout: Duration,
    op_key_window: Duration,
    auto_create_rate: Rate,
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
        let n = Names::new();
        let (auth, dev_secret) = self.auth(&n)?;
        let (redis, database) = self.stores(&n)?;
        let timing = self.timing(&n)?;
        let rates = self.rates(&n)?;
        let (presence_ttl, presence_grace, presence_sweep) = self.presence(&n)?;
        let canvas = self.canvas(&n)?;
        let windows = self.windows(&n)?;
        Ok(Settings {
            node_id: self.node_id(&n)?,
            redis,
            database,
            auto_create_canvases: self.auto_create_canvases || self.dev,
            auto_create_rate: windows.auto_create_rate,
            auth,
            dev_secret,
            static_dir: self.static_dir(&n)?,
            origins: self.origins(&n)?,
            http_header_timeout: windows.http_header_timeout,
            handshake_timeout: Duration::from_millis(n.range(
                "handshake_timeout_ms",
                self.handshake_timeout_ms,
                100,
                60_000,
            )?),
            max_message_bytes: n.range(
                "max_message_bytes",
                self.max_message_bytes,
                1024,
                16 << 20,
            )?,
            max_connections: n.range("max_connections", self.max_connections, 1, 10_000_000)?,
            max_canvases_per_connection: n.range(
                "max_canvases_per_connection",
                self.max_canvases_per_connection,
                1,
                1024,
            )?,
            max_objects_per_canvas: n.range(
                "max_objects_per_canvas",
                self.max_objects_per_canvas,
                1,
                1_000_000,
            )?,
            max_pixels_per_draw: n.range(
                "max_pixels_per_draw",
                self.max_pixels_per_draw,
                1,
                10_000,
            )?,
            cursor_interval: match n.range("cursor_hz", self.cursor_hz, 0, 1000)? {
                0 => Duration::ZERO,
                hz => Duration::from_secs(1) / hz,
            },
            rate_limits: rates.0,
            user_rate_limits: rates.1,
            rate_abuse_limit: self.rate_abuse_limit,
            ip_connect_rate: rates.2,
            trusted_proxies: TrustedProxies::parse(&self.trusted_proxies)
                .map_err(|m| n.bad("trusted_proxies", m))?,
            max_connections_per_user: n.range(
                "max_connections_per_user",
                self.max_connections_per_user,
                1,
                1_000_000,
            )?,
            default_role: self
                .default_role
                .trim()
                .parse()
                .map_err(|m| n.bad("default_role", m))?,
            join_hook: self.join_hook(&n)?,
            webhook_feed: self.webhook_feed,
            presence_ttl,
            presence_grace,
            presence_sweep,
            presence_events_max: self.presence_events_max,
            api_keys: self.api_keys(&n)?,
            outbound_queue: n.range("outbound_queue", self.outbound_queue, 4, 65_536)?,
            outbound_queue_bytes: n.range(
                "outbound_queue_bytes",
                self.outbound_queue_bytes,
                64 << 10,
                1 << 30,
            )?,
            ping_interval: timing.ping_interval,
            idle_timeout: timing.idle_timeout,
            shutdown_grace: timing.shutdown_grace,
            drain_delay: timing.drain_delay,
            drain_window: timing.drain_window,
            read_buffer_bytes: n.range(
                "read_buffer_bytes",
                self.read_buffer_bytes,
                256,
                1 << 20,
            )?,
            flush_delay: Duration::from_micros(n.range(
                "flush_delay_us",
                self.flush_delay_us,
                0,
                100_000,
            )?),
            log_max_events: n.range("log_max_events", self.log_max_events, 100, 100_000_000)?,
            op_key_window: windows.op_key_window,
            max_replay_events: n.range(
                "max_replay_events",
                self.max_replay_events,
                1,
                1_000_000,
            )?,
            canvas,
        })
    }

    /// The header deadline, the operation key window and the auto-create
    /// rate.
    fn windows(&self, n: &Names) -> Result<Windows, ConfigError> {
        Ok(Windows {
            http_header_timeout: Duration::from_secs(n.range(
                "http_header_timeout_secs",
                self.http_header_timeout_secs,
                1,
                300,
            )?),
            op_key_window: Duration::from_secs(n.range(
                "op_key_window_secs",
                self.op_key_window_secs,
                1,
                86_400,
            )?),
            auto_create_rate: Rate::parse(&self.auto_create_rate)
                .map_err(|m| n.bad("auto_create_rate", m))?,
        })
    }

    /// The default canvas geometry.
    fn canvas(&self, n: &Names) -> Result<CanvasGeometry, ConfigError> {
        let canvas = CanvasGeometry {
            width: self.canvas_width,
            height: self.canvas_height,
            palette_size: self.palette_size,
        };
        canvas.check().map_err(|m| {
            let names = ["canvas_width", "canvas_height", "palette_size"].map(|id| n.of(id));
            super::bad(names.join(" / "), m)
        })?;
        Ok(canvas)
    }

    fn node_id(&self, n: &Names) -> Result<String, ConfigError> {
        match &self.node_id {
            Some(id) => {
                shared::CanvasId::new(id).map_err(|_| {
                    n.bad("node_id", format!("{id:?}: use 1-64 of A-Z a-z 0-9 _ - ."))
                })?;
                Ok(id.clone())
            }
            None => Ok(default_node_id()),
        }
    }

    /// The static files' directory, which must exist.
    fn static_dir(&self, n: &Names) -> Result<Option<std::path::PathBuf>, ConfigError> {
        match &self.static_dir {
            Some(dir) if !dir.is_dir() => Err(n.bad(
                "static_dir",
                format!("{} is not a directory", dir.display()),
            )),
            other => Ok(other.clone()),
        }
    }

    /// The JWT settings, and the generated secret in development mode.
    fn auth(&self, n: &Names) -> Result<(AuthSettings, Option<Vec<u8>>), ConfigError> {
        let mut dev_secret = None;
        let key = match self.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                if self.jwt_public_key_file.is_some() {
                    return Err(n.bad(
                        "jwt_public_key_file",
                        "HS256 uses EASEL_JWT_SECRET; set EASEL_JWT_ALGORITHM=RS256 or ES256 to use a public key",
                    ));
                }
                match &self.jwt_secret {
                    Some(s) => VerifyKey::Secret(s.clone().into_bytes()),
                    None if self.dev => {
                        let secret: [u8; 32] = rand::random();
                        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                        dev_secret = Some(hex.clone().into_bytes());
                        VerifyKey::Secret(hex.into_bytes())
                    }
                    None => {
                        return Err(n.bad(
                            "jwt_secret",
                            "required for HS256 (or run with --dev / EASEL_DEV=true to generate one)",
                        ));
                    }
                }
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
                let path = self
                    .jwt_public_key_file
                    .as_ref()
                    .ok_or_else(|| n.bad("jwt_public_key_file", "required for RS256/ES256"))?;
                let pem = std::fs::read(path).map_err(|e| {
                    n.bad("jwt_public_key_file", format!("{}: {e}", path.display()))
                })?;
                VerifyKey::PublicKeyPem(pem)
            }
        };
        let auth = AuthSettings {
            algorithm: self.jwt_algorithm,
            key,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway_secs: n.range("jwt_leeway_secs", self.jwt_leeway_secs, 0, 300)?,
            max_lifetime_secs: match self.jwt_max_lifetime_secs {
                0 => None,
                secs => Some(n.range("jwt_max_lifetime_secs", secs, 60, 10 * 365 * 86_400)?),
            },
        };
        // Build a verifier once now so a bad key fails at start, naming the setting.
        shared::auth::TokenVerifier::new(&auth).map_err(|e| {
            let setting = match self.jwt_algorithm {
                JwtAlgorithm::Hs256 => "jwt_secret",
                _ => "jwt_public_key_file",
            };
            n.bad(setting, e.to_string())
        })?;
        Ok((auth, dev_secret))
    }

    fn origins(&self, n: &Names) -> Result<OriginPolicy, ConfigError> {
        let given = &self.allowed_origins;
        if self.dev || given.iter().any(|o| o.trim() == "*") {
            return Ok(OriginPolicy::Any);
        }
        let list = given
            .iter()
            .filter(|o| !o.trim().is_empty())
            .map(|o| normalise_origin(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| n.bad("allowed_origins", m))?;
        Ok(OriginPolicy::List(list))
    }

    /// Pings, idle timeout and the drain, which must fit together.
    fn timing(&self, n: &Names) -> Result<Timing, ConfigError> {
        let ping_interval =
            Duration::from_secs(n.range("ping_interval_secs", self.ping_interval_secs, 1, 3600)?);
        let idle_timeout =
            Duration::from_secs(n.range("idle_timeout_secs", self.idle_timeout_secs, 2, 7200)?);
        if idle_timeout <= ping_interval {
            return Err(n.bad(
                "idle_timeout_secs",
                format!(
                    "must be longer than EASEL_PING_INTERVAL_SECS ({}s), or live clients are dropped between pings",
                    ping_interval.as_secs()
                ),
            ));
        }
        let shutdown_grace = Duration::from_secs(n.range(
            "shutdown_grace_secs",
            self.shutdown_grace_secs,
            1,
            3600,
        )?);
        let (default_delay, default_window) = if self.dev { (0, 0) } else { (5_000, 15_000) };
        let drain_delay = Duration::from_millis(n.range(
            "drain_delay_ms",
            self.drain_delay_ms.unwrap_or(default_delay),
            0,
            600_000,
        )?);
        let drain_window = Duration::from_millis(n.range(
            "drain_window_ms",
            self.drain_window_ms.unwrap_or(default_window),
            0,
            600_000,
        )?);
        if drain_delay + drain_window >= shutdown_grace {
            return Err(n.bad(
                "shutdown_grace_secs",
                format!(
                    "{} s leaves no time to flush after the drain delay ({} ms) and window ({} ms); \
                     raise it or shorten those",
                    shutdown_grace.as_secs(),
                    drain_delay.as_millis(),
                    drain_window.as_millis()
                ),
            ));
        }
        Ok(Timing {
            ping_interval,
            idle_timeout,
            shutdown_grace,
            drain_delay,
            drain_window,
        })
    }

    /// Per-connection and per-user buckets, and the per-address connect rate.
    fn rates(&self, n: &Names) -> Result<(ClassRates, ClassRates, Option<Rate>), ConfigError> {
        let conn = ClassRates::parse(&self.rate_limits, ClassRates::CONNECTION_DEFAULTS)
            .map_err(|m| n.bad("rate_limits", m))?;
        let user = ClassRates::parse(&self.user_rate_limits, ClassRates::USER_DEFAULTS)
            .map_err(|m| n.bad("user_rate_limits", m))?;
        for (id, rates) in [("rate_limits", &conn), ("user_rate_limits", &user)] {
            if rates.get(OpClass::Pixels).burst < self.max_pixels_per_draw as f64 {
                return Err(n.bad(
                    id,
                    format!(
                        "the pixels burst must be at least EASEL_MAX_PIXELS_PER_DRAW ({}), or the largest draw could never pass",
                        self.max_pixels_per_draw
                    ),
                ));
            }
        }
        let ip = match self.ip_connect_rate.trim() {
            "off" => None,
            r => Some(Rate::parse(r).map_err(|m| n.bad("ip_connect_rate", m))?),
        };
        Ok((conn, user, ip))
    }

    /// Presence TTL, grace and sweep interval.
    fn presence(&self, n: &Names) -> Result<(Duration, Duration, Duration), ConfigError> {
        let ttl = n.range("presence_ttl_secs", self.presence_ttl_secs, 2, 600)?;
        let grace = n.range("presence_grace_ms", self.presence_grace_ms, 0, 60_000)?;
        let sweep = n.range("presence_sweep_ms", self.presence_sweep_ms, 100, 60_000)?;
        Ok((
            Duration::from_secs(ttl),
            Duration::from_millis(grace),
            Duration::from_millis(sweep),
        ))
    }

    fn api_keys(&self, n: &Names) -> Result<Vec<String>, ConfigError> {
        let keys: Vec<String> = self
            .api_keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        if keys.iter().any(|k| k.len() < 32) {
            return Err(n.bad("api_keys", "every key must be at least 32 characters"));
        }
        Ok(keys)
    }
}

/// The validated timing settings.
struct Timing {
    ping_interval: Duration,
    idle_timeout: Duration,
    shutdown_grace: Duration,
    drain_delay: Duration,
    drain_window: Duration,
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
