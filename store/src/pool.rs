//! The Redis connection pool every Redis store (and the bus's publisher)
//! shares, and the one place a Redis call gets its timeout.

use crate::StoreError;
use deadpool_redis::{Config as PoolConfig, Runtime, Timeouts};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A pooled Redis client whose every call is bounded by one timeout.
#[derive(Clone)]
pub struct RedisPool {
    /// The connections; cloning shares them.
    pool: deadpool_redis::Pool,
    /// The longest one call may take, taking a connection included.
    timeout: Duration,
}

impl RedisPool {
    /// A pool of `size` connections to `url`; fails at once, with a clear
    /// error, when Redis does not answer a PING.
    pub async fn connect(url: &str, size: usize, timeout: Duration) -> Result<Self, StoreError> {
        let mut cfg = PoolConfig::from_url(url);
        let mut pool_cfg = deadpool_redis::PoolConfig::new(size);
        pool_cfg.timeouts = Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        };
        cfg.pool = Some(pool_cfg);
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(StoreError::CreatePool)?;
        let redis = RedisPool { pool, timeout };
        let _: String = redis
            .with_conn(|c| Box::pin(async move { redis::cmd("PING").query_async(c).await }))
            .await?;
        Ok(redis)
    }

    /// The underlying pool, for the bus's publisher.
    pub fn pool(&self) -> &deadpool_redis::Pool {
        &self.pool
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs a Redis operation on a pooled connection within the timeout.
    pub(crate) async fn with_conn<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut deadpool_redis::Connection,
        )
            -> Pin<Box<dyn Future<Output = redis::RedisResult<T>> + Send + 'c>>,
    {
        let attempt = async {
            let mut conn = self.pool.get().await.map_err(StoreError::Pool)?;
            op(&mut conn).await.map_err(StoreError::Redis)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Runs a prepared script invocation.
    pub(crate) async fn invoke<T: redis::FromRedisValue + Send>(
        &self,
        call: redis::ScriptInvocation<'static>,
    ) -> Result<T, StoreError> {
        self.with_conn(|c| Box::pin(async move { call.invoke_async(c).await }))
            .await
    }
}
