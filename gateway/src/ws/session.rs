//! An authenticated WebSocket connection's command state: the canvases it
//! joined (with their size and its role), its channels, its cursor
//! coalescing and its rate-limit buckets. Each command goes to its
//! operation in `crate::ops`; this module only tracks membership, pays,
//! and replies exactly once per command that carried an id.

mod signals;

use super::outbox::Outbox;
use crate::limits::{ConnLimits, OpClass, UserLimits};
use crate::ops::{self, Caller, OpError, Payer};
use crate::state::AppState;
use fanout::{JoinGate, Member};
use shared::CloseCode;
use shared::auth::{Identity, Role};
use shared::protocol::{AckResult, Author, ClientMessage, Join, Joined, Pong, ServerMessage};
use shared::validate::CanvasGeometry;
use shared::{CanvasId, ErrorCode};
use std::time::Duration;
use tokio::time::Instant;

/// Longest a resume replay may take to be queued (the client must read it);
/// a client that stalls longer is closed as a slow consumer.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a refusal pauses reading from its connection. A client flooding
/// past its limits then costs a few refusals a second instead of decoding
/// and refusing every frame it sends (its frames wait in the socket); a
/// well-behaved client's next command waits at most this long.
const MAX_READ_PAUSE: Duration = Duration::from_millis(100);

/// What a command answers when it succeeds.
enum Reply {
    /// An `ack` (when the command had an id), with or without a result.
    Ack(Option<AckResult>),
    /// The command has replied itself (a pong, a join's ack before its
    /// replay).
    Sent,
}

/// A joined canvas.
struct Membership {
    canvas: CanvasId,
    geometry: CanvasGeometry,
    role: Role,
}

/// The cursor updates of one connection on one canvas: at most one is
/// published per `EASEL_CURSOR_HZ` interval; one arriving sooner waits,
/// replaced by any later one, and goes out when the interval is over.
#[derive(Default)]
struct CursorSlot {
    last_published: Option<Instant>,
    /// The latest update not yet published: position and receive time.
    pending: Option<((f32, f32), u64)>,
}

/// A connection's rate limits: its buckets and its user's, and what a
/// refusal does to the connection.
struct Rates<'a> {
    state: &'a AppState,
    /// This connection's rate limit buckets.
    limits: ConnLimits,
    /// Its user's, shared with the user's other connections here.
    user: &'a UserLimits,
    /// After a rate-limit refusal, nothing more is read from the connection
    /// until then (see [`MAX_READ_PAUSE`]).
    paused_until: Option<Instant>,
    /// Set when refusals came too often: the connection closes with it
    /// once the refusal is queued.
    close: Option<CloseCode>,
}

impl Payer for Rates<'_> {
    fn pay(&mut self, class: OpClass, cost: usize) -> Result<(), OpError> {
        let settings = &self.state.settings;
        let rates = (&settings.rate_limits, &settings.user_rate_limits);
        let Err(refused) = self.limits.take(rates, self.user, class, cost as f64) else {
            return Ok(());
        };
        self.paused_until = Some(Instant::now() + refused.retry_after.min(MAX_READ_PAUSE));
        if self.limits.refused(settings.rate_abuse_limit) {
            tracing::info!(
                class = class.name(),
                "closing: rate limits refused repeatedly"
            );
            self.close = Some(CloseCode::RateLimited);
        }
        Err(ops::rate_refusal(
            self.state,
            class,
            refused.retry_after,
            refused.by_user,
        ))
    }
}

/// Per-connection command state.
pub(crate) struct Session<'a> {
    state: &'a AppState,
    out: &'a Outbox,
    /// Connection number on this node (the bus header's `conn`).
    conn: u64,
    /// Stamped on every event this connection causes.
    author: Author,
    /// Canvases this connection has joined, in join order.
    joined: Vec<Membership>,
    /// The token's roles: per canvas, then its default (else the gateway's).
    identity: Identity,
    /// Cursor coalescing, per canvas this connection has moved a cursor on.
    cursors: Vec<(CanvasId, CursorSlot)>,
    /// Channels this connection receives: its user's, and `global` or
    /// `online` once subscribed.
    channels: Vec<CanvasId>,
    rates: Rates<'a>,
    /// See [`Session::expiry`].
    expiry: Option<Instant>,
}

impl<'a> Session<'a> {
    pub fn new(
        state: &'a AppState,
        out: &'a Outbox,
        identity: Identity,
        user: &'a UserLimits,
    ) -> Self {
        Session {
            rates: Rates {
                state,
                limits: ConnLimits::new(&state.settings.rate_limits),
                user,
                paused_until: None,
                close: None,
            },
            state,
            out,
            conn: out.conn,
            author: identity.author(),
            joined: Vec::new(),
            expiry: expiry(state, &identity),
            identity,
            cursors: Vec::new(),
            channels: Vec::new(),
        }
    }

