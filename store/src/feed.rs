//! The webhook feed: events gateways queue for the persister's webhook
//! (presence changes, refusals), as entries of one Redis stream
//! (`shared::keys::webhook_feed`) with the event's JSON in field `e`,
//! capped at about [`FEED_MAX_ENTRIES`] so a feed nobody reads stays small.

use crate::error::StoreError;
use crate::pool::RedisPool;

/// Entries kept at most (approximately: `MAXLEN ~`).
pub const FEED_MAX_ENTRIES: usize = 100_000;

/// Appends events (JSON texts) to the feed in one round trip.
pub async fn append(pool: &RedisPool, events: &[String]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let key = shared::keys::webhook_feed();
    let mut pipe = redis::pipe();
    for event in events {
        pipe.cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(FEED_MAX_ENTRIES)
            .arg("*")
            .arg("e")
            .arg(event)
            .ignore();
    }
    pool.with_conn(|c| Box::pin(async move { pipe.query_async::<()>(c).await }))
        .await
}
