//! One WebSocket connection: authentication, the read loop, and a clean
//! close.
//!
//! The connection task reads; a separate writer task writes (see
//! `writer.rs`). Both stop when the connection's [`ConnControl`] is closed,
//! which the reader does on a fatal error or shutdown and the hub does when
//! the outbound queue is full.

use super::frames::{Frame, Inbound, classify, on_frame, read_failed, wrong_kind};
use super::outbox::Outbox;
use super::session::Session;
use super::writer::{self, CLOSE_TIMEOUT, SLOW_CLOSE_TIMEOUT, WsSink, WsStream};
use crate::limits::{ClassRates, OpClass};
use crate::state::AppState;
use fanout::{Attention, ConnControl, Outbound};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use shared::auth::Identity;
use shared::codec::{self, Encoding};
use shared::protocol::{
    AnnouncedLimits, AnnouncedRate, ClientMessage, ErrorReply, ServerMessage, UserInfo, Welcome,
};
use shared::{CloseCode, ErrorCode, RequestId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

/// How long a closing connection keeps reading (and discarding) after its
/// close frame, so the peer reads the close frame instead of a TCP reset.
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// What the upgrade handler learned about a connection.
pub(crate) struct Accepted {
    pub conn: u64,
    pub peer: SocketAddr,
    pub encoding: Encoding,
    /// Token from the URL or the Authorization header, if any.
    pub token: Option<String>,
}

/// Keeps the open-connections count right however the task ends.
struct OpenGuard<'a>(&'a AppState);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.connections_open.dec();
    }
}

/// What a connection's task owns once its writer runs: taken whole by
/// [`serve_inner`] and used in place, so its future holds each part once.
struct Conn {
    state: Arc<AppState>,
    stream: SplitStream<WsStream>,
    out: Outbox,
    writer: JoinHandle<WsSink>,
    /// Token from the URL or the Authorization header, taken by
    /// authentication.
    token: Option<String>,
    /// For the close line.
    peer: SocketAddr,
}

/// Serves one upgraded connection to the end.
///
/// A plain function that starts the writer and returns the instrumented
/// future, so no coroutine keeps copies of the arguments (the sink is the
/// writer's from the start).
pub(crate) fn serve(
    state: Arc<AppState>,
    stream: SplitStream<WsStream>,
    sink: WsSink,
    accepted: Accepted,
) -> impl std::future::Future<Output = ()> {
    // At debug level: an enabled span is ~400 bytes per connection in the
    // log subscriber (its formatted fields and extension map), 5% of a
    // connection. At info the close line names the connection instead.
    let span = tracing::debug_span!(
        "conn",
        id = %ConnId(&state.settings.node_id, accepted.conn),
        peer = %accepted.peer,
        user = tracing::field::Empty,
    );
    let s = &state.settings;
    let m = &state.metrics;
    let tx = Arc::new(Outbound::bounded(s.outbound_queue, s.outbound_queue_bytes));
    let control = Arc::new(ConnControl::new());
    let writer = tokio::spawn(writer::run(writer::Writer {
        sink,
        rx: tx.clone(),
        control: control.clone(),
        config: writer::WriterConfig {
            flush_delay: s.flush_delay,
            fanout_latency: m.fanout_latency.clone(),
            bytes_sent: m.bytes_sent.clone(),
            frames_written: m.frames_written.clone(),
            writes: m.writes.clone(),
        },
    }));
    let out = Outbox {
        conn: accepted.conn,
        tx,
        errors: m.errors.clone(),
        sent: m.messages_sent.clone(),
        control,
        encoding: accepted.encoding,
    };
    let conn = Conn {
        state,
        stream,
        out,
        writer,
        token: accepted.token,
        peer: accepted.peer,
    };
    serve_inner(conn).instrument(span)
}