    /// The connection's user id, once the session is over (for its close
    /// line).
    pub fn into_user_id(self) -> String {
        self.identity.user_id
    }

    /// Where this connection's replies and frames go.
    pub fn out(&self) -> &'a Outbox {
        self.out
    }

    /// Joins the user's own channel, where notifications to the user
    /// arrive. Without it (the bus is down) the connection still works.
    pub async fn open_channels(&mut self) {
        let channel = CanvasId::user_channel(&self.author.id);
        match self.join_channel(&channel).await {
            Ok(()) => {
                // Exact: most connections hold this one channel for life.
                self.channels.reserve_exact(1);
                self.channels.push(channel);
            }
            Err(err) => tracing::warn!(%channel, error = %err.message, "channel not joined"),
        }
    }

    /// Handles one decoded command and replies to it.
    pub async fn handle(&mut self, cmd: ClientMessage) {
        tracing::trace!(kind = cmd.kind(), "command");
        let id = cmd.id().cloned();
        // For the webhook feed's `refused`; no copy when the feed is off.
        let kind = cmd.kind();
        let canvas = self
            .state
            .feed
            .is_on()
            .then(|| cmd.canvas().cloned())
            .flatten();
        match self.run(cmd).await {
            Ok(Reply::Ack(result)) => self.out.ack(id, result),
            Ok(Reply::Sent) => {}
            Err(err) => {
                if let (ErrorCode::Forbidden, Some(canvas)) = (err.code, &canvas) {
                    let feed = &self.state.feed;
                    feed.refused(canvas, &self.author, kind, &err.message);
                }
                self.out.fail(id, err)
            }
        }
        if let Some(code) = self.rates.close.take() {
            self.out.control.close(code);
        }
    }

    async fn run(&mut self, cmd: ClientMessage) -> Result<Reply, OpError> {
        let state = self.state;
        match cmd {
            ClientMessage::Handshake(_) => Err(OpError::new(
                // Not fatal: the connection is authenticated already.
                ErrorCode::InvalidSession,
                "already authenticated",
            )),
            ClientMessage::Refresh(r) => self.refresh(&r.token),
            ClientMessage::Ping(p) => {
                self.out.send(&ServerMessage::Pong(Pong {
                    id: p.id,
                    ts: p.ts,
                    server_time: shared::now_ms(),
                }));
                Ok(Reply::Sent)
            }
            ClientMessage::Join(j) => self.join(j).await,
            ClientMessage::Leave(l) => {
                if !self.forget(&l.canvas) {
                    return Err(not_joined(&l.canvas));
                }
                state.bus.leave(&l.canvas, self.conn);
                state.presence.leave(&l.canvas, self.conn).await;
                Ok(Reply::Ack(None))
            }
            ClientMessage::Cursor(c) => {
                let (caller, geometry) = self.on(&c.canvas)?;
                let position = ops::cursors::accept(&caller, &mut self.rates, &geometry, &c)?;
                self.cursor(&caller, c.canvas, position).await?;
                Ok(Reply::Ack(None))
            }
            ClientMessage::Activity(a) => {
                let (caller, geometry) = self.on(&a.canvas)?;
                ops::presence::activity(state, &caller, &mut self.rates, &geometry, &a).await?;
                Ok(Reply::Ack(None))
            }
            ClientMessage::Subscribe(c) => self.channel(&c.channel, true).await,
            ClientMessage::Unsubscribe(c) => self.channel(&c.channel, false).await,
            cmd => {
                // Every other command names a canvas this connection joined.
                let Some(canvas) = cmd.canvas().cloned() else {
                    return Ok(Reply::Ack(None));
                };
                let (caller, geometry) = self.on(&canvas)?;
                let rates = &mut self.rates;
                let done = ops::dispatch::canvas_command(state, &caller, rates, &geometry, cmd);
                Ok(Reply::Ack(done.await?))
            }
        }
    }

    /// Takes a new token for the same user: its expiry replaces the old
    /// one's, its roles apply to canvases joined from now on. A token that
    /// fails verification or names another user is E002 (fatal, as at
    /// connect).
    fn refresh(&mut self, token: &str) -> Result<Reply, OpError> {
        let metrics = &self.state.metrics;
        let identity = match self.state.verifier.verify(token) {
            Ok(identity) => identity,
            Err(err) => {
                let reason = err.reason();
                metrics.auth_failures.with_label_values(&[reason]).inc();
                let message = format!("refresh refused: {err}");
                return Err(OpError::new(ErrorCode::AuthFailed, message));
            }
        };
        if identity.user_id != self.identity.user_id {
            metrics
                .auth_failures
                .with_label_values(&["refresh_other_user"])
                .inc();
            return Err(OpError::new(
                ErrorCode::AuthFailed,
                "refresh refused: the token names another user than this connection's",
            ));
        }
        tracing::debug!(expires_at = identity.expires_at, "token refreshed");
        self.expiry = expiry(self.state, &identity);
        self.identity = identity;
        Ok(Reply::Ack(None))
    }

    /// When the connection's token expires (with the allowed clock skew):
    /// the connection closes then with `4003` unless refreshed.
    pub fn expiry(&self) -> Option<Instant> {
        self.expiry
    }

    /// Until when reading from the connection is paused after a refusal,
    /// if that is still ahead.
    pub fn read_paused_until(&mut self) -> Option<Instant> {
        match self.rates.paused_until {
            Some(at) if at > Instant::now() => Some(at),
            _ => {
                self.rates.paused_until = None;
                None
            }
        }
    }

    /// The caller on a joined canvas, and the canvas's geometry; E010 if
    /// this connection has not joined it.
    fn on(&self, canvas: &CanvasId) -> Result<(Caller, CanvasGeometry), OpError> {
        let Some(m) = self.joined.iter().find(|m| m.canvas == *canvas) else {
            return Err(not_joined(canvas));
        };
        let caller = Caller {
            author: self.author.clone(),
            conn: self.conn,
            role: m.role,
        };
        Ok((caller, m.geometry))
    }

    fn forget(&mut self, canvas: &CanvasId) -> bool {
        self.cursors.retain(|(c, _)| c != canvas);
        let before = self.joined.len();
        self.joined.retain(|m| m.canvas != *canvas);
        self.joined.len() < before
    }

    /// Leaves every joined canvas and channel (the connection is ending).
    pub async fn leave_all(&mut self) {
        let state = self.state;
        let last_here = crate::spread::last_here(state, self.rates.user);
        state.online.leave(self.conn).await;
        if last_here {
            crate::spread::left(state, &self.identity.user_id).await;
        }
        for channel in self.channels.drain(..) {
            state.bus.leave(&channel, self.conn);
        }
        for m in std::mem::take(&mut self.joined) {
            state.bus.leave(&m.canvas, self.conn);
            state.presence.leave(&m.canvas, self.conn).await;
        }
    }
}

