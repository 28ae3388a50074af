//! The Redis bus: publishes ephemeral events through the stores' shared
//! connections (PUBLISH on a single server; SPUBLISH on a Redis Cluster,
//! which carries a shard channel to the master serving its slot and its
//! replicas only), and receives every canvas this node has members on over
//! its own pub/sub link (see `subscriber.rs`). Durable events are published
//! by the store's publish script, inside the same atomic step that numbers
//! them.

use crate::BusError;
use crate::hub::Hub;
use crate::link::Connector;
use crate::subscriber::Subscriber;
use shared::{CanvasId, keys};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How to reach Redis for pub/sub and how patient to be with it.
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// The server, from a `redis://` URL or a client built for TLS.
    pub connection: redis::ConnectionInfo,
    /// Timeout for one publish, including taking a pooled connection.
    pub publish_timeout: Duration,
    /// How long a join waits for its subscription to be confirmed.
    pub subscribe_timeout: Duration,
    /// How often the pub/sub connection is pinged to detect a dead server.
    pub health_interval: Duration,
    /// On a Redis Cluster: a client for it speaking RESP3 (sharded pub/sub
    /// delivers as pushes); `None` for a single server.
    pub cluster: Option<redis::cluster::ClusterClient>,
}

/// Where ephemeral events are published: the pool the stores share, or
/// the cluster connection.
#[derive(Clone)]
pub enum Publisher {
    Single(deadpool_redis::Pool),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl BusSettings {
    /// Settings with the defaults the gateway also uses.
    pub fn new(target: impl redis::IntoConnectionInfo) -> redis::RedisResult<Self> {
        Ok(BusSettings {
            connection: target.into_connection_info()?,
            publish_timeout: Duration::from_secs(2),
            subscribe_timeout: Duration::from_secs(5),
            health_interval: Duration::from_secs(5),
            cluster: None,
        })
    }
}

pub(crate) struct RedisBus {
    /// Shared with the stores.
    publisher: Publisher,
    publish_timeout: Duration,
    /// Whether the subscriber's pub/sub connection is up.
    connected: watch::Receiver<bool>,
}

impl RedisBus {
    /// Starts the subscriber and waits until it is connected.
    pub(crate) async fn start(
        node: &str,
        settings: &BusSettings,
        publisher: Publisher,
        shutdown: CancellationToken,
    ) -> Result<(RedisBus, Arc<Hub>), BusError> {
        let connector = match &settings.cluster {
            Some(client) => {
                Connector::Cluster(Box::new(client.clone()), settings.subscribe_timeout)
            }
            None => Connector::Single(Box::new(
                redis::Client::open(settings.connection.clone()).map_err(BusError::Redis)?,
            )),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(node, Some(tx)));
        let (connected_tx, mut connected) = watch::channel(false);
        let subscriber = Subscriber::new(
            connector,
            hub.clone(),
            rx,
            connected_tx,
            settings.health_interval,
        );
        tokio::spawn(subscriber.run(shutdown));
        // Serve nothing until events can be received.
        let timeout = settings.subscribe_timeout;
        match tokio::time::timeout(timeout, connected.wait_for(|up| *up)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(BusError::Stopped),
            Err(_) => return Err(BusError::Timeout(timeout)),
        }
        let bus = RedisBus {
            publisher,
            publish_timeout: settings.publish_timeout,
            connected,
        };
        Ok((bus, hub))
    }

    pub(crate) fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    pub(crate) async fn publish(
        &self,
        canvas: &CanvasId,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        let channel = keys::canvas_channel(canvas);
        let attempt = async {
            match &self.publisher {
                Publisher::Single(pool) => {
                    let mut conn = pool.get().await.map_err(BusError::Pool)?;
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(payload)
                        .query_async::<i64>(&mut conn)
                        .await
                }
                Publisher::Cluster(conn) => {
                    redis::cmd("SPUBLISH")
                        .arg(channel)
                        .arg(payload)
                        .query_async::<i64>(&mut conn.clone())
                        .await
                }
            }
            .map_err(BusError::Redis)
        };
        match tokio::time::timeout(self.publish_timeout, attempt).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(BusError::Timeout(self.publish_timeout)),
        }
    }
}
