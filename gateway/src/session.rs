//! An authenticated connection's commands: join, leave, draw, cursor, chat,
//! ping. Validation rules live in `shared::validate`; this module applies
//! them, checks membership, publishes, and replies exactly once per command
//! that carried an id.

use crate::connection::Outbox;
use crate::limits::{ConnLimits, OpClass, UserLimits};
use crate::server::AppState;
use fanout::{Change, JoinGate, Member, PixelChange, Refusal};
use shared::CloseCode;
use shared::auth::{Identity, Role};
use shared::protocol::{
    AckResult, Author, ChatEvent, ClientMessage, CursorEvent, DrawEvent, HighlightEvent, Joined,
    ObjectsPage, Pong, PresenceList, Published, ResumeOutcome, ServerMessage,
};
use std::time::Duration;
use tokio::time::Instant;

/// Longest a resume replay may take to be queued (the client must read it);
/// a client that stalls longer is closed as a slow consumer.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

/// Suggested wait after `E013`: about one persister batch.
const BACKLOG_RETRY_MS: u64 = 1000;
use shared::validate::{self, CanvasGeometry, CommandLimits, HighlightTarget};
use shared::{CanvasId, ErrorCode, RequestId};

/// Per-connection command state.
pub(crate) struct Session<'a> {
    state: &'a AppState,
    out: &'a Outbox,
    /// Connection number on this node (the bus header's `conn`).
    conn: u64,
    /// Stamped on every event this connection causes.
    author: Author,
    /// Canvases this connection has joined, in join order, with their size
    /// and palette.
    joined: Vec<(CanvasId, CanvasGeometry, Role)>,
    /// The token's roles: per canvas, then its default (else the gateway's).
    canvas_roles: std::collections::BTreeMap<String, Role>,
    token_role: Option<Role>,
    /// Cursor coalescing, per canvas this connection has moved a cursor on.
    cursors: Vec<(CanvasId, CursorSlot)>,
    /// Channels this connection receives: its user's, and `global` once
    /// subscribed.
    channels: Vec<CanvasId>,
    /// This connection's rate limit buckets.
    limits: ConnLimits,
    /// Its user's, shared with the user's other connections here.
    user: &'a UserLimits,
    /// After a rate-limit refusal, nothing more is read from the connection
    /// until then (see [`MAX_READ_PAUSE`]).
    paused_until: Option<Instant>,
}

/// Longest a refusal pauses reading from its connection. A client flooding
/// past its limits then costs a few refusals a second instead of decoding
/// and refusing every frame it sends (its frames wait in the socket); a
/// well-behaved client's next command waits at most this long.
pub(crate) const MAX_READ_PAUSE: Duration = Duration::from_millis(100);

/// The cursor updates of one connection on one canvas: at most one is
/// published per `EASEL_CURSOR_HZ` interval; one arriving sooner waits,
/// replaced by any later one, and goes out when the interval is over.
#[derive(Default)]
struct CursorSlot {
    last_published: Option<Instant>,
    /// The latest update not yet published: position and receive time.
    pending: Option<(f32, f32, u64)>,
}

impl<'a> Session<'a> {
    pub fn new(
        state: &'a AppState,
        out: &'a Outbox,
        conn: u64,
        identity: &Identity,
        user: &'a UserLimits,
    ) -> Self {
        Session {
            limits: ConnLimits::new(&state.settings.rate_limits),
            user,
            paused_until: None,
            state,
            out,
            conn,
            author: identity.author(),
            joined: Vec::new(),
            canvas_roles: identity.canvas_roles.clone(),
            token_role: identity.default_role,
            cursors: Vec::new(),
            channels: Vec::new(),
        }
    }

    /// Joins the user's own channel, where notifications to the user
    /// arrive. Without it (the bus is down) the connection still works.
    pub async fn open_channels(&mut self) {
        let channel = CanvasId::user_channel(&self.author.id);
        if self.join_channel(&channel).await {
            self.channels.push(channel);
        }
    }

