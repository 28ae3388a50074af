//! One Redis connection as the stores use it: pooled to a single server, or
//! the cluster connection, which routes each command to the master serving
//! its keys' slot.

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection taken for one or more calls: to a single server (`S`: a
/// pooled connection here, the persister's reconnecting one there), or
/// the cluster connection.
#[derive(Clone)]
pub enum RedisConn<S = deadpool_redis::Connection> {
    Single(S),
    Cluster(ClusterConnection),
}

impl<S: ConnectionLike + Send> RedisConn<S> {
    /// Whether this is the cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// `WAIT needed timeout_ms` on the connection that carried the last
    /// write to `key`: on a cluster, the master serving `key`'s slot (the
    /// cluster connection keeps one connection per node, so the WAIT
    /// covers that write); answers how many replicas confirmed.
    pub async fn wait_replicas(
        &mut self,
        key: &str,
        needed: usize,
        timeout_ms: u64,
    ) -> redis::RedisResult<usize> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(needed).arg(timeout_ms);
        match self {
            RedisConn::Single(conn) => wait.query_async(conn).await,
            RedisConn::Cluster(conn) => {
                let route = Route::with_slot(Slot::for_key(key), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let reply = conn.route_command(wait, routing).await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}

impl<S: ConnectionLike + Send> ConnectionLike for RedisConn<S> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}
