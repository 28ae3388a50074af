//! The local hub: which connections on this node are members of which
//! canvas, and the dispatch that hands each of them an event.
//!
//! An event arrives once per node as a bus frame. It is decoded at most once
//! and encoded at most once per wire encoding; every member then gets a clone
//! of the same frame (a reference-count bump) through `try_send` on its
//! bounded queue. A member whose queue is full is told to close with
//! [`CloseCode::SlowConsumer`]; nobody waits for it.

use crate::BusError;
use crate::control::ConnControl;
use crate::queue::{Full, Outbound};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use shared::busframe;
use shared::codec::{self, Encoding};
use shared::protocol::{Resync, ResyncReason, ServerMessage};
use shared::{CanvasId, CloseCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tungstenite::Message;

/// One connection's membership of one canvas.
#[derive(Debug, Clone)]
pub struct Member {
    /// Connection number on this node; matches the bus header's `conn` for
    /// events this connection published.
    pub conn: u64,
    /// The wire encoding the connection negotiated.
    pub encoding: Encoding,
    /// Whether the connection wants its own events back.
    pub echo: bool,
    /// The connection's bounded outbound queue.
    pub tx: Arc<Outbound>,
    /// How the hub tells the connection to close when its queue is full.
    pub control: Arc<ConnControl>,
    /// Holds this membership's events until its join position is known.
    pub gate: Arc<JoinGate>,
    /// Whether the connection is a gm on the canvas: it sees gm-only
    /// events; others get a `hidden` event in their place.
    pub gm: bool,
    /// A member for signals alone (an SSE canvas stream on its user's
    /// channel): it is handed control frames, never events.
    pub signals_only: bool,
}

/// Holds a joining member's live events while the join reads the canvas
/// position, then releases those after it, so the member sees every event
/// after its position exactly once and in order.
///
/// The join subscribes first (events start arriving and are held), then
/// reads the position, queues its ack, and calls [`JoinGate::release`].
///
/// The position can be ahead of what this node has received (the publish
/// script has run, its PUBLISH is still on the way), so events at or below
/// the position keep being dropped after the gate opens.
#[derive(Debug, Default)]
pub struct JoinGate {
    holding: AtomicBool,
    /// (sequence number, frame, ingest stamp) in arrival order.
    held: Mutex<Vec<(Option<u64>, Message, u64)>>,
    /// Durable events at or below this are already in the member's view.
    floor: AtomicU64,
}

impl JoinGate {
    /// A gate that holds events until released.
    pub fn holding() -> Arc<Self> {
        Arc::new(JoinGate {
            holding: AtomicBool::new(true),
            held: Mutex::new(Vec::new()),
            floor: AtomicU64::new(0),
        })
    }

    /// A gate that lets everything through (members that need no position).
    pub fn open() -> Arc<Self> {
        Arc::new(JoinGate::default())
    }

    /// Queues the held events with a sequence number above `position` (and
    /// all ephemeral ones), in arrival order, waiting for room in `queue`,
    /// then opens the gate. Events at or below `position` are dropped from
    /// now on, including ones that arrive after the gate opens.
    ///
    /// Held events are moved out in batches and queued outside the lock, so
    /// the hub never waits for this member; the gate opens only once it is
    /// empty, under the lock, so nothing overtakes a held event.
    pub async fn release(&self, position: u64, queue: &Outbound) {
        self.floor.store(position, Ordering::Release);
        loop {
            let batch = {
                let mut held = self.held.lock();
                if held.is_empty() {
                    held.shrink_to_fit();
                    self.holding.store(false, Ordering::Release);
                    return;
                }
                std::mem::take(&mut *held)
            };
            for (seq, frame, ingest_us) in batch {
                if seq.is_none_or(|s| s > position) {
                    queue.offer_wait(frame, ingest_us).await;
                }
            }
        }
    }
}

/// A held join gate takes up to this many times the queue's capacity.
const GATE_SLACK: usize = 4;

/// Turns a bus payload (for example one read back from the canvas log) into
/// the frame a client with `encoding` receives (`gm`: whether it may see
/// gm-only events).
pub fn client_frame(payload: &Bytes, encoding: Encoding, gm: bool) -> Option<Message> {
    let parts = busframe::split(payload).ok()?;
    if parts.header.gm_only && !gm {
        return frame_for(encoding, &hidden(payload, parts.seq)?);
    }
    Frames::new(parts.event, parts.seq).get(encoding, &HubStats::default())
}

/// The event a bus payload holds as a client that is not a gm sees it:
/// gm-only events become `hidden`, others are unchanged; with `seq` set.
pub fn visible_event(payload: &Bytes, gm: bool) -> Option<ServerMessage> {
    let parts = busframe::split(payload).ok()?;
    if parts.header.gm_only && !gm {
        return hidden(payload, parts.seq);
    }
    let mut msg = codec::decode_server(Encoding::Msgpack, &parts.event).ok()?;
    if let Some(seq) = parts.seq {
        msg.set_seq(seq);
    }
    Some(msg)
}

/// The `hidden` stand-in for a gm-only durable event.
fn hidden(payload: &Bytes, seq: Option<u64>) -> Option<ServerMessage> {
    let parts = busframe::split(payload).ok()?;
    let event = codec::decode_server(Encoding::Msgpack, &parts.event).ok()?;
    Some(ServerMessage::Hidden(shared::protocol::Hidden {
        canvas: event.canvas()?.clone(),
        seq,
    }))
}

/// Requests from the hub to the bus's subscriber, sent in membership order.
#[derive(Debug)]
pub(crate) enum SubCommand {
    /// The canvas got its first local member: subscribe.
    Want(CanvasId),
    /// The canvas lost its last local member: unsubscribe.
    Unwant(CanvasId),
    /// Report when the canvas subscription is confirmed.
    Await(CanvasId, oneshot::Sender<Result<(), BusError>>),
}

/// Counters kept by the hub (exported as metrics by the gateway).
#[derive(Debug, Default)]
pub struct HubStats {
    /// Frames queued to members.
    pub delivered: AtomicU64,
    /// Members disconnected because their queue was full.
    pub slow_consumers: AtomicU64,
    /// Bus payloads that could not be decoded and were dropped.
    pub bad_frames: AtomicU64,
    /// `resync` notices queued after a bus reconnect.
    pub resyncs: AtomicU64,
    /// Successful health pings on the bus's pub/sub connection.
    pub bus_pings: AtomicU64,
    /// Times the pub/sub connection was re-established after a loss.
    pub bus_reconnects: AtomicU64,
    /// Canvas channels the pub/sub connection has confirmed (a gauge; 0
    /// while disconnected and on the in-memory bus).
    pub subscriptions: AtomicU64,
}

/// See the module documentation.
pub struct Hub {
    node: Arc<str>,
    canvases: RwLock<HashMap<CanvasId, Vec<Member>>>,
    /// `None` on the in-memory bus, where there is nothing to subscribe.
    subscriber: Option<mpsc::UnboundedSender<SubCommand>>,
    stats: HubStats,
}

impl Hub {
    pub(crate) fn new(node: &str, subscriber: Option<mpsc::UnboundedSender<SubCommand>>) -> Self {
        Hub {
            node: Arc::from(node),
            canvases: RwLock::new(HashMap::new()),
            subscriber,
            stats: HubStats::default(),
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The hub's counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// Number of canvases with at least one local member (channels such
    /// as users' and `global` are not canvases).
    pub fn canvas_count(&self) -> usize {
        self.canvases
            .read()
            .keys()
            .filter(|c| !c.is_channel())
            .count()
    }

    /// Canvas memberships on this node: each connection counted once per
    /// canvas (channel memberships are not counted).
    pub fn membership_count(&self) -> usize {
        self.canvases
            .read()
            .iter()
            .filter(|(c, _)| !c.is_channel())
            .map(|(_, m)| m.len())
            .sum()
    }

    /// Number of local members of a canvas.
    pub fn member_count(&self, canvas: &CanvasId) -> usize {
        self.canvases.read().get(canvas).map_or(0, Vec::len)
    }

    /// Adds (or replaces) a member. Returns a receiver that completes when
    /// the canvas subscription is confirmed, or `None` when no subscription
    /// is needed (in-memory bus).
    pub(crate) fn add(
        &self,
        canvas: &CanvasId,
        member: Member,
    ) -> Option<oneshot::Receiver<Result<(), BusError>>> {
        let mut map = self.canvases.write();
        let members = map.entry(canvas.clone()).or_default();
        let first = members.is_empty();
        match members.iter_mut().find(|m| m.conn == member.conn) {
            Some(existing) => *existing = member,
            None => members.push(member),
        }
        // Sent under the lock so the subscriber sees Want/Unwant in the same
        // order as the membership changes that caused them.
        let subscriber = self.subscriber.as_ref()?;
        if first {
            let _ = subscriber.send(SubCommand::Want(canvas.clone()));
        }
        let (tx, rx) = oneshot::channel();
        let _ = subscriber.send(SubCommand::Await(canvas.clone(), tx));
        Some(rx)
    }

    /// Removes a member; returns whether it was one.
    pub(crate) fn remove(&self, canvas: &CanvasId, conn: u64) -> bool {
        let mut map = self.canvases.write();
        let Some(members) = map.get_mut(canvas) else {
            return false;
        };
        let Some(at) = members.iter().position(|m| m.conn == conn) else {
            return false;
        };
        members.swap_remove(at);
        if members.is_empty() {
            map.remove(canvas);
            if let Some(subscriber) = &self.subscriber {
                let _ = subscriber.send(SubCommand::Unwant(canvas.clone()));
            }
        }
        true
    }

    /// Delivers one bus payload to every local member of `canvas`, except
    /// its sender unless that member asked for echo.
    pub fn dispatch(&self, canvas: &CanvasId, payload: &Bytes) {
        let parts = match busframe::split(payload) {
            Ok(parts) => parts,
            Err(err) => {
                self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%canvas, error = %err, "dropping unreadable bus frame");
                return;
            }
        };
        if parts.header.control {
            self.signal(canvas, &parts.event);
            return;
        }
        let own = *parts.header.node == *self.node;
        let sender = parts.header.conn;
        let seq = parts.seq;
        let ingest_us = parts.header.ingest_us;
        let gm_only = parts.header.gm_only;
        let mut frames = Frames::new(parts.event, seq);
        // Non-gm members of a gm-only event get `hidden` (built on need).
        let mut hidden_frames: [Option<Option<Message>>; 2] = [None, None];
        let mut delivered = 0u64;
        let map = self.canvases.read();
        let Some(members) = map.get(canvas) else {
            return;
        };
        for member in members {
            if member.signals_only || (own && member.conn == sender && !member.echo) {
                continue;
            }
            let frame = if gm_only && !member.gm {
                // An ephemeral gm-only event (an activity at a fog region)
                // holds no place in a numbering: others get nothing.
                if seq.is_none() {
                    continue;
                }
                hidden_frames[member.encoding.index()]
                    .get_or_insert_with(|| {
                        let notice = ServerMessage::Hidden(shared::protocol::Hidden {
                            canvas: canvas.clone(),
                            seq,
                        });
                        frame_for(member.encoding, &notice)
                    })
                    .clone()
            } else {
                frames.get(member.encoding, &self.stats)
            };
            let Some(frame) = frame else {
                continue;
            };
            if self.offer(member, seq, frame, ingest_us) {
                delivered += 1;
            }
        }
        drop(map);
        self.stats.delivered.fetch_add(delivered, Ordering::Relaxed);
    }

    /// Hands a control frame's signal to every local member of `canvas`.
    fn signal(&self, canvas: &CanvasId, event: &[u8]) {
        let signal = match busframe::Signal::decode(event) {
            Ok(signal) => signal,
            Err(err) => {
                self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%canvas, error = %err, "dropping unreadable control frame");
                return;
            }
        };
        let map = self.canvases.read();
        for member in map.get(canvas).into_iter().flatten() {
            member.control.signal(canvas, signal.clone());
        }
    }

    /// Tells every member of these canvases that events may have been missed.
    ///
    /// After a bus reconnect every member is also signalled to check its
    /// access again: a change signalled while this node was cut off from
    /// the bus would otherwise go unnoticed.
    pub fn resync(&self, canvases: &[CanvasId], reason: ResyncReason) {
        let map = self.canvases.read();
        for canvas in canvases {
            let Some(members) = map.get(canvas) else {
                continue;
            };
            if reason == ResyncReason::BusReconnected && !canvas.is_channel() {
                for member in members {
                    let recheck = busframe::Signal::Access { user: None };
                    member.control.signal(canvas, recheck);
                }
            }
            let notice = ServerMessage::Resync(Resync {
                canvas: canvas.clone(),
                reason,
            });
            let mut encoded: [Option<Message>; 2] = [None, None];
            for member in members {
                let slot = &mut encoded[member.encoding.index()];
                if slot.is_none() {
                    *slot = frame_for(member.encoding, &notice);
                }
                if let Some(frame) = slot.clone()
                    && self.offer(member, None, frame, 0)
                {
                    self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// After a bus reconnect: one member of each user's channel here is
    /// told to count again how many gateways share its user's rate limits
    /// (a `Spread` sent while this node was cut off from the bus would
    /// otherwise go unnoticed; the user's limits here are shared by its
    /// connections, so one count serves them all).
    pub fn respread(&self, channels: &[CanvasId]) {
        let map = self.canvases.read();
        for channel in channels {
            let Some(user) = channel.user_of_channel() else {
                continue;
            };
            if let Some(member) = map.get(channel).and_then(|m| m.iter().next()) {
                member
                    .control
                    .signal(channel, busframe::Signal::Spread { user });
            }
        }
    }

    /// Queues a frame without waiting (or holds it at a closed join gate);
    /// a full queue or gate closes the member.
    fn offer(&self, member: &Member, seq: Option<u64>, frame: Message, ingest_us: u64) -> bool {
        // A closing connection (its reader removes it soon) takes nothing.
        if member.control.is_closed() {
            return false;
        }
        if seq.is_some_and(|s| s <= member.gate.floor.load(Ordering::Acquire)) {
            return false;
        }
        if member.gate.holding.load(Ordering::Acquire) {
            let mut held = member.gate.held.lock();
            if member.gate.holding.load(Ordering::Acquire) {
                // Room for a resume replay's worth of live traffic.
                if held.len() < member.tx.capacity() * GATE_SLACK {
                    held.push((seq, frame, ingest_us));
                    return true;
                }
                drop(held);
                self.slow(member);
                return false;
            }
        }
        match member.tx.offer_at(frame, ingest_us) {
            Ok(()) => true,
            Err(Full(_)) => {
                self.slow(member);
                false
            }
        }
    }

    fn slow(&self, member: &Member) {
        if member.control.close(CloseCode::SlowConsumer) {
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            tracing::info!(conn = member.conn, "slow consumer: outbound queue full");
        }
    }
}

/// Encodes a message as the frame a client with this encoding receives.
pub fn frame_for(encoding: Encoding, msg: &ServerMessage) -> Option<Message> {
    match codec::encode(encoding, msg) {
        Ok(bytes) if encoding.is_binary() => Some(Message::Binary(Bytes::from(bytes))),
        Ok(bytes) => String::from_utf8(bytes)
            .ok()
            .map(|s| Message::Text(s.into())),
        Err(err) => {
            tracing::error!(error = %err, "failed to encode a server message");
            None
        }
    }
}

/// The frames of one event, built lazily and at most once per encoding.
///
/// An ephemeral event's MessagePack frame is the bus payload's tail as is.
/// Otherwise the event is decoded once, given its sequence number, and
/// encoded on first need for each encoding.
struct Frames {
    tail: Bytes,
    seq: Option<u64>,
    decoded: Option<Option<ServerMessage>>,
    encoded: [Option<Option<Message>>; 2],
}

impl Frames {
    fn new(tail: Bytes, seq: Option<u64>) -> Self {
        Frames {
            tail,
            seq,
            decoded: None,
            encoded: [None, None],
        }
    }

    fn get(&mut self, encoding: Encoding, stats: &HubStats) -> Option<Message> {
        if encoding == Encoding::Msgpack && self.seq.is_none() {
            return Some(Message::Binary(self.tail.clone()));
        }
        if self.encoded[encoding.index()].is_none() {
            let (tail, seq) = (&self.tail, self.seq);
            let decoded = self.decoded.get_or_insert_with(|| {
                match codec::decode_server(Encoding::Msgpack, tail) {
                    Ok(mut msg) => {
                        if let Some(seq) = seq {
                            msg.set_seq(seq);
                        }
                        Some(msg)
                    }
                    Err(err) => {
                        stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %err, "bus event is not a server message");
                        None
                    }
                }
            });
            let frame = decoded.as_ref().and_then(|msg| frame_for(encoding, msg));
            self.encoded[encoding.index()] = Some(frame);
        }
        self.encoded[encoding.index()].clone().flatten()
    }
}

#[cfg(test)]
mod tests;