    async fn join_channel(&self, channel: &CanvasId) -> bool {
        let member = Member {
            conn: self.conn,
            encoding: self.out.encoding,
            echo: false,
            tx: self.out.queue(),
            control: self.out.control.clone(),
            gate: JoinGate::open(),
            gm: false,
        };
        match self.state.fanout.join(channel, member).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(%channel, error = %err, "channel not joined");
                false
            }
        }
    }

    /// `subscribe` / `unsubscribe` of a channel by name.
    async fn channel(&mut self, id: Option<RequestId>, name: &str, subscribe: bool) {
        let channel = match name {
            "global" => CanvasId::global_channel(),
            "online" => CanvasId::online_channel(),
            _ => {
                self.out.error(
                    id,
                    ErrorCode::InvalidValue,
                    format!("no channel {name:?}; the channels are \"global\" and \"online\""),
                );
                return;
            }
        };
        let at = self.channels.iter().position(|c| *c == channel);
        match (subscribe, at) {
            (true, None) => {
                if !self.join_channel(&channel).await {
                    self.out.error(
                        id,
                        ErrorCode::Unavailable,
                        "could not subscribe to the channel; try again",
                    );
                    return;
                }
                self.channels.push(channel);
            }
            (false, Some(at)) => {
                self.channels.remove(at);
                self.state.fanout.leave(&channel, self.conn);
            }
            // Already as asked.
            _ => {}
        }
        self.out.ack(id, None);
    }

    /// Pays for an operation from the rate limit buckets; on refusal
    /// replies E004 with `retry_after_ms` (and closes with 4029 after too
    /// many refusals) and returns false.
    fn pay(&mut self, id: &Option<RequestId>, class: OpClass, cost: usize) -> bool {
        let settings = &self.state.settings;
        let rates = (&settings.rate_limits, &settings.user_rate_limits);
        let Err(refused) = self.limits.take(rates, self.user, class, cost as f64) else {
            return true;
        };
        self.state
            .metrics
            .rate_limited
            .with_label_values(&[class.name()])
            .inc();
        let ms = refused.retry_after.as_millis() as u64 + 1;
        self.paused_until = Some(Instant::now() + refused.retry_after.min(MAX_READ_PAUSE));
        self.out.error_retry(
            id.clone(),
            ErrorCode::RateLimited,
            format!(
                "{} rate limit{}: not applied; retry in {ms} ms",
                class.name(),
                if refused.by_user {
                    " (shared by this user's connections)"
                } else {
                    ""
                }
            ),
            Some(ms),
        );
        if self.limits.refused(settings.rate_abuse_limit) {
            tracing::info!(
                class = class.name(),
                "closing: rate limits refused repeatedly"
            );
            self.out.control.close(CloseCode::RateLimited);
        }
        false
    }

    /// Until when reading from the connection is paused after a refusal,
    /// if that is still ahead.
    pub fn read_paused_until(&mut self) -> Option<Instant> {
        match self.paused_until {
            Some(at) if at > Instant::now() => Some(at),
            _ => {
                self.paused_until = None;
                None
            }
        }
    }

    /// When the next coalesced cursor update is due, if one waits.
    pub fn cursor_due(&self) -> Option<Instant> {
        let interval = self.state.settings.cursor_interval;
        self.cursors
            .iter()
            .filter(|(_, slot)| slot.pending.is_some())
            .filter_map(|(_, slot)| slot.last_published.map(|t| t + interval))
            .min()
    }

    /// Publishes the waiting cursor updates whose interval is over.
    pub async fn flush_cursors(&mut self) {
        let now = Instant::now();
        let interval = self.state.settings.cursor_interval;
        let mut due = Vec::new();
        for (canvas, slot) in &mut self.cursors {
            if slot.last_published.is_some_and(|t| t + interval <= now)
                && let Some(update) = slot.pending.take()
            {
                slot.last_published = Some(now);
                due.push((canvas.clone(), update));
            }
        }
        for (canvas, (x, y, ts)) in due {
            let event = self.cursor_event(&canvas, x, y, ts);
            self.publish(None, &canvas, &event).await;
        }
    }

    fn cursor_event(&self, canvas: &CanvasId, x: f32, y: f32, ts: u64) -> ServerMessage {
        ServerMessage::Cursor(CursorEvent {
            canvas: canvas.clone(),
            author: self.author.clone(),
            ts,
            x,
            y,
        })
    }

    /// Publishes a cursor update now, or keeps it for the end of the
    /// canvas's interval (acked at once: accepted, to be sent).
    async fn cursor(&mut self, id: Option<RequestId>, canvas: CanvasId, x: f32, y: f32) {
        let now = Instant::now();
        let ts = shared::now_ms();
        let interval = self.state.settings.cursor_interval;
        let slot = match self.cursors.iter().position(|(c, _)| *c == canvas) {
            Some(at) => &mut self.cursors[at].1,
            None => {
                self.cursors.push((canvas.clone(), CursorSlot::default()));
                &mut self.cursors.last_mut().expect("just pushed").1
            }
        };
        if slot.last_published.is_some_and(|t| now < t + interval) {
            slot.pending = Some((x, y, ts));
            self.out.ack(id, None);
            return;
        }
        slot.last_published = Some(now);
        slot.pending = None;
        let event = self.cursor_event(&canvas, x, y, ts);
        self.publish(id, &canvas, &event).await;
    }

    /// Handles one decoded command.
    pub async fn handle(&mut self, cmd: ClientMessage) {
        tracing::trace!(kind = cmd.kind(), "command");
        match cmd {
            ClientMessage::Handshake(h) => self.out.error(
                h.id,
                // Not fatal: the connection is authenticated already.
                ErrorCode::InvalidSession,
                "already authenticated",
            ),
            ClientMessage::Ping(p) => self.out.send(&ServerMessage::Pong(Pong {
                id: p.id,
                ts: p.ts,
                server_time: shared::now_ms(),
            })),
            ClientMessage::Join(j) => {
                let resume = match (j.since, j.epoch) {
                    (None, None) => None,
                    (Some(since), Some(epoch)) => Some((since, epoch)),
                    _ => {
                        self.out.error(
                            j.id,
                            ErrorCode::InvalidValue,
                            "resume needs both since and epoch",
                        );
                        return;
                    }
                };
                self.join(j.id, j.canvas, j.echo, resume).await
            }
            ClientMessage::Leave(l) => {
                if self.forget(&l.canvas) {
                    self.state.fanout.leave(&l.canvas, self.conn);
                    self.state
                        .presence
                        .leave(self.state, &l.canvas, self.conn)
                        .await;
                    self.out.ack(l.id, None);
                } else {
                    self.not_joined(l.id, &l.canvas);
                }
            }
            ClientMessage::Draw(d) => {
                let Some(geometry) = self.joined_as(&d.id, &d.canvas, "draw", Role::Player) else {
                    return;
                };
                let limits = CommandLimits {
                    max_pixels_per_draw: self.state.settings.max_pixels_per_draw,
                };
                match validate::draw(&d, &geometry, &limits) {
                    Ok(pixels) => {
                        if !self.pay(&d.id, OpClass::Pixels, pixels.len()) {
                            return;
                        }
                        let change = Change::Pixels(pixel_change(&geometry, &pixels));
                        let event = ServerMessage::Draw(DrawEvent {
                            canvas: d.canvas.clone(),
                            seq: None,
                            author: self.author.clone(),
                            ts: shared::now_ms(),
                            pixels,
                        });
                        self.publish_durable(d.id, &d.canvas, &event, Some(&change), None)
                            .await;
                    }
                    Err(invalid) => self.out.error(d.id, invalid.code, invalid.message),
                }
            }
            ClientMessage::Cursor(c) => {
                let Some(geometry) = self.joined_as(&c.id, &c.canvas, "cursor", Role::Spectator)
                else {
                    return;
                };
                match validate::cursor(&c, &geometry) {
                    Ok((x, y)) => {
                        if self.pay(&c.id, OpClass::Cursors, 1) {
                            self.cursor(c.id, c.canvas, x, y).await
                        }
                    }
                    Err(invalid) => self.out.error(c.id, invalid.code, invalid.message),
                }
            }
            ClientMessage::History(h) => {
                if self
                    .joined_as(&h.id, &h.canvas, "history", Role::Spectator)
                    .is_none()
                {
                    return;
                }
                let gm = self.role_on(&h.canvas) >= Role::Gm;
                let limit = match crate::api::page_limit(h.limit.map(|n| n as usize), 100) {
                    Ok(limit) => limit,
                    Err(message) => return self.out.error(h.id, ErrorCode::InvalidValue, message),
                };
                match crate::api::history_page(self.state, &h.canvas, h.since, limit, gm).await {
                    Ok(page) => self.out.ack(h.id, Some(AckResult::History(page))),
                    Err(err) => {
                        tracing::warn!(canvas = %h.canvas, error = %err, "history unavailable");
                        self.out
                            .error(h.id, ErrorCode::Unavailable, "history unavailable; retry");
                    }
                }
            }
            ClientMessage::ChatHistory(h) => {
                if self
                    .joined_as(&h.id, &h.canvas, "chat_history", Role::Spectator)
                    .is_none()
                {
                    return;
                }
                let limit = match crate::api::page_limit(h.limit.map(|n| n as usize), 50) {
                    Ok(limit) => limit,
                    Err(message) => return self.out.error(h.id, ErrorCode::InvalidValue, message),
                };
                match crate::api::chat_page(self.state, &h.canvas, h.before, limit).await {
                    Ok(page) => self.out.ack(h.id, Some(AckResult::Chat(page))),
                    Err(err) => {
                        tracing::warn!(canvas = %h.canvas, error = %err, "chat history unavailable");
                        self.out.error(
                            h.id,
                            ErrorCode::Unavailable,
                            "chat history unavailable; retry",
                        );
                    }
                }
            }
            ClientMessage::Objects(r) => {
                if self
                    .joined_as(&r.id, &r.canvas, "objects", Role::Spectator)
                    .is_none()
                {
                    return;
                }
                let gm = self.role_on(&r.canvas) >= Role::Gm;
                match self.state.fanout.objects(&r.canvas, gm).await {
                    Ok((position, objects)) => self.out.ack(
                        r.id,
                        Some(AckResult::Objects(ObjectsPage {
                            canvas: r.canvas,
                            seq: position.seq,
                            epoch: position.epoch,
                            objects,
                        })),
                    ),
                    Err(err) => {
                        tracing::warn!(canvas = %r.canvas, error = %err, "objects unavailable");
                        self.out
                            .error(r.id, ErrorCode::Unavailable, "objects unavailable; retry");
                    }
                }
            }
            ClientMessage::ObjectCreate(_)
            | ClientMessage::ObjectUpdate(_)
            | ClientMessage::ObjectMove(_)
            | ClientMessage::ObjectDelete(_)
            | ClientMessage::ObjectLike(_)
            | ClientMessage::Clear(_) => self.object_command(cmd).await,
            ClientMessage::Activity(a) => {
                let Some(geometry) = self.joined_as(&a.id, &a.canvas, "activity", Role::Spectator)
                else {
                    return;
                };
                let activity = match validate::activity(&a, &geometry) {
                    Ok(activity) => activity,
                    Err(invalid) => return self.out.error(a.id, invalid.code, invalid.message),
                };
                // Cursor-like: frequent, ephemeral, cheap.
                if !self.pay(&a.id, OpClass::Cursors, 1) {
                    return;
                }
                match self
                    .state
                    .presence
                    .set_activity(self.state, &a.canvas, self.conn, &self.author, activity)
                    .await
                {
                    Ok(_) => self.out.ack(a.id, None),
                    Err(err) => {
                        tracing::warn!(canvas = %a.canvas, error = %err, "activity not stored");
                        self.out
                            .error(a.id, ErrorCode::Unavailable, "activity not stored; retry");
                    }
                }
            }
            ClientMessage::Subscribe(c) => self.channel(c.id, &c.channel, true).await,
            ClientMessage::Unsubscribe(c) => self.channel(c.id, &c.channel, false).await,
            ClientMessage::Presence(p) => {
                if self
                    .joined_as(&p.id, &p.canvas, "presence", Role::Spectator)
                    .is_none()
                {
                    return;
                }
                let users = self.state.presence.list(self.state, &p.canvas).await;
                self.out.ack(
                    p.id,
                    Some(AckResult::Presence(PresenceList {
                        canvas: p.canvas,
                        users,
                    })),
                );
            }
            ClientMessage::Highlight(h) => {
                let Some(geometry) = self.joined_as(&h.id, &h.canvas, "highlight", Role::Spectator)
                else {
                    return;
                };
                match validate::highlight(&h, &geometry) {
                    Ok(target) => {
                        // Mentions are chat-like: they spend chat tokens.
                        if !self.pay(&h.id, OpClass::Chat, 1) {
                            return;
                        }
                        let (x, y, user) = match target {
                            HighlightTarget::Position(x, y) => (Some(x), Some(y), None),
                            HighlightTarget::User(u) => (None, None, Some(u)),
                        };
                        let event = ServerMessage::Highlight(HighlightEvent {
                            canvas: h.canvas.clone(),
                            author: self.author.clone(),
                            ts: shared::now_ms(),
                            x,
                            y,
                            user,
                            duration_ms: h.duration_ms,
                        });
                        self.publish(h.id, &h.canvas, &event).await;
                    }
                    Err(invalid) => self.out.error(h.id, invalid.code, invalid.message),
                }
            }
            ClientMessage::Chat(c) => {
                if self
                    .joined_as(&c.id, &c.canvas, "chat", Role::Spectator)
                    .is_none()
                {
                    return;
                }
                match validate::chat(&c) {
                    Ok(()) => {
                        if !self.pay(&c.id, OpClass::Chat, 1) {
                            return;
                        }
                        let event = ServerMessage::Chat(ChatEvent {
                            canvas: c.canvas.clone(),
                            seq: None,
                            author: self.author.clone(),
                            ts: shared::now_ms(),
                            text: c.text,
                        });
                        self.publish_durable(c.id, &c.canvas, &event, None, None)
                            .await;
                    }
                    Err(invalid) => self.out.error(c.id, invalid.code, invalid.message),
                }
            }
        }
    }

    /// Leaves every joined canvas (the connection is ending).
    pub async fn leave_all(&mut self) {
        self.state.online.leave(self.state, self.conn).await;
        for channel in self.channels.drain(..) {
            self.state.fanout.leave(&channel, self.conn);
        }
        for (canvas, _, _) in std::mem::take(&mut self.joined) {
            self.state.fanout.leave(&canvas, self.conn);
            self.state
                .presence
                .leave(self.state, &canvas, self.conn)
                .await;
        }
    }

    async fn join(
        &mut self,
        id: Option<RequestId>,
        canvas: CanvasId,
        echo: bool,
        resume: Option<(u64, String)>,
    ) {
        let already = self.joined.iter().any(|(c, _, _)| *c == canvas);
        let role = self
            .canvas_roles
            .get(canvas.as_str())
            .copied()
            .or(self.token_role)
            .unwrap_or(self.state.settings.default_role);
        let max = self.state.settings.max_canvases_per_connection;
        if !already && self.joined.len() >= max {
            self.out.error(
                id,
                ErrorCode::LimitReached,
                format!("already joined {max} canvases, the most one connection may join"),
            );
            return;
        }
        let geometry = match self.state.canvases.get(&canvas).await {
            Ok(Some(def)) => def.geometry(),
            Ok(None) => {
                self.out.error(
                    id,
                    ErrorCode::NotFound,
                    format!("no canvas {canvas:?}; create it first"),
                );
                return;
            }
            Err(err) => {
                tracing::warn!(%canvas, error = %err, "canvas catalogue unavailable");
                self.out.error(
                    id,
                    ErrorCode::Unavailable,
                    "canvas catalogue unavailable; try again",
                );
                return;
            }
        };
        // Subscribe first with the gate holding live events, then read the
        // position, queue the ack, and release what came after it: the
        // client sees every event after `seq` once and in order.
        let gate = JoinGate::holding();
        let member = Member {
            conn: self.conn,
            encoding: self.out.encoding,
            echo,
            tx: self.out.queue(),
            control: self.out.control.clone(),
            gate: gate.clone(),
            gm: role >= Role::Gm,
        };
        let joined = match self.state.fanout.join(&canvas, member).await {
            Ok(()) => self.state.fanout.position(&canvas).await,
            Err(err) => Err(err),
        };
        let joined = match joined {
            Ok(position) => match &resume {
                None => Ok((position, None, Vec::new())),
                Some((since, epoch)) => {
                    replay_plan(self.state, &canvas, &position, *since, Some(epoch))
                        .await
                        .map(|(outcome, events)| (position, Some(outcome), events))
                }
            },
            Err(err) => Err(err),
        };
        match joined {
            Ok((position, resume, replay)) => {
                if !already {
                    self.joined.push((canvas.clone(), geometry, role));
                }
                let (presence, presence_count) = self
                    .state
                    .presence
                    .enter(self.state, &canvas, self.conn, &self.author, role)
                    .await;
                tracing::debug!(%canvas, echo, seq = position.seq, ?resume, replay = replay.len(), "joined");
                if let Some(outcome) = resume {
                    self.state
                        .metrics
                        .resumes
                        .with_label_values(&[outcome.name()])
                        .inc();
                }
                self.out.ack(
                    id,
                    Some(AckResult::Joined(Joined {
                        canvas,
                        width: geometry.width,
                        height: geometry.height,
                        palette_size: geometry.palette_size,
                        echo,
                        seq: position.seq,
                        epoch: position.epoch,
                        resume,
                        role,
                        presence,
                        presence_count,
                    })),
                );
                // The replay and then the held live events wait for room in
                // the queue (the client reads at its own pace, bounded by
                // REPLAY_TIMEOUT); new live events meanwhile wait at the gate.
                let queue = self.out.queue();
                let delivered = tokio::time::timeout(REPLAY_TIMEOUT, async {
                    for (_, payload) in &replay {
                        if let Some(frame) =
                            fanout::client_frame(payload, self.out.encoding, role >= Role::Gm)
                        {
                            // Replays are history: no fan-out latency.
                            queue.offer_wait(frame, 0).await;
                        }
                    }
                    gate.release(position.seq, &queue).await;
                })
                .await;
                if delivered.is_err() {
                    self.out.control.close(CloseCode::SlowConsumer);
                }
            }
            Err(err) => {
                // Undo the membership (the hub may have kept it if only the
                // position read failed) and forget it here too.
                self.state.fanout.leave(&canvas, self.conn);
                self.forget(&canvas);
                tracing::warn!(%canvas, error = %err, "join failed");
                self.out.error(
                    id,
                    ErrorCode::Unavailable,
                    "could not subscribe to the canvas; try again",
                );
            }
        }
    }

    /// The canvas's geometry if this connection joined it with at least
    /// the role `op` needs; otherwise replies E010 or E008 and returns None.
    fn joined_as(
        &self,
        id: &Option<RequestId>,
        canvas: &CanvasId,
        op: &str,
        needed: Role,
    ) -> Option<CanvasGeometry> {
        let Some((_, geometry, role)) = self.joined.iter().find(|(c, _, _)| c == canvas) else {
            self.not_joined(id.clone(), canvas);
            return None;
        };
        if *role < needed {
            self.out.error(
                id.clone(),
                ErrorCode::Forbidden,
                format!(
                    "{op} needs the {} role on canvas {canvas:?}; this connection is {}",
                    needed.name(),
                    role.name()
                ),
            );
            return None;
        }
        Some(*geometry)
    }

    /// The connection's role on a joined canvas (spectator if not joined).
    fn role_on(&self, canvas: &CanvasId) -> Role {
        self.joined
            .iter()
            .find(|(c, _, _)| c == canvas)
            .map_or(Role::Spectator, |(_, _, role)| *role)
    }

    /// An object command or clear: role, validation, rate, then the
    /// atomic publish that applies the canvas-state rules.
    async fn object_command(&mut self, cmd: ClientMessage) {
        let Some((id, canvas, op)) = crate::objects::target(&cmd) else {
            return;
        };
        let canvas = canvas.clone();
        let needed = crate::objects::needed(&cmd);
        let Some(geometry) = self.joined_as(&id, &canvas, op, needed) else {
            return;
        };
        let gm = self.role_on(&canvas) >= Role::Gm;
        let max = self.state.settings.max_objects_per_canvas;
        match crate::objects::prepare(cmd, &geometry, &self.author, gm, max) {
            Ok(p) => {
                if !self.pay(&id, OpClass::Objects, 1) {
                    return;
                }
                self.publish_durable(id, &canvas, &p.event, Some(&p.change), p.created)
                    .await;
            }
            Err(invalid) => self.out.error(id, invalid.code, invalid.message),
        }
    }

    fn not_joined(&self, id: Option<RequestId>, canvas: &CanvasId) {
        self.out.error(
            id,
            ErrorCode::NotJoined,
            format!("not joined to canvas {canvas:?}; send join first"),
        );
    }

    fn forget(&mut self, canvas: &CanvasId) -> bool {
        self.cursors.retain(|(c, _)| c != canvas);
        match self.joined.iter().position(|(c, _, _)| c == canvas) {
            Some(at) => {
                self.joined.remove(at);
                true
            }
            None => false,
        }
    }

    /// Publishes a durable event and acks with its sequence number (and
    /// `created`, the id of an object it creates); an operation that changes
    /// nothing is acked without a result.
    async fn publish_durable(
        &self,
        id: Option<RequestId>,
        canvas: &CanvasId,
        event: &ServerMessage,
        change: Option<&Change>,
        created: Option<String>,
    ) {
        // A canvas deleted since the join takes no more writes (noticed
        // within the catalogue cache's TTL; its members were told).
        if !self.state.canvases.exists(canvas).await {
            self.out.error(
                id,
                ErrorCode::NotFound,
                format!("canvas {canvas:?} was deleted; nothing was applied"),
            );
            return;
        }
        let header = self.state.bus_header(self.conn);
        let started = std::time::Instant::now();
        let published = self
            .state
            .fanout
            .publish_durable(canvas, &header, event, change)
            .await;
        self.state
            .metrics
            .publish_durable
            .observe(started.elapsed().as_secs_f64());
        match published {
            Ok(Some(seq)) => self.out.ack(
                id,
                Some(AckResult::Published(Published {
                    seq,
                    object: created,
                })),
            ),
            Ok(None) => self.out.ack(id, None),
            Err(fanout::BusError::Refused(refusal)) => {
                let code = match refusal {
                    Refusal::NoObject => ErrorCode::NotFound,
                    Refusal::NotOwner => ErrorCode::Forbidden,
                    Refusal::Full => ErrorCode::LimitReached,
                    Refusal::Exists => ErrorCode::InvalidValue,
                };
                self.out
                    .error(id, code, format!("{refusal}; nothing was applied"));
            }
            Err(fanout::BusError::BacklogFull { backlog }) => {
                tracing::warn!(%canvas, backlog, "durable write refused: backlog full");
                self.state.metrics.durable_refused.inc();
                self.out.error_retry(
                    id,
                    ErrorCode::BacklogFull,
                    format!(
                        "{backlog} events on this canvas are waiting to be persisted; not applied, retry later"
                    ),
                    Some(BACKLOG_RETRY_MS),
                );
            }
            Err(err) => {
                tracing::warn!(%canvas, error = %err, "durable publish failed");
                self.out.error(
                    id,
                    ErrorCode::Unavailable,
                    "canvas log unavailable; the operation was not applied",
                );
            }
        }
    }

    /// Publishes an ephemeral event and acks without a result.
    async fn publish(&self, id: Option<RequestId>, canvas: &CanvasId, event: &ServerMessage) {
        let header = self.state.bus_header(self.conn);
        let started = std::time::Instant::now();
        let published = self.state.fanout.publish(canvas, &header, event).await;
        self.state
            .metrics
            .publish_ephemeral
            .observe(started.elapsed().as_secs_f64());
        match published {
            Ok(()) => self.out.ack(id, None),
            Err(err) => {
                tracing::warn!(%canvas, error = %err, "publish failed");
                self.out.error(
                    id,
                    ErrorCode::Unavailable,
                    "event bus unavailable; the operation was not applied",
                );
            }
        }
    }
}

