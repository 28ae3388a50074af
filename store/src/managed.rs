//! A long-lived Redis connection, for the persister and for tools and
//! tests: a reconnecting connection to a single server, or a cluster
//! connection that routes each call to the master serving its key's slot.
//! Discovery scans every master.

use crate::RedisConn;
use redis::Cmd;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use std::time::Duration;

/// One Redis connection (cheap to clone: clones share it).
pub type Managed = RedisConn<ConnectionManager>;

/// A connection to `client`'s server, or to the whole cluster when that
/// server is a Redis Cluster node; each call waits at most `timeout`.
pub async fn connect(
    client: &redis::Client,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> redis::RedisResult<Managed> {
    let info = client.get_connection_info();
    let probe = tokio::time::timeout(timeout, crate::is_cluster_node(info)).await;
    let cluster = probe.map_err(|_| {
        redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "redis did not answer INFO in time",
        ))
    })??;
    if cluster {
        let cluster = crate::cluster_client(info, timeout, ca_pem)?;
        return Ok(RedisConn::Cluster(cluster.get_async_connection().await?));
    }
    let config = ConnectionManagerConfig::new().set_response_timeout(Some(timeout));
    let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
    Ok(RedisConn::Single(manager))
}

/// Every key matching `pattern` (SCAN in pages of about 1,000; on a
/// cluster, on every master).
pub async fn scan_keys(conn: &mut Managed, pattern: &str) -> redis::RedisResult<Vec<String>> {
    match conn {
        RedisConn::Single(conn) => scan(conn, pattern, None).await,
        RedisConn::Cluster(conn) => {
            let mut out = Vec::new();
            for (host, port) in masters(conn).await? {
                let node = SingleNodeRoutingInfo::ByAddress { host, port };
                out.extend(scan(conn, pattern, Some(node)).await?);
            }
            Ok(out)
        }
    }
}

/// The masters of the cluster, from `CLUSTER NODES` (those not failed).
async fn masters(conn: &mut ClusterConnection) -> redis::RedisResult<Vec<(String, u16)>> {
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
    Ok(nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let master = flags.split(',').any(|f| f == "master");
            let failed = flags.split(',').any(|f| f == "fail" || f == "fail?");
            let (host, port) = address.split('@').next()?.rsplit_once(':')?;
            (master && !failed).then(|| Some((host.to_owned(), port.parse().ok()?)))?
        })
        .collect())
}

/// SCAN on one node (`node`) or on the connection's server.
async fn scan<C: RouteTo>(
    conn: &mut C,
    pattern: &str,
    node: Option<SingleNodeRoutingInfo>,
) -> redis::RedisResult<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let (next, found): (u64, Vec<String>) = conn.query_on(cmd, node.clone()).await?;
        out.extend(found);
        cursor = next;
        if cursor == 0 {
            return Ok(out);
        }
    }
}

/// Runs a command on a given node where the connection can choose one.
trait RouteTo {
    async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        cmd: Cmd,
        node: Option<SingleNodeRoutingInfo>,
    ) -> redis::RedisResult<T>;
}

impl RouteTo for ConnectionManager {
    async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        cmd: Cmd,
        _node: Option<SingleNodeRoutingInfo>,
    ) -> redis::RedisResult<T> {
        cmd.query_async(self).await
    }
}

impl RouteTo for ClusterConnection {
    async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        cmd: Cmd,
        node: Option<SingleNodeRoutingInfo>,
    ) -> redis::RedisResult<T> {
        match node {
            Some(node) => {
                let reply = self
                    .route_command(cmd, RoutingInfo::SingleNode(node))
                    .await?;
                Ok(redis::from_redis_value(reply)?)
            }
            None => cmd.query_async(self).await,
        }
    }
}
