//! Signed webhooks to the app's backend.
//!
//! The persister queues the events of the kinds asked for in
//! `webhook_outbox`, in the transaction that stores them (see
//! `store::insert_events`), so an event is queued once however often its
//! batch is replayed. The sender here takes the oldest due events (`FOR
//! UPDATE SKIP LOCKED`: replicas share the work, none sends an event
//! another is sending), POSTs them as one JSON batch signed with
//! HMAC-SHA256, and deletes them once the webhook answers 2xx. A failure
//! leaves them queued with a later due time (exponential backoff, at most
//! [`MAX_RETRY_DELAY`]): delivery is at least once, and `id` lets the
//! receiver drop a repeat. The queue is bounded: beyond the limit the
//! oldest are dropped and counted. None of this touches the real-time
//! path: gateways never wait for it.

mod feed;
mod settings;

pub use feed::{FEED_GROUP, FEED_KINDS, FeedReader};
pub use settings::{DEFAULT_EVENTS, WebhookConfig, WebhookSettings};

use bytes::Bytes;
use deadpool_postgres::Pool;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use shared::busframe;
use shared::codec::{self, Encoding};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often an idle sender looks for new events.
const POLL: Duration = Duration::from_millis(200);

/// The longest wait before an event is tried again.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How often the queue is trimmed to its limit.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// The webhook's metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    /// Events by outcome: delivered, dropped (the queue was full).
    pub events: IntCounterVec,
    /// Requests by outcome: ok, status, timeout, unreachable.
    pub requests: IntCounterVec,
    pub seconds: Histogram,
    /// Events waiting, at the last trim.
    pub queued: IntGauge,
}

impl WebhookMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = WebhookMetrics {
            events: IntCounterVec::new(
                Opts::new(
                    "easel_persister_webhook_events_total",
                    "Webhook events by outcome: delivered (a 2xx took them), dropped (the queue was over EASEL_WEBHOOK_QUEUE_LIMIT)",
                ),
                &["outcome"],
            )?,
            requests: IntCounterVec::new(
                Opts::new(
                    "easel_persister_webhook_requests_total",
                    "Webhook requests by outcome: ok, status (not 2xx), timeout, unreachable",
                ),
                &["outcome"],
            )?,
            seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "easel_persister_webhook_request_seconds",
                    "Webhook request round trips",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 14)?),
            )?,
            queued: IntGauge::new(
                "easel_persister_webhook_queued_events",
                "Events waiting for the webhook",
            )?,
        };
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.queued.clone()))?;
        for outcome in ["delivered", "dropped"] {
            m.events.with_label_values(&[outcome]);
        }
        for outcome in ["ok", "status", "timeout", "unreachable"] {
            m.requests.with_label_values(&[outcome]);
        }
        Ok(m)
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// One queued event.
struct Queued {
    id: i64,
    event_id: String,
    seq: i64,
    kind: String,
    payload: Vec<u8>,
    attempts: i32,
}

/// The event as the protocol's JSON (with its `seq`), or a stand-in for
/// one that cannot be read. A feed event is its JSON already.
fn event_json(q: &Queued) -> serde_json::Value {
    if FEED_KINDS.contains(&q.kind.as_str()) {
        return serde_json::from_slice(&q.payload)
            .unwrap_or_else(|_| serde_json::json!({"type": "undecodable"}));
    }
    let decoded = busframe::split(&Bytes::from(q.payload.clone()))
        .ok()
        .and_then(|parts| codec::decode_server(Encoding::Msgpack, &parts.event).ok());
    match decoded {
        Some(mut msg) => {
            msg.set_seq(u64::try_from(q.seq).unwrap_or(0));
            serde_json::to_value(&msg).unwrap_or(serde_json::Value::Null)
        }
        None => serde_json::json!({"type": "undecodable", "seq": q.seq}),
    }
}

/// Why a batch was not taken.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("the webhook answered {0}")]
    Status(u16),
    #[error("the webhook did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the webhook could not be reached: {0}")]
    Unreachable(String),
}

