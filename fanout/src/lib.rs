//! The bus between gateway nodes and the local fan-out to connections.
//!
//! A [`Fanout`] combines a [`Hub`] (which connections on this node are
//! members of which canvas, and how to hand them an event) with a bus that
//! moves events between nodes: Redis pub/sub in a cluster, or nothing at
//! all in standalone mode, where a published event goes straight to the
//! hub. Both expose the same operations, so the gateway never knows which
//! one it runs on. What is stored (the durable log, presence, the online
//! registry) is the `store` crate's.

mod control;
mod hub;
mod link;
mod queue;
mod redis_bus;
mod subscriber;

pub use control::{Attention, ConnControl};
pub use hub::{Hub, HubStats, JoinGate, Member, client_frame, frame_for, visible_event};
pub use queue::{Full, Outbound, Stamped};
pub use redis_bus::{BusSettings, Publisher};

use bytes::Bytes;
use shared::CanvasId;
use shared::busframe::{self, BusHeader};
use shared::protocol::ServerMessage;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis is unavailable")]
    Redis(#[source] redis::RedisError),
    #[error("no redis connection could be taken from the pool")]
    Pool(#[source] deadpool_redis::PoolError),
    #[error("the bus did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the bus subscriber has stopped")]
    Stopped,
    #[error("the bus is disconnected from redis")]
    Disconnected,
    #[error("the event could not be framed")]
    Frame(#[source] busframe::BusFrameError),
}

/// Which bus a [`Fanout`] runs on.
enum Bus {
    /// Standalone: a published event is dispatched straight to the hub.
    Memory,
    /// Cluster: events go through Redis pub/sub.
    Redis(redis_bus::RedisBus),
}

/// The bus plus the local hub.
pub struct Fanout {
    hub: Arc<Hub>,
    bus: Bus,
    /// How long a join waits for Redis to confirm the canvas subscription.
    subscribe_timeout: Duration,
}

impl Fanout {
    /// A single-node fan-out with no Redis.
    pub fn memory(node: &str) -> Self {
        Fanout {
            hub: Arc::new(Hub::new(node, None)),
            bus: Bus::Memory,
            subscribe_timeout: Duration::from_secs(5),
        }
    }

    /// A fan-out over Redis, publishing through `publisher`. Starts the
    /// node's pub/sub task, which runs (reconnecting as needed) until
    /// `shutdown` is cancelled, and returns once it is subscribed.
    pub async fn redis(
        node: &str,
        settings: &BusSettings,
        publisher: Publisher,
        shutdown: CancellationToken,
    ) -> Result<Self, BusError> {
        let (bus, hub) = redis_bus::RedisBus::start(node, settings, publisher, shutdown).await?;
        Ok(Fanout {
            hub,
            bus: Bus::Redis(bus),
            subscribe_timeout: settings.subscribe_timeout,
        })
    }

    /// `"redis"` or `"memory"`, for logs.
    pub fn mode(&self) -> &'static str {
        match self.bus {
            Bus::Memory => "memory",
            Bus::Redis(_) => "redis",
        }
    }

    /// The local hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Whether the bus can deliver events right now (the pub/sub connection
    /// is up); always true for the in-memory bus.
    pub fn is_connected(&self) -> bool {
        match &self.bus {
            Bus::Memory => true,
            Bus::Redis(r) => r.is_connected(),
        }
    }

    /// Adds a member to a canvas and returns once this node receives the
    /// canvas's events (for Redis: once the subscription is confirmed).
    ///
    /// On failure the member has been removed again.
    pub async fn join(&self, canvas: &CanvasId, member: Member) -> Result<(), BusError> {
        // Fail fast rather than make the client wait out the timeout; the
        // error tells it to retry, by which time the bus may be back.
        if !self.is_connected() {
            return Err(BusError::Disconnected);
        }
        let conn = member.conn;
        let Some(confirmed) = self.hub.add(canvas, member) else {
            return Ok(());
        };
        let outcome = match tokio::time::timeout(self.subscribe_timeout, confirmed).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BusError::Stopped),
            Err(_) => Err(BusError::Timeout(self.subscribe_timeout)),
        };
        if outcome.is_err() {
            self.hub.remove(canvas, conn);
        }
        outcome
    }

    /// Removes a member from a canvas; returns whether it was a member.
    pub fn leave(&self, canvas: &CanvasId, conn: u64) -> bool {
        self.hub.remove(canvas, conn)
    }

    /// Sends a signal to the connections that are members of `channel` on
    /// every node (see [`busframe::Signal`]).
    pub async fn signal(
        &self,
        channel: &CanvasId,
        signal: &busframe::Signal,
    ) -> Result<(), BusError> {
        let payload = signal.frame(self.hub.node()).map_err(BusError::Frame)?;
        match &self.bus {
            Bus::Memory => {
                self.hub.dispatch(channel, &Bytes::from(payload));
                Ok(())
            }
            Bus::Redis(r) => r.publish(channel, payload).await,
        }
    }

    /// Publishes an ephemeral event (never stored, no sequence number) to
    /// every member of its canvas on every node.
    pub async fn publish(
        &self,
        canvas: &CanvasId,
        header: &BusHeader,
        event: &ServerMessage,
    ) -> Result<(), BusError> {
        let payload = busframe::encode(header, None, event).map_err(BusError::Frame)?;
        match &self.bus {
            Bus::Memory => {
                self.hub.dispatch(canvas, &Bytes::from(payload));
                Ok(())
            }
            Bus::Redis(r) => r.publish(canvas, payload).await,
        }
    }
}