/// The connection's life. A block rather than an `async fn`, so `c` is
/// held once (see `writer::run`).
#[allow(clippy::manual_async_fn)] // the layout, see above
fn serve_inner(mut c: Conn) -> impl std::future::Future<Output = ()> {
    async move {
        let state = &*c.state;
        state.metrics.connections_open.inc();
        state.metrics.connections_opened.inc();
        let _open = OpenGuard(state);
        let started = Instant::now();
        // Authentication and the lingering close run once each; boxing keeps
        // their state (timers, a discard buffer) out of the long-lived future.
        let authenticated =
            Box::pin(authenticate(state, &mut c.stream, &c.out, c.token.take())).await;
        let mut writer_done = None;
        let mut user = None;
        if let Some((identity, handshake_id)) = authenticated {
            tracing::Span::current().record("user", identity.user_id.as_str());
            tracing::debug!("authenticated");
            // Every await below that is not the read loop is boxed: inline, the
            // deepest one's state (a Redis round trip) would be part of the
            // connection future for its whole life (this kept idle connections
            // at 15-17 KiB instead of 7).
            match Box::pin(crate::ops::access::admit_user(state, c.out.conn, &identity)).await {
                Ok(slot) => {
                    c.out.ack(handshake_id, None);
                    c.out
                        .send(&welcome(state, c.out.conn, &identity, c.out.encoding));
                    let mut session = Session::new(state, &c.out, identity, &slot.limits);
                    Box::pin(session.open_channels()).await;
                    writer_done =
                        read_loop(state, &mut c.stream, &mut c.writer, &mut session).await;
                    Box::pin(session.leave_all()).await;
                    user = Some(session.into_user_id());
                }
                Err(refused) => {
                    c.out.fail(handshake_id, refused);
                    c.out.control.close(CloseCode::TooManyConnections);
                    user = Some(identity.user_id);
                }
            }
        }
        // Whatever ended the connection, make sure the writer stops.
        let control = &c.out.control;
        control.close(CloseCode::Normal);
        let sink = match writer_done {
            Some(sink) => Some(sink),
            None => Box::pin(tokio::time::timeout(
                SLOW_CLOSE_TIMEOUT + CLOSE_TIMEOUT,
                &mut c.writer,
            ))
            .await
            .ok()
            .and_then(Result::ok),
        };
        if let Some(sink) = sink {
            Box::pin(linger(c.stream, sink)).await;
        }
        let reason = control.reason().unwrap_or(CloseCode::Normal);
        state
            .metrics
            .connections_closed
            .with_label_values(&[reason.name()])
            .inc();
        tracing::info!(
            conn = %ConnId(&state.settings.node_id, c.out.conn),
            peer = %c.peer,
            user = user.as_deref().unwrap_or_default(),
            reason = reason.name(),
            close_code = reason.code(),
            duration_ms = started.elapsed().as_millis() as u64,
            "connection closed"
        );
    }
}

/// A connection's id as clients and logs see it: `NODE-N`.
struct ConnId<'a>(&'a str, u64);

impl std::fmt::Display for ConnId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

fn welcome(state: &AppState, conn: u64, identity: &Identity, encoding: Encoding) -> ServerMessage {
    let s = &state.settings;
    ServerMessage::Welcome(Welcome {
        connection_id: ConnId(&s.node_id, conn).to_string(),
        user: UserInfo {
            id: identity.user_id.clone(),
            name: identity.name.clone(),
        },
        node: s.node_id.clone(),
        server_time: shared::now_ms(),
        encoding,
        limits: AnnouncedLimits {
            max_message_bytes: s.max_message_bytes as u32,
            max_canvases: s.max_canvases_per_connection as u32,
            max_pixels_per_draw: s.max_pixels_per_draw as u32,
            max_chat_chars: shared::validate::MAX_CHAT_CHARS as u32,
            ping_interval_ms: s.ping_interval.as_millis() as u64,
            idle_timeout_ms: s.idle_timeout.as_millis() as u64,
            rate_limits: announced(&s.rate_limits),
            user_rate_limits: announced(&s.user_rate_limits),
            cursor_hz: match s.cursor_interval.as_secs_f64() {
                0.0 => 0,
                secs => (1.0 / secs).round() as u32,
            },
        },
    })
}

/// Rates by operation class name, as `welcome` announces them.
fn announced(rates: &ClassRates) -> BTreeMap<String, AnnouncedRate> {
    OpClass::ALL
        .into_iter()
        .map(|class| {
            let rate = rates.get(class);
            let announced = AnnouncedRate {
                per_sec: rate.per_sec,
                burst: rate.burst,
            };
            (class.name().to_owned(), announced)
        })
        .collect()
}

