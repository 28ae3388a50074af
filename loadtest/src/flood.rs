//! The `flood` scenario's abusive clients: connections on the first gateway
//! that send 64-pixel draws as fast as the socket takes them, on a canvas
//! of their own, without waiting for acks or honouring `retry_after_ms`,
//! and reconnect when the gateway closes them (4029). The fan-out load runs
//! beside them; its latency is the neighbours' latency.

use crate::client::{self, Ws};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use shared::codec::Encoding;
use shared::protocol::{ClientMessage, Draw, PixelInput, ServerMessage};
use shared::{CanvasId, ErrorCode, RequestId};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// What the flooders did and how the gateway answered.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FloodStats {
    pub connections: usize,
    pub sent: u64,
    pub acked: u64,
    /// Refused with E004.
    pub rate_limited: u64,
    /// E004 replies without `retry_after_ms` (should be 0).
    pub missing_retry_after: u64,
    pub other_errors: u64,
    /// Closes with 4029 (rate limits refused repeatedly).
    pub closed_for_abuse: u64,
    /// Other closes and failed connection attempts.
    pub other_closes: u64,
    pub first_error: Option<String>,
}

impl FloodStats {
    fn add(&mut self, o: FloodStats) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.rate_limited += o.rate_limited;
        self.missing_retry_after += o.missing_retry_after;
        self.other_errors += o.other_errors;
        self.closed_for_abuse += o.closed_for_abuse;
        self.other_closes += o.other_closes;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// Runs `connections` flooders against `url` on `canvas` until `until`.
pub async fn run(
    url: String,
    secret: Arc<String>,
    encoding: Encoding,
    canvas: CanvasId,
    connections: usize,
    per_sec: f64,
    until: Instant,
) -> FloodStats {
    let mut set = JoinSet::new();
    for i in 0..connections {
        let (url, secret, canvas) = (url.clone(), secret.clone(), canvas.clone());
        set.spawn(
            async move { flooder(&url, &secret, encoding, &canvas, i, per_sec, until).await },
        );
    }
    let mut total = FloodStats {
        connections,
        ..FloodStats::default()
    };
    while let Some(r) = set.join_next().await {
        if let Ok(s) = r {
            total.add(s);
        }
    }
    total
}

async fn flooder(
    url: &str,
    secret: &str,
    encoding: Encoding,
    canvas: &CanvasId,
    n: usize,
    per_sec: f64,
    until: Instant,
) -> FloodStats {
    let mut stats = FloodStats::default();
    let user = format!("lt-flood{n}");
    while Instant::now() < until {
        let ws = async {
            let token = client::token_for(secret, &user)?;
            let mut ws = client::connect(url, &token, encoding).await?;
            client::join(&mut ws, encoding, canvas, None).await?;
            anyhow::Ok(ws)
        }
        .await;
        match ws {
            Ok(ws) => session(ws, encoding, canvas, per_sec, until, &mut stats).await,
            Err(e) => {
                stats.other_closes += 1;
                stats.first_error.get_or_insert_with(|| format!("{e:#}"));
                // Refused (e.g. the per-address limit): the gateway said
                // when; a flooder tries again soon anyway.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    stats
}

/// Floods on one connection until the gateway closes it or time is up.
async fn session(
    ws: Ws,
    encoding: Encoding,
    canvas: &CanvasId,
    per_sec: f64,
    until: Instant,
    stats: &mut FloodStats,
) {
    let (mut sink, mut stream) = ws.split();
    let mut id = 0u64;
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    let period = (per_sec > 0.0).then(|| Duration::from_secs_f64(1.0 / per_sec));
    let mut next = Instant::now();
    loop {
        if let Some(period) = period {
            // Paced: wait for the next slot, still reading replies.
            next += period;
            let pause = tokio::time::sleep_until(next);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut pause => break,
                    incoming = stream.next() => {
                        if !incoming_frame(encoding, incoming, stats) {
                            return;
                        }
                    }
                }
            }
        }
        let frame = match client::frame(encoding, &draw(canvas, id)) {
            Ok(f) => f,
            Err(_) => return,
        };
        tokio::select! {
            biased;
            _ = &mut deadline => {
                let _ = sink.close().await;
                return;
            }
            incoming = stream.next() => {
                if !incoming_frame(encoding, incoming, stats) {
                    return;
                }
            }
            sent = sink.send(frame) => {
                if sent.is_err() {
                    stats.other_closes += 1;
                    return;
                }
                stats.sent += 1;
                id += 1;
            }
        }
    }
}

/// Counts one frame from the gateway; false once the connection is over.
fn incoming_frame(
    encoding: Encoding,
    incoming: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    stats: &mut FloodStats,
) -> bool {
    match incoming {
        Some(Ok(Message::Close(c))) => {
            match c.map(|c| u16::from(c.code)) {
                Some(4029) => stats.closed_for_abuse += 1,
                _ => stats.other_closes += 1,
            }
            false
        }
        Some(Ok(m)) => {
            count(encoding, &m, stats);
            true
        }
        Some(Err(_)) | None => {
            stats.other_closes += 1;
            false
        }
    }
}

fn count(encoding: Encoding, m: &Message, stats: &mut FloodStats) {
    match client::decode(encoding, m) {
        Some(Ok(ServerMessage::Ack(_))) => stats.acked += 1,
        Some(Ok(ServerMessage::Error(e))) if e.code == ErrorCode::RateLimited => {
            stats.rate_limited += 1;
            if e.retry_after_ms.is_none() {
                stats.missing_retry_after += 1;
            }
        }
        Some(Ok(ServerMessage::Error(e))) => {
            stats.other_errors += 1;
            stats
                .first_error
                .get_or_insert_with(|| format!("{}: {}", e.code, e.message));
        }
        _ => {}
    }
}

fn draw(canvas: &CanvasId, id: u64) -> ClientMessage {
    ClientMessage::Draw(Draw {
        id: Some(RequestId::Num(id)),
        canvas: canvas.clone(),
        key: None,
        // 64 pixels a draw: 64 tokens of the pixels bucket each.
        pixels: (0..64)
            .map(|x| PixelInput {
                x,
                y: (id % 64) as i64,
                color: (id % 16) as i64,
            })
            .collect(),
    })
}
