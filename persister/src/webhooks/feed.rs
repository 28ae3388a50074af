//! Takes the gateways' webhook feed (presence changes, refusals: a Redis
//! stream, `shared::keys::webhook_feed`) into the webhook outbox, through
//! a consumer group so replicas share it and an entry is queued once: an
//! entry is acknowledged only after its row is committed, the consumer's
//! own pending entries are read again after a restart, and a dead
//! replica's are claimed after [`CLAIM_IDLE`].

use super::WebhookSettings;
use ::store::managed::Managed as Redis;
use deadpool_postgres::Pool;
use redis::streams::{StreamId, StreamReadReply};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The consumer group of the persisters that send webhooks.
pub const FEED_GROUP: &str = "webhooks";

/// The kinds the gateways put on the feed.
pub const FEED_KINDS: [&str; 5] = [
    "member_joined",
    "member_left",
    "canvas_occupied",
    "canvas_vacated",
    "refused",
];

/// Entries another replica left unacknowledged this long are taken over.
const CLAIM_IDLE: Duration = Duration::from_secs(30);

/// Entries per read.
const COUNT: usize = 500;

/// A feed event for the outbox: canvas, kind and JSON.
type Row = (String, String, Vec<u8>);

/// One feed entry, ready for the outbox (`None`: not asked for).
struct Entry {
    id: String,
    row: Option<Row>,
}

fn parse(entry: &StreamId, wanted: &[String]) -> Entry {
    let json: Option<String> = entry.get("e");
    let row = json.and_then(|text| {
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        let kind = value["type"].as_str()?.to_owned();
        let canvas = value["canvas"].as_str().unwrap_or_default().to_owned();
        wanted
            .contains(&kind)
            .then(|| (canvas, kind, text.into_bytes()))
    });
    Entry {
        id: entry.id.clone(),
        row,
    }
}

/// See the module documentation.
pub struct FeedReader {
    pub redis: Redis,
    pub pool: Pool,
    pub consumer: String,
    pub settings: WebhookSettings,
}

impl FeedReader {
    /// Reads until `shutdown`, retrying failures with backoff.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff =
            shared::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        // Our own pending entries first (from before a restart), then new.
        let mut from = "0".to_owned();
        let mut claimed_at = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if claimed_at.elapsed() >= CLAIM_IDLE {
                claimed_at = tokio::time::Instant::now();
                from = "0".to_owned();
                if let Err(err) = self.claim().await {
                    tracing::warn!(error = %err, "webhook feed entries not claimed");
                }
            }
            let read = tokio::select! {
                _ = shutdown.cancelled() => return,
                read = self.round(&from) => read,
            };
            match read {
                Ok(0) if from == "0" => from = ">".to_owned(),
                Ok(_) => backoff.reset(),
                Err(err) => {
                    tracing::warn!(error = %err, "webhook feed not read; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }

    /// Takes over entries a dead replica left pending (they are read with
    /// our own pending ones next).
    async fn claim(&mut self) -> Result<(), String> {
        let _: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(shared::keys::webhook_feed())
            .arg(FEED_GROUP)
            .arg(&self.consumer)
            .arg(CLAIM_IDLE.as_millis() as u64)
            .arg("0")
            .arg("COUNT")
            .arg(COUNT)
            .arg("JUSTID")
            .query_async(&mut self.redis)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Reads one batch after `from` (`0`: pending, `>`: new), queues the
    /// wanted entries and acknowledges them all; how many were read.
    async fn round(&mut self, from: &str) -> Result<usize, String> {
        let key = shared::keys::webhook_feed();
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(FEED_GROUP).arg(&self.consumer);
        read.arg("COUNT").arg(COUNT);
        if from == ">" {
            read.arg("BLOCK").arg(500);
        }
        read.arg("STREAMS").arg(&key).arg(from);
        let reply: redis::RedisResult<Option<StreamReadReply>> =
            read.query_async(&mut self.redis).await;
        let reply = match reply {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.create_group().await?;
                return Ok(0);
            }
            other => other.map_err(|e| e.to_string())?,
        };
        let entries: Vec<Entry> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| parse(&e, &self.settings.events))
            .collect();
        if entries.is_empty() {
            return Ok(0);
        }
        self.queue(&entries).await?;
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: u64 = redis::cmd("XACK")
            .arg(&key)
            .arg(FEED_GROUP)
            .arg(&ids)
            .query_async(&mut self.redis)
            .await
            .map_err(|e| e.to_string())?;
        Ok(entries.len())
    }

    /// The group, reading the feed from its start.
    async fn create_group(&mut self) -> Result<(), String> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(shared::keys::webhook_feed())
            .arg(FEED_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.redis)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.to_string()),
            _ => Ok(()),
        }
    }

    /// Inserts the wanted entries into the outbox (once per entry id).
    async fn queue(&self, entries: &[Entry]) -> Result<(), String> {
        let rows: Vec<(String, &Row)> = entries
            .iter()
            .filter_map(|e| Some((format!("feed:{}", e.id), e.row.as_ref()?)))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        let canvases: Vec<&str> = rows.iter().map(|(_, r)| r.0.as_str()).collect();
        let kinds: Vec<&str> = rows.iter().map(|(_, r)| r.1.as_str()).collect();
        let payloads: Vec<&[u8]> = rows.iter().map(|(_, r)| r.2.as_slice()).collect();
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "INSERT INTO webhook_outbox (event_id, canvas_id, seq, kind, payload)
                 SELECT id, canvas, 0, kind, payload
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[])
                     AS t(id, canvas, kind, payload)
                 ON CONFLICT (event_id) DO NOTHING",
                &[&ids, &canvases, &kinds, &payloads],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
