//! A connection's writer task: the only code that writes to its socket.
//!
//! It takes frames from the bounded outbound queue and writes everything
//! queued in one socket write, at most one write per flush delay
//! (`EASEL_FLUSH_DELAY_US`): a frame after a quiet spell goes out at once,
//! frames arriving faster wait for the rest of the delay and share a
//! write. It sends a WebSocket ping every interval, and on close flushes
//! what is queued (except for a slow consumer, whose queue is the problem)
//! and sends the close frame, all bounded by [`CLOSE_TIMEOUT`].

use bytes::Bytes;
use fanout::{ConnControl, Outbound, Stamped};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use hyper_util::rt::TokioIo;
use prometheus::{Histogram, IntCounter};
use shared::CloseCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

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
    pub ping_interval: Duration,
    /// Shortest time between two writes (0: write whenever there is a frame).
    pub flush_delay: Duration,
    /// Fan-out latency, observed as a live event's frame is written.
    pub fanout_latency: Histogram,
    pub bytes_sent: IntCounter,
    /// Frames written, and the socket writes that carried them.
    pub frames_written: IntCounter,
    pub writes: IntCounter,
}

/// Runs until the connection closes; returns the sink so the connection can
/// reunite the halves for a clean TCP close.
pub(crate) async fn run(
    mut sink: WsSink,
    rx: Arc<Outbound>,
    control: Arc<ConnControl>,
    config: WriterConfig,
) -> WsSink {
    let ping_interval = config.ping_interval;
    let start = tokio::time::Instant::now() + ping_interval;
    let mut ping = tokio::time::interval_at(start, ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One close future for the connection's life: building and registering
    // a fresh one twice per message showed in profiles (the token's lock).
    let closed = control.closed();
    tokio::pin!(closed);
    // When the next write may be made.
    let mut next_write = tokio::time::Instant::now();
    loop {
        let first = tokio::select! {
            biased;
            _ = &mut closed => break,
            m = rx.take() => m,
            _ = ping.tick() => (Message::Ping(Bytes::new()), 0),
        };
        if !config.flush_delay.is_zero() && tokio::time::Instant::now() < next_write {
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
            let write = write_batch(&mut sink, &rx, first, &config);
            tokio::pin!(write);
            tokio::select! {
                biased;
                r = &mut write => Written::Done(r.is_ok()),
                _ = &mut closed => {
                    if control.reason() == Some(CloseCode::SlowConsumer) {
                        // The peer is not reading; do not wait for this write.
                        Written::Abandoned
                    } else {
                        match tokio::time::timeout(CLOSE_TIMEOUT, &mut write).await {
                            Ok(r) => Written::Done(r.is_ok()),
                            Err(_) => Written::Abandoned,
                        }
                    }
                }
            }
        };
        next_write = tokio::time::Instant::now() + config.flush_delay;
        match outcome {
            Written::Done(true) => {}
            // The socket is broken; the reader sees it too and ends.
            Written::Done(false) => return sink,
            Written::Abandoned => break,
        }
    }
    // Boxed: the close runs once, and inline its state would be part of
    // every connection's writer for its whole life.
    Box::pin(close(&mut sink, &rx, &control)).await;
    sink
}

/// Sends what is queued (except to a slow consumer, whose queue is the
/// problem) and the close frame, within the close timeouts.
async fn close(sink: &mut WsSink, rx: &Outbound, control: &ConnControl) {
    let code = control.reason().unwrap_or(CloseCode::Normal);
    let closing = async {
        if code != CloseCode::SlowConsumer {
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
async fn write_batch(
    sink: &mut WsSink,
    rx: &Outbound,
    first: Stamped,
    config: &WriterConfig,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut next = Some(first);
    // Counted once per batch: shared atomic adds per flush, not per frame.
    let (mut bytes, mut frames) = (0u64, 0u64);
    let fed = async {
        while let Some((frame, ingest_us)) = next {
            let len = frame.len() as u64;
            sink.feed(frame).await?;
            bytes += len;
            frames += 1;
            if ingest_us != 0 {
                let waited_us = shared::now_us().saturating_sub(ingest_us);
                config.fanout_latency.observe(waited_us as f64 / 1e6);
            }
            next = rx.try_take_stamped();
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    }
    .await;
    config.bytes_sent.inc_by(bytes);
    config.frames_written.inc_by(frames);
    config.writes.inc();
    fed?;
    sink.flush().await
}

/// Frames are gathered in the socket's write buffer up to this many bytes
/// before a write (a batch beyond it takes more than one).
pub(crate) const WRITE_BUFFER_BYTES: usize = 64 << 10;