/// Waits for credentials: the URL/header token, or a `handshake` message
/// within the deadline. On failure the error has been queued and the
/// connection told to close.
async fn authenticate(
    state: &AppState,
    stream: &mut SplitStream<WsStream>,
    out: &Outbox,
    token: Option<String>,
) -> Option<(Identity, Option<RequestId>)> {
    let verify = |token: &str, id: Option<RequestId>| match state.verifier.verify(token) {
        Ok(identity) => Some((identity, id)),
        Err(err) => {
            tracing::info!(reason = err.reason(), "authentication failed");
            state
                .metrics
                .auth_failures
                .with_label_values(&[err.reason()])
                .inc();
            out.error(id, ErrorCode::AuthFailed, err.to_string());
            None
        }
    };
    if let Some(token) = token {
        return verify(&token, None);
    }
    let deadline = tokio::time::Instant::now() + state.settings.handshake_timeout;
    loop {
        let next = tokio::select! {
            biased;
            _ = out.control.closed() => return None,
            _ = state.drain.turn(out.conn) => {
                out.control.close(CloseCode::ServiceRestart);
                return None;
            }
            next = tokio::time::timeout_at(deadline, stream.next()) => next,
        };
        let msg = match next {
            Err(_) => {
                state
                    .metrics
                    .auth_failures
                    .with_label_values(&["handshake_timeout"])
                    .inc();
                out.reply_error(ErrorReply {
                    id: None,
                    code: ErrorCode::AuthFailed,
                    message: format!(
                        "no handshake within {} ms",
                        state.settings.handshake_timeout.as_millis()
                    ),
                    retry_after_ms: None,
                });
                out.control.close(CloseCode::AuthTimeout);
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(err))) => {
                read_failed(out, &err, state.settings.max_message_bytes);
                return None;
            }
            Ok(Some(Ok(msg))) => msg,
        };
        state.metrics.bytes_received.inc_by(msg.len() as u64);
        match classify(&msg, out.encoding) {
            Inbound::Data(bytes) => match codec::decode_client(out.encoding, bytes) {
                Ok(ClientMessage::Handshake(h)) => return verify(&h.token, h.id),
                Ok(other) => {
                    state
                        .metrics
                        .auth_failures
                        .with_label_values(&["no_handshake"])
                        .inc();
                    out.error(
                        other.id().cloned(),
                        ErrorCode::InvalidSession,
                        format!("{} before handshake: authenticate first", other.kind()),
                    );
                    out.control.close(CloseCode::InvalidSession);
                    return None;
                }
                Err(err) => out.error(err.id, ErrorCode::InvalidMessage, err.message),
            },
            Inbound::WrongKind => {
                out.error(None, ErrorCode::InvalidMessage, wrong_kind(out.encoding))
            }
            Inbound::Control => {}
            Inbound::Close => return None,
        }
    }
}

/// Reads and handles the client's frames until the connection is to
/// close. Returns the sink if the writer ended first (its socket broke).
/// A block rather than an `async fn`, so the arguments are held once.
#[allow(clippy::manual_async_fn)] // the layout, see above
fn read_loop<'a>(
    state: &'a AppState,
    stream: &'a mut SplitStream<WsStream>,
    writer: &'a mut JoinHandle<WsSink>,
    session: &'a mut Session<'_>,
) -> impl std::future::Future<Output = Option<WsSink>> + 'a {
    async move {
        let out = session.out();
        let idle = state.settings.idle_timeout;
        // One timer for every deadline of the loop (token expiry, the idle
        // timeout, the next ping, a coalesced cursor, the end of a read
        // pause, this connection's turn in a drain): a timer per select
        // would cost a timer-wheel registration per message and ~140 bytes
        // per deadline in every connection's future.
        let mut idle_at = tokio::time::Instant::now() + idle;
        let mut ping_at = tokio::time::Instant::now() + state.settings.ping_interval;
        let mut drain_at = None;
        let timer = tokio::time::sleep_until(idle_at);
        tokio::pin!(timer);
        loop {
            let paused = session.read_paused_until();
            let wake = [
                session.expiry(),
                session.cursor_due(),
                drain_at,
                paused,
                paused.is_none().then_some(idle_at),
                Some(ping_at),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(idle_at);
            // Only ever moved earlier (or re-armed once it fired): the idle
            // deadline moves later with every frame, and a timer that fires
            // early finds nothing due and is re-armed, once per idle period
            // rather than once per frame.
            if wake < timer.deadline() || timer.is_elapsed() {
                timer.as_mut().reset(wake);
            }
            let next = tokio::select! {
                biased;
                // A close request, or signals (access changes, kicks).
                attention = out.control.attention() => match attention {
                    Attention::Closed => return None,
                    Attention::Signals(signals) => {
                        Box::pin(session.on_signals(signals)).await;
                        continue;
                    }
                },
                _ = &mut timer => {
                    let due = Deadlines { paused, drain_at };
                    let clocks = Clocks { idle_at: &mut idle_at, ping_at: &mut ping_at };
                    if on_timer(state, session, due, clocks).await.is_break() {
                        return None;
                    }
                    continue;
                }
                // The drain began: this connection's turn joins the timer.
                _ = state.drain.closing(), if drain_at.is_none() => {
                    drain_at = Some(state.drain.turn_at(out.conn).unwrap_or_else(tokio::time::Instant::now));
                    continue;
                }
                // The socket broke under the writer.
                done = &mut *writer => return done.ok(),
                // A refused operation pauses reading (its frames wait in the
                // socket), so a flooder costs the gateway little.
                next = stream.next(), if paused.is_none() => next,
            };
            idle_at = tokio::time::Instant::now() + idle;
            let msg = match next {
                None => return None,
                Some(Err(err)) => {
                    read_failed(out, &err, state.settings.max_message_bytes);
                    return None;
                }
                Some(Ok(msg)) => msg,
            };
            match on_frame(state, out, &msg) {
                Frame::Done => {}
                Frame::Close => return None,
                // Boxed: the command path (publish, join) is the deepest
                // future in the connection; inline, its state would be
                // allocated for the connection's whole life (~10 KiB), boxed
                // only while a command runs.
                Frame::Command(cmd) => {
                    drop(msg);
                    if Box::pin(run_command(session, cmd)).await.is_break() {
                        return None;
                    }
                }
            }
        }
    }
}

