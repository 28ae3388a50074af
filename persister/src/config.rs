//! Persister configuration: flags with matching `EASEL_*` environment
//! variables, validated at start.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// Command-line flags and environment variables.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "persister",
    version,
    about = "Easel persister: canvas logs from Redis into Postgres"
)]
pub struct Config {
    /// Redis holding the canvas logs (`redis://`, or `rediss://` for TLS):
    /// one server, or any node of a Redis Cluster.
    #[arg(long, env = "EASEL_REDIS_URL", hide_env_values = true)]
    pub redis_url: String,

    /// For a `rediss://` URL: a PEM file of the CA certificates that sign
    /// Redis's certificate, trusted instead of the system's store.
    #[arg(long, env = "EASEL_REDIS_CA_FILE")]
    pub redis_ca_file: Option<std::path::PathBuf>,

    /// Postgres to write to, e.g. postgres://user@host:5432/easel
    /// (`?sslmode=require` for TLS).
    #[arg(long, env = "EASEL_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// The Postgres schema the tables live in.
    #[arg(long, env = "EASEL_DATABASE_SCHEMA", default_value = "easel")]
    pub database_schema: String,

    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "EASEL_ADMIN_LISTEN", default_value = "127.0.0.1:9811")]
    pub admin_listen: SocketAddr,

    /// This replica's consumer name in the Redis consumer groups; defaults to
    /// the host name plus a random suffix. Keep it stable across restarts of
    /// one replica so it picks up its own pending entries at once.
    #[arg(long, env = "EASEL_CONSUMER")]
    pub consumer: Option<String>,

    /// Most events read and committed in one batch.
    #[arg(long, env = "EASEL_BATCH_SIZE", default_value_t = 2000)]
    pub batch_size: usize,

    /// How long one blocking read waits for new events, ms.
    #[arg(long, env = "EASEL_BLOCK_MS", default_value_t = 500)]
    pub block_ms: u64,

    /// How often Redis is scanned for canvas logs this replica has not seen, ms.
    #[arg(long, env = "EASEL_DISCOVER_INTERVAL_MS", default_value_t = 1000)]
    pub discover_interval_ms: u64,

    /// Entries another replica read but did not acknowledge for this long are
    /// claimed (that replica is presumed dead), ms.
    #[arg(long, env = "EASEL_CLAIM_IDLE_MS", default_value_t = 30_000)]
    pub claim_idle_ms: u64,

    /// Persisted events kept in each Redis stream for fast resume.
    #[arg(long, env = "EASEL_KEEP_EVENTS", default_value_t = 10_000)]
    pub keep_events: u64,

    /// Take a canvas snapshot into Postgres every this many persisted events.
    #[arg(long, env = "EASEL_SNAPSHOT_EVERY", default_value_t = 10_000)]
    pub snapshot_every: u64,

    /// Evict a canvas from Redis once it has had no member and no new
    /// event, with everything persisted, for this long, seconds; gateways
    /// rebuild it from Postgres on its next use. 0: never.
    #[arg(long, env = "EASEL_EVICT_IDLE_SECS", default_value_t = 3600)]
    pub evict_idle_secs: u64,

    /// Connections in the Postgres pool.
    #[arg(long, env = "EASEL_DATABASE_POOL_SIZE", default_value_t = 4)]
    pub database_pool_size: usize,

    /// Log format: plain or json.
    #[arg(long, env = "EASEL_LOG_FORMAT", default_value = "plain")]
    pub log_format: String,

    #[command(flatten)]
    pub webhook: crate::webhooks::WebhookConfig,
}

pub use shared::config::ConfigError;
use shared::config::{bad, check_range as in_range};

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Redis, with its TLS settings.
    pub redis: redis::Client,
    /// The CA for TLS to Redis, if not the system's (a cluster's nodes
    /// are reached with it too).
    pub redis_ca: Option<Vec<u8>>,
    pub database: schema::Database,
    pub consumer: String,
    pub batch_size: usize,
    pub block: Duration,
    pub discover_interval: Duration,
    pub claim_idle: Duration,
    pub keep_events: u64,
    pub snapshot_every: u64,
    /// How long a canvas stays cold before eviction; `None`: never.
    pub evict_idle: Option<Duration>,
    pub database_pool_size: usize,
    /// The app's webhook, if any.
    pub webhook: Option<crate::webhooks::WebhookSettings>,
}

impl Config {
    /// Validates everything.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let ca = match &self.redis_ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                bad(
                    "EASEL_REDIS_CA_FILE (--redis-ca-file)",
                    format!("{}: {e}", path.display()),
                )
            })?),
        };
        let redis = store::redis_client(&self.redis_url, ca.as_deref())
            .map_err(|e| bad("EASEL_REDIS_URL (--redis-url)", e.to_string()))?;
        let database = schema::Database::parse(&self.database_url, &self.database_schema)
            .map_err(|e| bad("EASEL_DATABASE_URL (--database-url)", e))?;
        let consumer = match self.consumer {
            Some(c) if !c.is_empty() && c.len() <= 64 => c,
            Some(_) => {
                return Err(bad(
                    "EASEL_CONSUMER (--consumer)",
                    "must be 1-64 characters",
                ));
            }
            None => format!(
                "{}-{:06x}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "persister".into()),
                rand::random::<u32>() & 0xff_ffff
            ),
        };
        Ok(Settings {
            redis,
            redis_ca: ca,
            database,
            consumer,
            batch_size: in_range(
                "EASEL_BATCH_SIZE (--batch-size)",
                self.batch_size,
                1,
                100_000,
            )?,
            block: Duration::from_millis(in_range(
                "EASEL_BLOCK_MS (--block-ms)",
                self.block_ms,
                1,
                60_000,
            )?),
            discover_interval: Duration::from_millis(in_range(
                "EASEL_DISCOVER_INTERVAL_MS (--discover-interval-ms)",
                self.discover_interval_ms,
                10,
                3_600_000,
            )?),
            claim_idle: Duration::from_millis(in_range(
                "EASEL_CLAIM_IDLE_MS (--claim-idle-ms)",
                self.claim_idle_ms,
                100,
                86_400_000,
            )?),
            keep_events: in_range(
                "EASEL_KEEP_EVENTS (--keep-events)",
                self.keep_events,
                0,
                100_000_000,
            )?,
            snapshot_every: in_range(
                "EASEL_SNAPSHOT_EVERY (--snapshot-every)",
                self.snapshot_every,
                1,
                1_000_000_000,
            )?,
            evict_idle: match in_range(
                "EASEL_EVICT_IDLE_SECS (--evict-idle-secs)",
                self.evict_idle_secs,
                0,
                365 * 86_400,
            )? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            database_pool_size: in_range(
                "EASEL_DATABASE_POOL_SIZE (--database-pool-size)",
                self.database_pool_size,
                1,
                256,
            )?,
            webhook: self.webhook.into_settings()?,
        })
    }
}
