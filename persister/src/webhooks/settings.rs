//! The webhook's settings: where to send, how to sign, what and how much.

use shared::config::{ConfigError, bad, check_range};
use std::time::Duration;

/// The event kinds sent when `EASEL_WEBHOOK_EVENTS` is not set.
pub const DEFAULT_EVENTS: &str = "chat,object_created,object_updated,object_moved,object_deleted,\
     object_liked,cleared,member_joined,member_left,canvas_occupied,canvas_vacated,refused";

/// The event kinds a webhook may ask for: durable events from the canvas
/// logs, and those the gateways put on the feed (`EASEL_WEBHOOK_FEED`).
const KINDS: [&str; 15] = [
    "notice",
    "member_joined",
    "member_left",
    "canvas_occupied",
    "canvas_vacated",
    "refused",
    "draw",
    "chat",
    "object_created",
    "object_updated",
    "object_moved",
    "object_deleted",
    "object_liked",
    "cleared",
    "undecodable",
];

/// The webhook flags, part of the persister's [`crate::Config`].
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookConfig {
    /// The app's webhook: canvas events are POSTed here in signed batches
    /// (an http:// URL). Unset: no webhook.
    #[arg(long, env = "EASEL_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// The HMAC-SHA256 key that signs every request (X-Easel-Signature), at
    /// least 16 bytes; required with EASEL_WEBHOOK_URL.
    #[arg(long, env = "EASEL_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// The event kinds sent, comma-separated: chat, draw, notice (durable
    /// ones), object_created,
    /// object_updated, object_moved, object_deleted, object_liked, cleared,
    /// and from gateways with EASEL_WEBHOOK_FEED: member_joined,
    /// member_left, canvas_occupied, canvas_vacated, refused.
    #[arg(long, env = "EASEL_WEBHOOK_EVENTS", default_value = DEFAULT_EVENTS)]
    pub webhook_events: String,

    /// Most events in one request.
    #[arg(long, env = "EASEL_WEBHOOK_BATCH", default_value_t = 100)]
    pub webhook_batch: usize,

    /// How long one request may take before it counts as failed, in ms.
    #[arg(long, env = "EASEL_WEBHOOK_TIMEOUT_MS", default_value_t = 5000)]
    pub webhook_timeout_ms: u64,

    /// Most events waiting to be sent; beyond it the oldest are dropped
    /// (and counted), so a webhook that is down never grows Postgres
    /// without bound.
    #[arg(long, env = "EASEL_WEBHOOK_QUEUE_LIMIT", default_value_t = 100_000)]
    pub webhook_queue_limit: u64,
}

/// Validated webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: hyper::Uri,
    pub secret: Vec<u8>,
    pub events: Vec<String>,
    pub batch: usize,
    pub timeout: Duration,
    pub queue_limit: u64,
}

impl WebhookConfig {
    /// The settings, or `None` without a URL.
    pub fn into_settings(self) -> Result<Option<WebhookSettings>, ConfigError> {
        let Some(url) = self.webhook_url.filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let name = "EASEL_WEBHOOK_URL (--webhook-url)";
        let url: hyper::Uri = url
            .parse()
            .map_err(|e| bad(name, format!("{url:?}: {e}")))?;
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err(bad(
                name,
                "must be an http:// URL with a host (put TLS in a sidecar or proxy)",
            ));
        }
        let secret = self.webhook_secret.unwrap_or_default();
        if secret.len() < 16 {
            return Err(bad(
                "EASEL_WEBHOOK_SECRET (--webhook-secret)",
                "required with EASEL_WEBHOOK_URL, at least 16 bytes",
            ));
        }
        let events: Vec<String> = self
            .webhook_events
            .split(',')
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        if let Some(unknown) = events.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(bad(
                "EASEL_WEBHOOK_EVENTS (--webhook-events)",
                format!("{unknown:?} is not an event kind ({})", KINDS.join(", ")),
            ));
        }
        if events.is_empty() {
            return Err(bad(
                "EASEL_WEBHOOK_EVENTS (--webhook-events)",
                "name at least one kind",
            ));
        }
        let within = check_range::<u64>;
        Ok(Some(WebhookSettings {
            url,
            secret: secret.into_bytes(),
            events,
            batch: within(
                "EASEL_WEBHOOK_BATCH (--webhook-batch)",
                self.webhook_batch as u64,
                1,
                1000,
            )? as usize,
            timeout: Duration::from_millis(within(
                "EASEL_WEBHOOK_TIMEOUT_MS (--webhook-timeout-ms)",
                self.webhook_timeout_ms,
                100,
                120_000,
            )?),
            queue_limit: within(
                "EASEL_WEBHOOK_QUEUE_LIMIT (--webhook-queue-limit)",
                self.webhook_queue_limit,
                1,
                100_000_000,
            )?,
        }))
    }
}
