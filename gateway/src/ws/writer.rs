//! A connection's writer task: the only code that writes to its socket.
//!
//! It takes frames from the bounded outbound queue, feeds everything queued
//! and flushes once, sends a WebSocket ping every interval, and on close
//! flushes what is queued (except for a slow consumer, whose queue is the
//! problem) and sends the close frame, all bounded by [`CLOSE_TIMEOUT`].

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

/// Runs until the connection closes; returns the sink so the connection can
/// reunite the halves for a clean TCP close.
pub(crate) async fn run(
    mut sink: WsSink,
    rx: Arc<Outbound>,
    control: Arc<ConnControl>,
    ping_interval: Duration,
    fanout_latency: Histogram,
    bytes_sent: IntCounter,
) -> WsSink {
    let start = tokio::time::Instant::now() + ping_interval;
    let mut ping = tokio::time::interval_at(start, ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One close future for the connection's life: building and registering
    // a fresh one twice per message showed in profiles (the token's lock).
    let closed = control.closed();
    tokio::pin!(closed);
    loop {
        let first = tokio::select! {
            biased;
            _ = &mut closed => break,
            m = rx.take() => m,
            _ = ping.tick() => (Message::Ping(Bytes::new()), 0),
        };
        let outcome = {
            let write = write_batch(&mut sink, &rx, first, &fanout_latency, &bytes_sent);
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
        match outcome {
            Written::Done(true) => {}
            // The socket is broken; the reader sees it too and ends.
            Written::Done(false) => return sink,
            Written::Abandoned => break,
        }
    }
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
    sink
}

enum Written {
    /// The batch was written (true) or the socket failed (false).
    Done(bool),
    /// Closing: the batch was given up.
    Abandoned,
}

/// Feeds `first` and everything else already queued, then flushes once.
///
/// The socket has no write buffer (`write_buffer_size` 0), so a frame is on
/// the socket when `feed` returns: that is when a live event's end-to-end
/// fan-out latency (from its ingest on the origin gateway, by the wall
/// clocks of both nodes) is observed.
async fn write_batch(
    sink: &mut WsSink,
    rx: &Outbound,
    first: Stamped,
    fanout_latency: &Histogram,
    bytes_sent: &IntCounter,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut next = Some(first);
    // Counted once per batch: one shared atomic add per flush, not per frame.
    let mut bytes = 0u64;
    let fed = async {
        while let Some((frame, ingest_us)) = next {
            let len = frame.len() as u64;
            sink.feed(frame).await?;
            bytes += len;
            if ingest_us != 0 {
                let waited_us = shared::now_us().saturating_sub(ingest_us);
                fanout_latency.observe(waited_us as f64 / 1e6);
            }
            next = rx.try_take_stamped();
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    }
    .await;
    bytes_sent.inc_by(bytes);
    fed?;
    sink.flush().await
}
