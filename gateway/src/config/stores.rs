//! Where the gateway's backing services are and how to reach them: Redis
//! (plain or TLS), Postgres (its URL, TLS and schema), the join hook.

use super::names::Names;
use super::{Config, ConfigError};
use std::time::Duration;

/// How to reach Redis and how patient to be with it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`, or `rediss://` for TLS.
    pub url: String,
    /// For `rediss://`: the PEM certificates to trust instead of the
    /// system's store.
    pub tls_ca: Option<Vec<u8>>,
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
    /// Replicas that must have a durable write before it is acked.
    pub ack_replicas: usize,
}

impl RedisSettings {
    /// Settings with the gateway's defaults.
    pub fn new(url: &str) -> Self {
        RedisSettings {
            url: url.to_owned(),
            tls_ca: None,
            pool_size: 16,
            publish_timeout: Duration::from_secs(2),
            subscribe_timeout: Duration::from_secs(5),
            health_interval: Duration::from_secs(5),
            log_max_events: 100_000,
            backlog_limit: 0,
            ack_replicas: 0,
        }
    }
}

impl Config {
    /// Redis and Postgres.
    pub(super) fn stores(
        &self,
        n: &Names,
    ) -> Result<(Option<RedisSettings>, Option<schema::Database>), ConfigError> {
        let redis = match &self.redis_url {
            None if self.redis_ca_file.is_some() => {
                return Err(n.bad("redis_ca_file", "a CA for Redis needs EASEL_REDIS_URL"));
            }
            None => None,
            Some(url) => {
                let tls_ca =
                    match &self.redis_ca_file {
                        None => None,
                        Some(path) => Some(std::fs::read(path).map_err(|e| {
                            n.bad("redis_ca_file", format!("{}: {e}", path.display()))
                        })?),
                    };
                store::redis_client(url, tls_ca.as_deref())
                    .map_err(|e| n.bad("redis_url", e.to_string()))?;
                let mut r = RedisSettings::new(url);
                r.tls_ca = tls_ca;
                r.log_max_events = self.log_max_events;
                r.backlog_limit = self.backlog_limit;
                r.ack_replicas =
                    n.range("durable_ack_replicas", self.durable_ack_replicas, 0, 16)?;
                r.pool_size = n.range("redis_pool_size", self.redis_pool_size, 1, 1024)?;
                Some(r)
            }
        };
        if redis.is_none() && self.durable_ack_replicas > 0 {
            return Err(n.bad(
                "durable_ack_replicas",
                "waiting for Redis replicas needs EASEL_REDIS_URL",
            ));
        }
        if redis.is_none() && self.webhook_feed {
            return Err(n.bad(
                "webhook_feed",
                "the webhook feed is a Redis stream: it needs EASEL_REDIS_URL",
            ));
        }
        let database = match &self.database_url {
            None => None,
            Some(_) if redis.is_none() => {
                return Err(n.bad(
                    "database_url",
                    "rebuilding from Postgres needs EASEL_REDIS_URL; standalone mode keeps canvases in memory",
                ));
            }
            Some(url) => Some(
                schema::Database::parse(url, &self.database_schema)
                    .map_err(|e| n.bad("database_url", e))?,
            ),
        };
        Ok((redis, database))
    }

    /// The join hook's settings, when a URL is set.
    pub(super) fn join_hook(
        &self,
        n: &Names,
    ) -> Result<Option<crate::hook::HookSettings>, ConfigError> {
        let Some(url) = &self.join_hook_url else {
            return Ok(None);
        };
        let url =
            crate::hook::HookSettings::parse_url(url).map_err(|m| n.bad("join_hook_url", m))?;
        let ms = n.range(
            "join_hook_timeout_ms",
            self.join_hook_timeout_ms,
            10,
            60_000,
        )?;
        let cache = n.range("join_hook_cache_secs", self.join_hook_cache_secs, 0, 3600)?;
        Ok(Some(crate::hook::HookSettings {
            url,
            secret: self.join_hook_secret.clone().filter(|s| !s.is_empty()),
            timeout: Duration::from_millis(ms),
            cache_ttl: Duration::from_secs(cache),
        }))
    }
}