/// When a token's `exp` (plus the verifier's clock skew) passes, as a
/// monotonic instant; `None` for one beyond any connection's life.
fn expiry(state: &AppState, identity: &Identity) -> Option<Instant> {
    let until_ms = identity
        .expires_at
        .saturating_add(state.verifier.leeway_secs())
        .saturating_mul(1000)
        .saturating_sub(shared::now_ms());
    const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
    (until_ms < YEAR_MS).then(|| Instant::now() + Duration::from_millis(until_ms))
}

fn not_joined(canvas: &CanvasId) -> OpError {
    OpError::new(
        ErrorCode::NotJoined,
        format!("not joined to canvas {canvas:?}; send join first"),
    )
}

/// Joining: canvases, channels and cursors (the parts that keep state
/// between commands).
impl Session<'_> {
    async fn join(&mut self, j: Join) -> Result<Reply, OpError> {
        let state = self.state;
        let since = match (j.since, j.epoch.as_deref()) {
            (None, None) => None,
            (Some(seq), Some(epoch)) => Some(ops::canvas::Since {
                seq,
                epoch: Some(epoch),
            }),
            _ => {
                return Err(OpError::new(
                    ErrorCode::InvalidValue,
                    "resume needs both since and epoch",
                ));
            }
        };
        let canvas = j.canvas;
        let already = self.joined.iter().any(|m| m.canvas == canvas);
        let max = state.settings.max_canvases_per_connection;
        if !already && self.joined.len() >= max {
            return Err(OpError::new(
                ErrorCode::LimitReached,
                format!("already joined {max} canvases, the most one connection may join"),
            ));
        }
        let entry = ops::access::enter(state, &self.identity, &canvas).await?;
        let (role, geometry) = (entry.role, entry.def.geometry());
        // Subscribe with the gate holding live events, then read the
        // position, queue the ack, and release what came after it: the
        // client sees every event after `seq` once and in order.
        let gate = JoinGate::holding();
        let member = self.member(gate.clone(), j.echo, role >= Role::Gm);
        let subscribed = match ops::canvas::subscribe(state, &canvas, member, since).await {
            Ok(s) => s,
            Err(err) => {
                self.forget(&canvas);
                return Err(err);
            }
        };
        if !already {
            // Exact: most connections join one canvas, and a Vec's first
            // growth would hold four.
            self.joined.reserve_exact(1);
            self.joined.push(Membership {
                canvas: canvas.clone(),
                geometry,
                role,
            });
        }
        let (presence, presence_count) = state
            .presence
            .enter(&canvas, self.conn, &self.author, role)
            .await;
        let position = subscribed.position;
        tracing::debug!(%canvas, echo = j.echo, seq = position.seq, resume = ?subscribed.resume, replay = subscribed.replay.len(), "joined");
        if let Some(outcome) = subscribed.resume {
            state
                .metrics
                .resumes
                .with_label_values(&[outcome.name()])
                .inc();
        }
        let joined = Joined {
            canvas,
            width: geometry.width,
            height: geometry.height,
            palette_size: geometry.palette_size,
            echo: j.echo,
            seq: position.seq,
            epoch: position.epoch,
            resume: subscribed.resume,
            role,
            presence,
            presence_count,
        };
        self.out.ack(j.id, Some(AckResult::Joined(joined)));
        // The replay and then the held live events wait for room in the
        // queue (the client reads at its own pace, bounded by
        // REPLAY_TIMEOUT); new live events meanwhile wait at the gate.
        let queue = self.out.queue();
        let (encoding, gm) = (self.out.encoding, role >= Role::Gm);
        let delivered = tokio::time::timeout(REPLAY_TIMEOUT, async {
            ops::canvas::queue_replay(&queue, &subscribed.replay, encoding, gm).await;
            gate.release(position.seq, &queue).await;
        })
        .await;
        if delivered.is_err() {
            self.out.control.close(CloseCode::SlowConsumer);
        }
        Ok(Reply::Sent)
    }

    /// This connection as a hub member.
    fn member(&self, gate: std::sync::Arc<JoinGate>, echo: bool, gm: bool) -> Member {
        Member {
            conn: self.conn,
            encoding: self.out.encoding,
            echo,
            tx: self.out.queue(),
            control: self.out.control.clone(),
            gate,
            gm,
            signals_only: false,
        }
    }

    async fn join_channel(&self, channel: &CanvasId) -> Result<(), OpError> {
        let member = self.member(JoinGate::open(), false, false);
        self.state.bus.join(channel, member).await.map_err(|err| {
            tracing::warn!(%channel, error = %err, "channel not joined");
            OpError::new(
                ErrorCode::Unavailable,
                "could not subscribe to the channel; try again",
            )
        })
    }

    /// `subscribe` / `unsubscribe` of a channel by name.
    async fn channel(&mut self, name: &str, subscribe: bool) -> Result<Reply, OpError> {
        let channel = ops::channels::by_name(name)?;
        let at = self.channels.iter().position(|c| *c == channel);
        match (subscribe, at) {
            (true, None) => {
                self.join_channel(&channel).await?;
                self.channels.push(channel);
            }
            (false, Some(at)) => {
                self.channels.remove(at);
                self.state.bus.leave(&channel, self.conn);
            }
            // Already as asked.
            _ => {}
        }
        Ok(Reply::Ack(None))
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
        for (canvas, (position, ts)) in due {
            let Ok((caller, _)) = self.on(&canvas) else {
                continue;
            };
            if let Err(err) =
                ops::cursors::publish(self.state, &caller, &canvas, position, ts).await
            {
                tracing::debug!(%canvas, error = %err.message, "coalesced cursor not published");
            }
        }
    }

    /// Publishes a cursor update now, or keeps it for the end of the
    /// canvas's interval (acked at once: accepted, to be sent).
    async fn cursor(
        &mut self,
        caller: &Caller,
        canvas: CanvasId,
        position: (f32, f32),
    ) -> Result<(), OpError> {
        let now = Instant::now();
        let ts = shared::now_ms();
        let interval = self.state.settings.cursor_interval;
        let at = match self.cursors.iter().position(|(c, _)| *c == canvas) {
            Some(at) => at,
            None => {
                self.cursors.push((canvas.clone(), CursorSlot::default()));
                self.cursors.len() - 1
            }
        };
        let slot = &mut self.cursors[at].1;
        if slot.last_published.is_some_and(|t| now < t + interval) {
            slot.pending = Some((position, ts));
            return Ok(());
        }
        slot.last_published = Some(now);
        slot.pending = None;
        ops::cursors::publish(self.state, caller, &canvas, position, ts).await
    }
}
