//! The subscriber's connection, whichever Redis it is: one RESP2 pub/sub
//! connection (`SUBSCRIBE`) to a single server, or a RESP3 cluster
//! connection (`SSUBSCRIBE`) that keeps one connection per master and sends
//! each canvas's shard channel to the master serving its slot.
//!
//! Either way the subscriber sees the same three things: a message, a lost
//! link (it then subscribes everything again and has those canvases
//! resynchronised), and nothing else worth acting on.

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// How the subscriber connects.
/// (Boxed: the clients differ much in size and one is made per node.)
pub(crate) enum Connector {
    Single(Box<redis::Client>),
    /// A RESP3 client; each call waits at most the duration.
    Cluster(Box<ClusterClient>, Duration),
}

/// What arrived on the link.
pub(crate) enum Incoming {
    /// An event on a channel.
    Message(String, Bytes),
    /// The link (or, on a cluster, the link to one master) broke, or a
    /// master dropped subscriptions (its slots moved): what was published
    /// since may be lost.
    Lost,
    /// A master dropped a subscription (its slot moved to another): the
    /// subscriber's own unsubscriptions are not reported.
    Dropped(String),
    /// Anything else (subscription confirmations).
    Other,
}

/// A connected link.
pub(crate) enum Link {
    Single(PubSubSink, PubSubStream),
    /// With the unsubscriptions sent and not yet confirmed, by channel
    /// (their confirmations are pushes like those of dropped ones).
    Cluster(
        ClusterConnection,
        mpsc::UnboundedReceiver<PushInfo>,
        HashMap<String, u32>,
    ),
}

impl Connector {
    /// A fresh link with no subscriptions.
    pub(crate) async fn connect(&self) -> redis::RedisResult<Link> {
        match self {
            Connector::Single(client) => {
                let (sink, stream) = client.get_async_pubsub().await?.split();
                Ok(Link::Single(sink, stream))
            }
            Connector::Cluster(client, timeout) => {
                // Each link has its own push channel: a new link starts
                // with no subscriptions and none of the old one's pushes.
                let (tx, rx) = mpsc::unbounded_channel();
                let config = ClusterConfig::new()
                    .set_push_sender(tx)
                    .set_connection_timeout(*timeout)
                    .set_response_timeout(*timeout);
                let conn = client.get_async_connection_with_config(config).await?;
                Ok(Link::Cluster(conn, rx, HashMap::new()))
            }
        }
    }
}

impl Link {
    /// Subscribes channels (on a cluster, each with its own SSUBSCRIBE:
    /// one command's channels must share a slot).
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        match self {
            Link::Single(sink, _) => sink.subscribe(channels).await,
            Link::Cluster(conn, _, _) => {
                let calls = channels.iter().map(|c| {
                    let mut conn = conn.clone();
                    async move { conn.ssubscribe(c).await }
                });
                futures_util::future::try_join_all(calls).await.map(|_| ())
            }
        }
    }

    pub(crate) async fn unsubscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        match self {
            Link::Single(sink, _) => sink.unsubscribe(channels).await,
            Link::Cluster(conn, _, unsubscribing) => {
                for channel in channels {
                    *unsubscribing.entry(channel.clone()).or_default() += 1;
                }
                let calls = channels.iter().map(|c| {
                    let mut conn = conn.clone();
                    async move { conn.sunsubscribe(c).await }
                });
                futures_util::future::try_join_all(calls).await.map(|_| ())
            }
        }
    }

    /// The next thing that arrives; `Lost` when the link ends.
    pub(crate) async fn next(&mut self) -> Incoming {
        match self {
            Link::Single(_, stream) => match stream.next().await {
                Some(msg) => Incoming::Message(
                    msg.get_channel_name().to_owned(),
                    Bytes::copy_from_slice(msg.get_payload_bytes()),
                ),
                None => Incoming::Lost,
            },
            Link::Cluster(_, pushes, unsubscribing) => match pushes.recv().await {
                Some(push) => match from_push(push) {
                    Incoming::Dropped(channel) => match unsubscribing.get_mut(&channel) {
                        Some(n) => {
                            *n -= 1;
                            if *n == 0 {
                                unsubscribing.remove(&channel);
                            }
                            Incoming::Other
                        }
                        None => Incoming::Dropped(channel),
                    },
                    other => other,
                },
                None => Incoming::Lost,
            },
        }
    }

    /// Proves the link is alive (on a cluster, every master answers).
    pub(crate) async fn ping(&mut self) -> redis::RedisResult<()> {
        match self {
            // In subscribed mode (RESP2) the reply is the array
            // ["pong", ""], not +PONG: any reply proves the link.
            Link::Single(sink, _) => sink.ping::<Value>().await.map(|_| ()),
            Link::Cluster(conn, _, _) => {
                use redis::cluster_routing::{
                    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo,
                };
                let routing = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                conn.route_command(redis::cmd("PING"), routing)
                    .await
                    .map(|_| ())
            }
        }
    }
}

/// A RESP3 push as the subscriber sees it.
fn from_push(push: PushInfo) -> Incoming {
    match push.kind {
        PushKind::SMessage | PushKind::Message => {
            let mut data = push.data.into_iter();
            match (data.next(), data.next()) {
                (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) => {
                    match String::from_utf8(channel) {
                        Ok(channel) => Incoming::Message(channel, Bytes::from(payload)),
                        Err(_) => Incoming::Other,
                    }
                }
                _ => Incoming::Other,
            }
        }
        PushKind::Disconnection => Incoming::Lost,
        PushKind::SUnsubscribe => match push.data.into_iter().next() {
            Some(Value::BulkString(channel)) => String::from_utf8(channel)
                .map(Incoming::Dropped)
                .unwrap_or(Incoming::Other),
            _ => Incoming::Other,
        },
        _ => Incoming::Other,
    }
}