/// The change a validated draw makes to the canvas state.
pub(crate) fn pixel_change(
    geometry: &CanvasGeometry,
    pixels: &[shared::protocol::Pixel],
) -> PixelChange {
    PixelChange {
        bits: PixelChange::bits_for(geometry.palette_size),
        cell_count: geometry.width as usize * geometry.height as usize,
        cells: pixels
            .iter()
            .map(|p| (p.y * geometry.width + p.x, p.color))
            .collect(),
    }
}

/// Decides whether a resume can replay the events after `since` (in
/// `epoch`, when the client knows it), and reads them if so.
pub(crate) async fn replay_plan(
    state: &AppState,
    canvas: &CanvasId,
    position: &fanout::Position,
    since: u64,
    epoch: Option<&str>,
) -> Result<(ResumeOutcome, Vec<(u64, bytes::Bytes)>), fanout::BusError> {
    if epoch.is_some_and(|e| e != position.epoch) {
        return Ok((ResumeOutcome::EpochChanged, Vec::new()));
    }
    if since > position.seq {
        return Ok((ResumeOutcome::Ahead, Vec::new()));
    }
    let missed = position.seq - since;
    if missed == 0 {
        return Ok((ResumeOutcome::Replayed, Vec::new()));
    }
    if missed > state.settings.max_replay_events as u64 {
        return Ok((ResumeOutcome::HistoryUnavailable, Vec::new()));
    }
    let events = state
        .fanout
        .events(canvas, since, position.seq, missed as usize)
        .await?;
    // Complete and gapless, or not at all: the log may have been trimmed.
    let complete = events.len() as u64 == missed
        && events
            .iter()
            .zip(since + 1..)
            .all(|((seq, _), expected)| *seq == expected);
    if complete {
        Ok((ResumeOutcome::Replayed, events))
    } else {
        Ok((ResumeOutcome::HistoryUnavailable, Vec::new()))
    }
}