/// Runs one command, unless a close request comes first (a command can
/// wait: a resume replay waits for the client to read). Breaks on the
/// close.
async fn run_command(session: &mut Session<'_>, cmd: ClientMessage) -> ControlFlow<()> {
    let control = &session.out().control;
    tokio::select! {
        biased;
        _ = control.closed() => ControlFlow::Break(()),
        _ = session.handle(cmd) => ControlFlow::Continue(()),
    }
}

/// Closes a connection whose token expired without a `refresh`: an
/// `E002` saying so, then close code `4003`.
fn expired(state: &AppState, out: &Outbox) {
    tracing::info!("token expired");
    state
        .metrics
        .auth_failures
        .with_label_values(&["expired_live"])
        .inc();
    out.reply_error(ErrorReply {
        id: None,
        code: ErrorCode::AuthFailed,
        message: "token expired: send refresh with a new token before exp".into(),
        retry_after_ms: None,
    });
    out.control.close(CloseCode::TokenExpired);
}

/// The deadlines of the read loop that are not the session's.
struct Deadlines {
    /// The end of a read pause.
    paused: Option<tokio::time::Instant>,
    /// This connection's turn in a drain.
    drain_at: Option<tokio::time::Instant>,
}

/// The read loop's deadlines that move on as the connection goes.
struct Clocks<'a> {
    /// When the connection is idle if nothing arrives.
    idle_at: &'a mut tokio::time::Instant,
    /// When the next WebSocket ping is sent.
    ping_at: &'a mut tokio::time::Instant,
}

/// The read loop's timer fired: whichever deadlines are due. Breaks when
/// the connection is to close (token expired, idle timeout, its turn in a
/// drain).
async fn on_timer(
    state: &AppState,
    session: &mut Session<'_>,
    due: Deadlines,
    clocks: Clocks<'_>,
) -> ControlFlow<()> {
    let Clocks { idle_at, ping_at } = clocks;
    let out = session.out();
    let now = tokio::time::Instant::now();
    if due.drain_at.is_some_and(|at| at <= now) {
        out.control.close(CloseCode::ServiceRestart);
        return ControlFlow::Break(());
    }
    if session.expiry().is_some_and(|at| at <= now) {
        expired(state, out);
        return ControlFlow::Break(());
    }
    match due.paused {
        // Reading resumes: the client gets a whole idle period.
        Some(at) if at <= now => *idle_at = now + state.settings.idle_timeout,
        None if *idle_at <= now => {
            tracing::info!(idle = ?state.settings.idle_timeout, "idle timeout");
            out.control.close(CloseCode::IdleTimeout);
            return ControlFlow::Break(());
        }
        _ => {}
    }
    if *ping_at <= now {
        // Behind whatever is queued. A full queue gets none: its writer is
        // stuck, and the hub closes it as a slow consumer.
        let _ = out.tx.offer(Message::Ping(bytes::Bytes::new()));
        *ping_at = now + state.settings.ping_interval;
    }
    if session.cursor_due().is_some_and(|at| at <= now) {
        Box::pin(session.flush_cursors()).await;
    }
    ControlFlow::Continue(())
}

/// Half-closes the socket after the close frame and discards what the peer
/// still sends, briefly, so it reads our close frame rather than a reset.
async fn linger(stream: SplitStream<WsStream>, sink: WsSink) {
    let Ok(mut ws) = stream.reunite(sink) else {
        return;
    };
    let io = ws.get_mut();
    let discard = async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 2048];
        let mut total = 0;
        while total < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, discard).await;
}
