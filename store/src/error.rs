//! Why a store operation failed.

use std::time::Duration;

/// Why a store operation failed. On every error the operation changed
/// nothing, except those [`StoreError::outcome_unknown`] names: a write
/// that timed out or lost its connection mid-call (Redis may have run it,
/// or may still).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis is unavailable")]
    Redis(#[source] redis::RedisError),
    #[error("no redis connection could be taken from the pool")]
    Pool(#[source] deadpool_redis::PoolError),
    #[error("redis pool could not be created")]
    CreatePool(#[source] deadpool_redis::CreatePoolError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error(
        "{backlog} events are waiting to be persisted; durable writes are refused until the persister catches up"
    )]
    BacklogFull { backlog: u64 },
    #[error("the event could not be framed")]
    Frame(#[source] shared::busframe::BusFrameError),
    #[error("the canvas history could not be loaded for a rebuild: {0}")]
    History(String),
    #[error("presence details could not be encoded")]
    Presence(#[source] serde_json::Error),
    #[error("{0}")]
    Refused(crate::objects::Refusal),
    #[error("the write reached {confirmed} of the {needed} redis replicas an ack waits for")]
    NotReplicated { confirmed: usize, needed: usize },
}

impl StoreError {
    /// Whether a write that failed this way may have been applied: it timed
    /// out, or its connection broke after the call may have reached Redis.
    /// Every other error happened before Redis ran anything.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            StoreError::Timeout(_) | StoreError::NotReplicated { .. } => true,
            StoreError::Redis(err) => {
                err.is_io_error() || err.is_connection_dropped() || err.is_timeout()
            }
            _ => false,
        }
    }
}
