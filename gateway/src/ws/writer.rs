//! A connection's writer task: the only code that writes to its socket.
//!
//! It takes frames from the bounded outbound queue and writes everything
//! queued in one socket write, at most one write per flush delay
//! (`EASEL_FLUSH_DELAY_US`): a frame after a quiet spell goes out at once,
//! frames arriving faster wait for the rest of the delay and share a
//! write. Pings come through the queue too (the read loop's timer offers
//! them), so the writer waits on nothing but its queue and the close. On
//! close it flushes what is queued (except for a slow consumer, whose queue
//! is the problem, or after a write it gave up) and sends the close frame,
//! all bounded by [`CLOSE_TIMEOUT`].

use super::fragments::{self, Outgoing};
use fanout::{ConnControl, Outbound, Stamped};
use futures_util::SinkExt;
use futures_util::ready;
use futures_util::stream::SplitSink;
use hyper_util::rt::TokioIo;
use prometheus::{Histogram, IntCounter};
use shared::CloseCode;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

/// The upgraded socket as the gateway uses it.
pub(crate) type WsStream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
/// Its write half.
pub(crate) type WsSink = SplitSink<WsStream, Message>;

/// Longest time spent flushing and sending the close frame once closing.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest time a slow consumer gets to take what is already in its socket
/// buffers plus the 4008 close frame. It is out of the hub by then, so this
/// costs only the buffers it already holds; a client that resumes reading
/// within it learns why it was cut off.
pub(crate) const SLOW_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a writer paces itself and what it counts.
#[derive(Clone)]
pub(crate) struct WriterConfig {
    /// Shortest time between two writes (0: write whenever there is a frame).
    pub flush_delay: Duration,
    /// Fan-out latency, observed as a live event's frame is written.
    pub fanout_latency: Histogram,
    pub bytes_sent: IntCounter,
    /// Frames written, and the socket writes that carried them.
    pub frames_written: IntCounter,
    pub writes: IntCounter,
}

/// What a writer task owns: taken whole and used in place, so the task's
/// future holds each part once (an `async fn` that moved its arguments
/// into locals would keep both copies for its whole life).
pub(crate) struct Writer {
    pub sink: WsSink,
    pub rx: Arc<Outbound>,
    pub control: Arc<ConnControl>,
    pub config: WriterConfig,
}

/// Runs until the connection closes; returns the sink so the connection can
/// reunite the halves for a clean TCP close.
///
/// A block rather than an `async fn`: an `async fn` moves its argument
/// into a local and keeps both slots; a block uses its capture in place.
#[allow(clippy::manual_async_fn)] // the layout, see above
pub(crate) fn run(mut w: Writer) -> impl Future<Output = WsSink> {
    async move {
        // One close future for the connection's life: building and registering
        // a fresh one twice per message showed in profiles (a lock per registration).
        let closed = w.control.closed();
        tokio::pin!(closed);
        // When the next write may be made.
        let mut next_write = tokio::time::Instant::now();
        // Whether the close may flush what is queued: not after a batch was
        // given up midway (the peer is not reading, and a large message's
        // remaining fragments would be missing before the next message).
        let flush_queued = loop {
            let first = tokio::select! {
                biased;
                _ = &mut closed => break true,
                m = w.rx.take() => m,
            };
            if !w.config.flush_delay.is_zero() && tokio::time::Instant::now() < next_write {
                // Soon after the last write: let more frames join this one.
                // (Only then: a timer, even an expired one, takes the timer
                // wheel's lock.)
                tokio::select! {
                    biased;
                    _ = &mut closed => {}
                    _ = tokio::time::sleep_until(next_write) => {}
                }
            }
            let outcome = {
                let mut write = Batch::new(&mut w.sink, &w.rx, first, &w.config);
                tokio::select! {
                    biased;
                    r = &mut write => Written::Done(r.is_ok()),
                    _ = &mut closed => {
                        if w.control.reason() == Some(CloseCode::SlowConsumer) {
                            // The peer is not reading; do not wait for this write.
                            Written::Abandoned
                        } else {
                            // Boxed: it runs once, at close.
                            match Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, &mut write)).await {
                                Ok(r) => Written::Done(r.is_ok()),
                                Err(_) => Written::Abandoned,
                            }
                        }
                    }
                }
            };
            next_write = tokio::time::Instant::now() + w.config.flush_delay;
            match outcome {
                Written::Done(true) => {}
                // The socket is broken; the reader sees it too and ends.
                Written::Done(false) => return w.sink,
                Written::Abandoned => break false,
            }
        };
        // Boxed: the close runs once, and inline its state would be part of
        // every connection's writer for its whole life.
        Box::pin(close(&mut w.sink, &w.rx, &w.control, flush_queued)).await;
        w.sink
    }
}

