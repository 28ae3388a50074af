//! The node's pub/sub link to Redis (one connection to a single server, or
//! one per master of a Redis Cluster: see `link.rs`).
//!
//! The subscriber task owns that link. It keeps the set of canvases
//! this node wants (driven by the hub's first-join/last-leave commands),
//! applies changes in batches (one SUBSCRIBE or UNSUBSCRIBE for everything
//! that queued up), pings the connection to notice a dead server, and after
//! a reconnect subscribes everything again and tells the members of those
//! canvases to resynchronise, since events published in between are lost.

use crate::BusError;
use crate::hub::{Hub, SubCommand};
use crate::link::{Connector, Incoming, Link};
use shared::backoff::Backoff;
use shared::protocol::ResyncReason;
use shared::{CanvasId, keys};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Most channels named in one SUBSCRIBE/UNSUBSCRIBE.
const CHANNELS_PER_COMMAND: usize = 1000;

pub(crate) type Waiter = oneshot::Sender<Result<(), BusError>>;

pub(crate) struct Subscriber {
    connector: Connector,
    hub: Arc<Hub>,
    commands: mpsc::UnboundedReceiver<SubCommand>,
    /// Canvases with local members: what should be subscribed.
    desired: HashSet<CanvasId>,
    /// What the current connection has confirmed.
    actual: HashSet<CanvasId>,
    /// Canvases wanted or unwanted since the last sync: what it looks at,
    /// so a change costs the same with ten subscriptions or a million.
    changed: HashSet<CanvasId>,
    /// Joins waiting for their canvas's subscription to be confirmed.
    waiters: HashMap<CanvasId, Vec<Waiter>>,
    /// Shared with the bus for readiness and fast-failing joins.
    connected: watch::Sender<bool>,
    health_interval: Duration,
}

impl Subscriber {
    pub(crate) fn new(
        connector: Connector,
        hub: Arc<Hub>,
        commands: mpsc::UnboundedReceiver<SubCommand>,
        connected: watch::Sender<bool>,
        health_interval: Duration,
    ) -> Self {
        Subscriber {
            connector,
            hub,
            commands,
            desired: HashSet::new(),
            actual: HashSet::new(),
            changed: HashSet::new(),
            waiters: HashMap::new(),
            connected,
            health_interval,
        }
    }
}

/// Why the connected loop ended.
enum Ended {
    Shutdown,
    Lost,
}

impl Subscriber {
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut ever_connected = false;
        loop {
            let connect = tokio::time::timeout(Duration::from_secs(5), self.connector.connect());
            let link = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = connect => r,
            };
            let mut link = match link {
                Ok(Ok(link)) => link,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "redis pub/sub connect failed");
                    if !self.pause(&mut backoff, &shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(_) => {
                    tracing::warn!("redis pub/sub connect timed out");
                    if !self.pause(&mut backoff, &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            // Fold in everything that changed while we were away, then
            // subscribe the whole set on the new connection.
            self.drain_commands();
            self.actual.clear();
            self.changed = self.desired.clone();
            if let Err(err) = self.sync(&mut link).await {
                tracing::warn!(error = %err, "redis resubscribe failed");
                if !self.pause(&mut backoff, &shutdown).await {
                    return;
                }
                continue;
            }
            self.connected.send_replace(true);
            backoff.reset();
            if ever_connected {
                self.hub
                    .stats()
                    .bus_reconnects
                    .fetch_add(1, Ordering::Relaxed);
                // Channels (users', global) carry no sequence to resync.
                let canvases: Vec<CanvasId> = self
                    .actual
                    .iter()
                    .filter(|c| !c.is_channel())
                    .cloned()
                    .collect();
                tracing::warn!(
                    canvases = canvases.len(),
                    "redis pub/sub reconnected; members told to resync"
                );
                self.hub.resync(&canvases, ResyncReason::BusReconnected);
                let users: Vec<CanvasId> = self
                    .actual
                    .iter()
                    .filter(|c| c.user_of_channel().is_some())
                    .cloned()
                    .collect();
                self.hub.respread(&users);
            } else {
                tracing::info!("redis pub/sub connected");
            }
            ever_connected = true;

            let ended = self.connected_loop(&mut link, &shutdown).await;
            self.connected.send_replace(false);
            self.set_subscriptions(0);
            match ended {
                Ended::Shutdown => return,
                Ended::Lost => {
                    tracing::warn!("redis pub/sub connection lost; reconnecting");
                }
            }
        }
    }

    fn set_subscriptions(&self, n: usize) {
        self.hub
            .stats()
            .subscriptions
            .store(n as u64, Ordering::Relaxed);
    }

    /// Waits out one backoff step; false if shutdown came first.
    async fn pause(&mut self, backoff: &mut Backoff, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(backoff.next_delay()) => true,
        }
    }

