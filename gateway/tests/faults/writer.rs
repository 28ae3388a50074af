//! The steady writer every fault case runs: durable `chat` commands whose
//! text is their operation key, at a fixed rate, each resent with the same
//! key until acked, whatever happens (E012, a dead or frozen gateway, a
//! lost connection), moving to the next gateway when one fails, as the SDK
//! does.

use crate::common::token;
use shared::protocol::*;
use shared::{CanvasId, ErrorCode, RequestId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::ws::{Connect, WsClient};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long one attempt waits for its reply before giving up on the
/// connection (a frozen gateway answers nothing).
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// What the writer saw.
#[derive(Debug, Default)]
pub struct Written {
    /// Acked operations: key, seq, when.
    pub acked: Vec<(String, u64, Instant)>,
    /// E012 answers (outcome unknown or not applied), each followed by a
    /// resend under the same key.
    pub unavailable: u64,
    /// Attempts lost with their connection (resent on another).
    pub lost_connections: u64,
}

pub struct Writer {
    stop: CancellationToken,
    handle: JoinHandle<Written>,
}

impl Writer {
    /// Starts writing to `canvas` through `gateways` (the first first) at
    /// `per_sec`.
    pub fn start(gateways: Vec<SocketAddr>, canvas: &str, per_sec: f64) -> Writer {
        let stop = CancellationToken::new();
        let canvas = CanvasId::new(canvas).unwrap();
        let handle = tokio::spawn(run(Arc::new(gateways), canvas, per_sec, stop.clone()));
        Writer { stop, handle }
    }

    /// Stops after the operation in flight is acked; what was written.
    pub async fn finish(self) -> Written {
        self.stop.cancel();
        self.handle.await.unwrap()
    }
}

async fn run(
    gateways: Arc<Vec<SocketAddr>>,
    canvas: CanvasId,
    per_sec: f64,
    stop: CancellationToken,
) -> Written {
    let mut written = Written::default();
    let mut conn: Option<WsClient> = None;
    let mut next_gateway = 0usize;
    let mut request = 0u64;
    let pace = Duration::from_secs_f64(1.0 / per_sec);
    for n in 0u64.. {
        if stop.is_cancelled() {
            break;
        }
        let key = format!("op-{n}");
        let seq = loop {
            request += 1;
            let client = match conn.as_mut() {
                Some(c) => c,
                None => match connect(&gateways, &mut next_gateway, &canvas).await {
                    Some(c) => conn.insert(c),
                    None => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            match attempt(client, &canvas, &key, request).await {
                Attempt::Acked(seq) => break seq,
                Attempt::Unavailable => {
                    written.unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Attempt::Lost => {
                    written.lost_connections += 1;
                    conn = None;
                }
            }
        };
        written.acked.push((key, seq, Instant::now()));
        tokio::time::sleep(pace).await;
    }
    written
}

enum Attempt {
    Acked(u64),
    Unavailable,
    Lost,
}

/// Connects to the next gateway in turn and joins the canvas.
async fn connect(gateways: &[SocketAddr], next: &mut usize, canvas: &CanvasId) -> Option<WsClient> {
    let addr = gateways[*next % gateways.len()];
    *next += 1;
    let connect = WsClient::connect(addr, Connect::token(&token("writer")));
    let mut client = tokio::time::timeout(REPLY_TIMEOUT, connect)
        .await
        .ok()?
        .ok()?;
    let join = ClientMessage::Join(Join {
        id: Some(RequestId::Num(0)),
        canvas: canvas.clone(),
        echo: false,
        since: None,
        epoch: None,
    });
    if client.try_send_raw(frame(&join)).await.is_err() {
        return None;
    }
    loop {
        match client.try_recv_within(REPLY_TIMEOUT).await {
            Ok(Some(ServerMessage::Ack(a))) if a.id == RequestId::Num(0) => return Some(client),
            Ok(Some(ServerMessage::Error(_))) | Ok(None) | Err(_) => return None,
            Ok(Some(_)) => {} // welcome, events
        }
    }
}

/// Sends the operation once and waits for its reply.
async fn attempt(client: &mut WsClient, canvas: &CanvasId, key: &str, id: u64) -> Attempt {
    let chat = ClientMessage::Chat(ChatSend {
        id: Some(RequestId::Num(id)),
        canvas: canvas.clone(),
        key: Some(key.to_owned()),
        text: key.to_owned(),
    });
    if client.try_send_raw(frame(&chat)).await.is_err() {
        return Attempt::Lost;
    }
    loop {
        match client.try_recv_within(REPLY_TIMEOUT).await {
            Ok(Some(ServerMessage::Ack(a))) if a.id == RequestId::Num(id) => {
                return match a.result {
                    Some(AckResult::Published(p)) => Attempt::Acked(p.seq),
                    other => panic!("chat acked without a seq: {other:?}"),
                };
            }
            Ok(Some(ServerMessage::Error(e))) if e.id == Some(RequestId::Num(id)) => {
                return match e.code {
                    ErrorCode::Unavailable | ErrorCode::BacklogFull | ErrorCode::RateLimited => {
                        Attempt::Unavailable
                    }
                    other => panic!("unexpected refusal {other:?}: {}", e.message),
                };
            }
            Ok(Some(_)) => {} // resync, events
            Ok(None) | Err(_) => return Attempt::Lost,
        }
    }
}

fn frame(msg: &ClientMessage) -> Message {
    let json = shared::codec::encode(shared::codec::Encoding::Json, msg).unwrap();
    Message::Text(String::from_utf8(json).unwrap().into())
}
