//! The Redis connection pool every Redis store (and the bus's publisher)
//! shares, and the one place a Redis call gets its timeout.

use crate::StoreError;
use crate::conn::RedisConn;
use deadpool_redis::{Hook, HookError, Manager, Runtime, Timeouts};
use parking_lot::Mutex;
use redis::IntoConnectionInfo;
use redis::cluster_async::ClusterConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which Redis server process the pool's connections reach: its `run_id`
/// (new at every start, and on another server after a failover) and how
/// many times it changed.
#[derive(Default)]
struct ServerIdentity {
    run_id: Mutex<String>,
    generation: AtomicU64,
}

impl ServerIdentity {
    /// Records the run id a new connection reached.
    fn reached(&self, run_id: &str) {
        let mut current = self.run_id.lock();
        if *current != run_id {
            if !current.is_empty() {
                tracing::warn!(
                    previous = %current, now = %run_id,
                    "redis is another server process now (restarted or failed over): canvases are checked against postgres before their next write"
                );
            }
            *current = run_id.to_owned();
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The `run_id` line of `INFO server`.
fn run_id(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(str::trim)
}

/// How the pool reaches Redis: a pool of connections to one server, or
/// one multiplexed connection to a Redis Cluster that routes each call to
/// the master serving its keys' slot.
#[derive(Clone)]
pub enum Connections {
    Single(deadpool_redis::Pool),
    Cluster(ClusterConnection),
}

/// A pooled Redis client whose every call is bounded by one timeout.
#[derive(Clone)]
pub struct RedisPool {
    /// The connections; cloning shares them.
    conns: Connections,
    /// The longest one call may take, taking a connection included.
    timeout: Duration,
    /// The server the connections reach, learned by each new connection
    /// before it is used (a single server only: on a cluster each canvas
    /// remembers the server it was checked on, see `log/checked.rs`).
    server: Arc<ServerIdentity>,
}

/// Whether the server at `info` (its connection) runs in cluster mode.
pub async fn is_cluster_node(info: &redis::ConnectionInfo) -> redis::RedisResult<bool> {
    let client = redis::Client::open(info.clone())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let text: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    Ok(text.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

impl RedisPool {
    /// A pool of `size` connections to `target` (a URL, or the connection
    /// of a [`redis::Client`] built for TLS), or, when the server there is
    /// a Redis Cluster node, one connection to the whole cluster found from
    /// it. Fails at once, with a clear error, when Redis does not answer.
    pub async fn connect(
        target: impl IntoConnectionInfo,
        size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Self::connect_with_ca(target, None, size, timeout).await
    }

    /// [`Self::connect`] trusting `ca_pem` (PEM certificates) instead of the
    /// system's store for TLS to the nodes of a cluster (a single server's
    /// TLS settings travel in `target`).
    pub async fn connect_with_ca(
        target: impl IntoConnectionInfo,
        ca_pem: Option<&[u8]>,
        size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let info = target.into_connection_info().map_err(StoreError::Redis)?;
        let cluster = tokio::time::timeout(timeout, is_cluster_node(&info))
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
            .map_err(StoreError::Redis)?;
        let server = Arc::new(ServerIdentity::default());
        let conns = if cluster {
            let client =
                crate::target::cluster_client(&info, timeout, ca_pem).map_err(StoreError::Redis)?;
            let conn = tokio::time::timeout(timeout, client.get_async_connection())
                .await
                .map_err(|_| StoreError::Timeout(timeout))?
                .map_err(StoreError::Redis)?;
            tracing::info!("redis is a cluster: calls are routed to the master of each slot");
            Connections::Cluster(conn)
        } else {
            Connections::Single(single_pool(info, size, timeout, server.clone())?)
        };
        let redis = RedisPool {
            conns,
            timeout,
            server,
        };
        let _: String = redis
            .with_conn(|c| Box::pin(async move { redis::cmd("PING").query_async(c).await }))
            .await?;
        Ok(redis)
    }

    /// The connections, for the bus's publisher.
    pub fn connections(&self) -> &Connections {
        &self.conns
    }

    /// Whether Redis is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conns, Connections::Cluster(_))
    }

    /// How many distinct Redis server processes the pool has reached (1
    /// after the first connection): a change means Redis restarted or
    /// failed over, and may have come back with older data.
    pub fn generation(&self) -> u64 {
        self.server.generation.load(Ordering::Acquire)
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs a Redis operation on a pooled connection within the timeout.
    pub(crate) async fn with_conn<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut RedisConn,
        )
            -> Pin<Box<dyn Future<Output = redis::RedisResult<T>> + Send + 'c>>,
    {
        let attempt = async {
            let mut conn = self.conn().await?;
            op(&mut conn).await.map_err(StoreError::Redis)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// A connection for a sequence of calls, and the generation of the
    /// server it reaches: taken (and, if it was broken, replaced by one
    /// that has learned the server's run id) before the generation is read.
    pub(crate) async fn checked(&self) -> Result<(RedisConn, u64), StoreError> {
        let conn = match tokio::time::timeout(self.timeout, self.conn()).await {
            Ok(conn) => conn?,
            Err(_) => return Err(StoreError::Timeout(self.timeout)),
        };
        Ok((conn, self.generation()))
    }

    /// A connection: taken from the pool, or the cluster connection.
    async fn conn(&self) -> Result<RedisConn, StoreError> {
        match &self.conns {
            Connections::Single(pool) => pool
                .get()
                .await
                .map(RedisConn::Single)
                .map_err(StoreError::Pool),
            Connections::Cluster(conn) => Ok(RedisConn::Cluster(conn.clone())),
        }
    }

    /// One call on a connection taken with [`Self::checked`], within the
    /// timeout.
    pub(crate) async fn call<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(StoreError::Redis),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Runs pipelines whose replies are ignored, at once (each on its own
    /// connection call).
    pub(crate) async fn run_pipelines(
        &self,
        pipes: Vec<redis::Pipeline>,
    ) -> Result<(), StoreError> {
        let calls = pipes.into_iter().map(|pipe| {
            self.with_conn(|c| Box::pin(async move { pipe.query_async::<()>(c).await }))
        });
        futures_util::future::try_join_all(calls).await.map(|_| ())
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

/// The pool of connections to a single server; each new connection learns
/// the server's run id before it serves a call.
fn single_pool(
    info: redis::ConnectionInfo,
    size: usize,
    timeout: Duration,
    server: Arc<ServerIdentity>,
) -> Result<deadpool_redis::Pool, StoreError> {
    // The manager takes redis's own connection info, which carries the
    // TLS settings (deadpool's serialisable config would drop them).
    let manager = Manager::new(info).map_err(StoreError::Redis)?;
    let mut pool_cfg = deadpool_redis::PoolConfig::new(size);
    pool_cfg.timeouts = Timeouts {
        wait: Some(timeout),
        create: Some(timeout),
        recycle: Some(timeout),
    };
    let seen = server;
    // Every new connection (the first ones, and those replacing broken
    // ones after a restart or failover) learns the server's run id
    // before it serves a call, so no write reaches a new server
    // process unnoticed.
    let hook = Hook::async_fn(move |conn: &mut redis::aio::MultiplexedConnection, _| {
        let seen = seen.clone();
        Box::pin(async move {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(conn)
                .await
                .map_err(HookError::Backend)?;
            seen.reached(run_id(&info).unwrap_or_default());
            Ok(())
        })
    });
    deadpool_redis::Pool::builder(manager)
        .config(pool_cfg)
        .runtime(Runtime::Tokio1)
        .post_create(hook)
        .build()
        .map_err(|e| StoreError::CreatePool(deadpool_redis::CreatePoolError::Build(e)))
}