    async fn connected_loop(&mut self, link: &mut Link, shutdown: &CancellationToken) -> Ended {
        let mut health = tokio::time::interval(self.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ended::Shutdown,
                incoming = link.next() => match incoming {
                    Incoming::Message(channel, payload) => match keys::canvas_from_channel(&channel) {
                        Some(canvas) => self.hub.dispatch(&canvas, &payload),
                        None => tracing::warn!(%channel, "message on an unknown channel"),
                    },
                    Incoming::Lost => return Ended::Lost,
                    // A master whose slot moved dropped a subscription:
                    // subscribe everything again, on the new owners.
                    Incoming::Dropped(channel) => {
                        if keys::canvas_from_channel(&channel).is_some_and(|c| self.desired.contains(&c)) {
                            tracing::warn!(%channel, "redis dropped a subscription (its slot moved)");
                            return Ended::Lost;
                        }
                    }
                    Incoming::Other => {}
                },
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { return Ended::Shutdown };
                    self.apply(cmd);
                    self.drain_commands();
                    if let Err(err) = self.sync(link).await {
                        tracing::warn!(error = %err, "redis subscribe/unsubscribe failed");
                        return Ended::Lost;
                    }
                }
                _ = health.tick() => {
                    let ping = tokio::time::timeout(self.health_interval, link.ping()).await;
                    match ping {
                        Ok(Ok(_)) => {
                            self.hub.stats().bus_pings.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "redis pub/sub ping failed");
                            return Ended::Lost;
                        }
                        Err(_) => {
                            tracing::warn!("redis pub/sub ping timed out");
                            return Ended::Lost;
                        }
                    }
                }
            }
        }
    }

    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            self.apply(cmd);
        }
    }

    fn apply(&mut self, cmd: SubCommand) {
        match cmd {
            SubCommand::Want(canvas) => {
                self.desired.insert(canvas.clone());
                self.changed.insert(canvas);
            }
            SubCommand::Unwant(canvas) => {
                self.desired.remove(&canvas);
                self.changed.insert(canvas);
            }
            SubCommand::Await(canvas, waiter) => {
                if self.actual.contains(&canvas) && self.desired.contains(&canvas) {
                    let _ = waiter.send(Ok(()));
                } else {
                    self.waiters.entry(canvas).or_default().push(waiter);
                }
            }
        }
    }

    /// Brings the connection's subscriptions to the desired set, then
    /// answers the joins waiting on canvases that are now subscribed.
    /// Looks only at the canvases changed since the last sync (all of them
    /// after a reconnect). On an error the connection is dropped, and the
    /// next one subscribes everything again.
    async fn sync(&mut self, link: &mut Link) -> Result<(), redis::RedisError> {
        let (mut to_sub, mut to_unsub) = (Vec::new(), Vec::new());
        for canvas in self.changed.drain() {
            match (
                self.desired.contains(&canvas),
                self.actual.contains(&canvas),
            ) {
                (true, false) => to_sub.push(canvas),
                (false, true) => to_unsub.push(canvas),
                _ => {}
            }
        }
        let channels: Vec<String> = to_sub.iter().map(keys::canvas_channel).collect();
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            link.subscribe(chunk).await?;
        }
        let channels: Vec<String> = to_unsub.iter().map(keys::canvas_channel).collect();
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            link.unsubscribe(chunk).await?;
        }
        for canvas in &to_unsub {
            self.actual.remove(canvas);
        }
        self.actual.extend(to_sub);
        self.set_subscriptions(self.actual.len());
        let ready: Vec<CanvasId> = self
            .waiters
            .keys()
            .filter(|c| self.actual.contains(*c))
            .cloned()
            .collect();
        for canvas in ready {
            for waiter in self.waiters.remove(&canvas).unwrap_or_default() {
                let _ = waiter.send(Ok(()));
            }
        }
        // Waiters for canvases nobody wants any more (the member left while
        // waiting) are dropped, which their join sees as a failure.
        let desired = &self.desired;
        self.waiters.retain(|c, _| desired.contains(c));
        Ok(())
    }
}