/// See the module documentation.
pub struct Sender {
    settings: WebhookSettings,
    pool: Pool,
    metrics: WebhookMetrics,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Sender {
    pub fn new(settings: WebhookSettings, pool: Pool, metrics: WebhookMetrics) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeout));
        Sender {
            client: Client::builder(TokioExecutor::new()).build(connector),
            settings,
            pool,
            metrics,
        }
    }

    /// Sends until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff =
            shared::backoff::Backoff::new(Duration::from_millis(200), MAX_RETRY_DELAY);
        let mut trimmed = Instant::now() - TRIM_EVERY;
        loop {
            if trimmed.elapsed() >= TRIM_EVERY {
                trimmed = Instant::now();
                if let Err(err) = self.trim().await {
                    tracing::warn!(error = %err, "webhook queue not trimmed");
                }
            }
            let pause = match self.round().await {
                Ok(0) => POLL,
                Ok(_) => {
                    backoff.reset();
                    continue;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "webhook batch not delivered; retrying");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Drops the oldest events beyond the queue limit; updates the gauge.
    async fn trim(&self) -> Result<(), Failure> {
        let pg = |e: tokio_postgres::Error| Failure::Postgres(e.to_string());
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| Failure::Postgres(e.to_string()))?;
        let limit = i64::try_from(self.settings.queue_limit).unwrap_or(i64::MAX);
        let dropped = client
            .execute(
                "DELETE FROM webhook_outbox WHERE id <= (
                     SELECT id FROM webhook_outbox ORDER BY id DESC OFFSET $1 LIMIT 1)",
                &[&limit],
            )
            .await
            .map_err(pg)?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                limit,
                "webhook queue full: dropped the oldest events"
            );
            self.metrics
                .events
                .with_label_values(&["dropped"])
                .inc_by(dropped);
        }
        let queued: i64 = client
            .query_one("SELECT count(*) FROM webhook_outbox", &[])
            .await
            .map_err(pg)?
            .get(0);
        self.metrics.queued.set(queued);
        Ok(())
    }

    /// Sends one batch of due events; how many the webhook took.
    async fn round(&self) -> Result<usize, Failure> {
        let pg = |e: tokio_postgres::Error| Failure::Postgres(e.to_string());
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| Failure::Postgres(e.to_string()))?;
        let tx = client.transaction().await.map_err(pg)?;
        let rows = tx
            .query(
                "SELECT id, event_id, seq, payload, attempts, kind FROM webhook_outbox
                 WHERE next_attempt_at <= now() ORDER BY id LIMIT $1
                 FOR UPDATE SKIP LOCKED",
                &[&(self.settings.batch as i64)],
            )
            .await
            .map_err(pg)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let queued: Vec<Queued> = rows
            .iter()
            .map(|r| Queued {
                id: r.get(0),
                event_id: r.get(1),
                seq: r.get(2),
                payload: r.get(3),
                attempts: r.get(4),
                kind: r.get(5),
            })
            .collect();
        let ids: Vec<i64> = queued.iter().map(|q| q.id).collect();
        let events: Vec<serde_json::Value> = queued
            .iter()
            .map(|q| serde_json::json!({"id": q.event_id, "event": event_json(q)}))
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "events": events }))
            .map_err(|e| Failure::Postgres(e.to_string()))?;
        match self.post(body).await {
            Ok(()) => {
                tx.execute("DELETE FROM webhook_outbox WHERE id = ANY($1)", &[&ids])
                    .await
                    .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
                self.metrics
                    .events
                    .with_label_values(&["delivered"])
                    .inc_by(ids.len() as u64);
                Ok(ids.len())
            }
            Err(failure) => {
                let attempts = queued.iter().map(|q| q.attempts).max().unwrap_or(0);
                let delay = retry_delay(attempts);
                tx.execute(
                    "UPDATE webhook_outbox SET attempts = attempts + 1,
                         next_attempt_at = now() + make_interval(secs => $2)
                     WHERE id = ANY($1)",
                    &[&ids, &delay.as_secs_f64()],
                )
                .await
                .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
                Err(failure)
            }
        }
    }

    /// POSTs a signed body; `Ok` on a 2xx answer.
    async fn post(&self, body: Vec<u8>) -> Result<(), Failure> {
        let timestamp = shared::now_ms() / 1000;
        let signed = signature(&self.settings.secret, timestamp, &body);
        let delivery = format!("{:016x}", rand::random::<u64>());
        let request = hyper::Request::post(self.settings.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "easel-persister")
            .header("x-easel-signature", signed)
            .header("x-easel-delivery", delivery)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let started = Instant::now();
        let timeout = self.settings.timeout;
        let answered = tokio::time::timeout(timeout, self.client.request(request)).await;
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = match answered {
            Err(_) => Err(Failure::Timeout(timeout)),
            Ok(Err(e)) => Err(Failure::Unreachable(e.to_string())),
            Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
            Ok(Ok(resp)) => Err(Failure::Status(resp.status().as_u16())),
        };
        let label = match &outcome {
            Ok(()) => "ok",
            Err(Failure::Status(_)) => "status",
            Err(Failure::Timeout(_)) => "timeout",
            Err(_) => "unreachable",
        };
        self.metrics.requests.with_label_values(&[label]).inc();
        outcome
    }
}

/// Half a second doubled per earlier attempt, at most [`MAX_RETRY_DELAY`].
fn retry_delay(attempts: i32) -> Duration {
    let doubled = Duration::from_millis(500).saturating_mul(1u32 << attempts.clamp(0, 16));
    doubled.min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_and_body() {
        // Computed apart: hmac.new(b"key", b"1.{}", hashlib.sha256) in Python.
        assert_eq!(
            signature(b"key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(signature(b"key", 1, b"{}"), signature(b"key", 2, b"{}"));
        assert_ne!(signature(b"key", 1, b"{}"), signature(b"kez", 1, b"{}"));
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        assert_eq!(retry_delay(0), Duration::from_millis(500));
        assert_eq!(retry_delay(3), Duration::from_secs(4));
        assert_eq!(retry_delay(30), MAX_RETRY_DELAY);
    }
}