/// Sends what is queued (if `flush_queued`, and except to a slow consumer,
/// whose queue is the problem) and the close frame, within the close
/// timeouts.
async fn close(sink: &mut WsSink, rx: &Outbound, control: &ConnControl, flush_queued: bool) {
    let code = control.reason().unwrap_or(CloseCode::Normal);
    let closing = async {
        if flush_queued && code != CloseCode::SlowConsumer {
            while let Some(m) = rx.try_take() {
                sink.feed(m).await?;
            }
        }
        let frame = CloseFrame {
            code: code.code().into(),
            reason: code.reason().into(),
        };
        match sink.send(Message::Close(Some(frame))).await {
            // The client closed first: tungstenite queued the answer to
            // its Close frame (same code), which a flush sends.
            Err(WsError::Protocol(ProtocolError::SendAfterClosing)) => sink.flush().await,
            sent => sent,
        }
    };
    let limit = if code == CloseCode::SlowConsumer {
        SLOW_CLOSE_TIMEOUT
    } else {
        CLOSE_TIMEOUT
    };
    if let Ok(Err(err)) = tokio::time::timeout(limit, closing).await {
        tracing::debug!(error = %err, "close frame not sent");
    }
}

enum Written {
    /// The batch was written (true) or the socket failed (false).
    Done(bool),
    /// Closing: the batch was given up.
    Abandoned,
}

/// Feeds `first` and everything else already queued into the socket's
/// write buffer, then flushes it: one write (more only past
/// [`WRITE_BUFFER_BYTES`]).
///
/// A live event's end-to-end fan-out latency (from its ingest on the
/// origin gateway, by the wall clocks of both nodes) is observed as its
/// frame is fed, just before the flush.
///
/// A hand-written future rather than an `async fn`: it is part of every
/// writer's state, and this way it holds one pending frame and two counts
/// instead of the sink's feed and flush futures side by side.
struct Batch<'a> {
    sink: &'a mut WsSink,
    rx: &'a Outbound,
    config: &'a WriterConfig,
    /// The rest of a large message's fragments, fed before `next`.
    fragments: std::vec::IntoIter<Frame>,
    /// The message to feed next; `None` once everything queued is fed.
    next: Option<Stamped>,
    bytes: u64,
    frames: u64,
}

impl<'a> Batch<'a> {
    fn new(
        sink: &'a mut WsSink,
        rx: &'a Outbound,
        first: Stamped,
        config: &'a WriterConfig,
    ) -> Self {
        Batch {
            sink,
            rx,
            config,
            fragments: Vec::new().into_iter(),
            next: Some(first),
            bytes: 0,
            frames: 0,
        }
    }

    /// Counted once per batch: shared atomic adds per flush, not per frame.
    fn count(&mut self) {
        self.config.bytes_sent.inc_by(self.bytes);
        self.config.frames_written.inc_by(self.frames);
        self.config.writes.inc();
    }

    fn feed(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        while self.next.is_some() || self.fragments.len() > 0 {
            ready!(self.sink.poll_ready_unpin(cx))?;
            if let Some(fragment) = self.fragments.next() {
                self.frames += 1;
                self.sink.start_send_unpin(Message::Frame(fragment))?;
                continue;
            }
            let Some((message, ingest_us)) = self.next.take() else {
                break;
            };
            self.frames += 1;
            self.bytes += message.len() as u64;
            match fragments::prepare(message) {
                Outgoing::Whole(message) => self.sink.start_send_unpin(message)?,
                Outgoing::Fragments(mut rest) => {
                    if let Some(first) = rest.next() {
                        self.sink.start_send_unpin(Message::Frame(first))?;
                    }
                    self.fragments = rest;
                }
            }
            if ingest_us != 0 {
                let waited_us = shared::now_us().saturating_sub(ingest_us);
                self.config.fanout_latency.observe(waited_us as f64 / 1e6);
            }
            self.next = self.rx.try_take_stamped();
        }
        Poll::Ready(Ok(()))
    }
}

impl Future for Batch<'_> {
    type Output = Result<(), WsError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.next.is_some() {
            let fed = ready!(this.feed(cx));
            this.count();
            fed?;
        }
        this.sink.poll_flush_unpin(cx)
    }
}

/// Frames are gathered in the socket's write buffer up to this many bytes
/// before a write (a batch beyond it takes more than one). The buffer
/// keeps the capacity it once needed, so this plus one fragment (see
/// [`fragments`]), doubled at most by the vector's growth, is also the
/// most a connection keeps for it after a burst: 8 KiB is over a hundred
/// live events per write.
pub(crate) const WRITE_BUFFER_BYTES: usize = 8 << 10;
