//! Encode and decode of every protocol message, in both wire encodings.
//!
//! `cargo bench -p shared --bench codec`

use criterion::{Criterion, criterion_group, criterion_main};
use shared::codec::{self, Encoding};
use shared::protocol::*;
use shared::{CanvasId, ErrorCode, RequestId};
use std::hint::black_box;

fn canvas() -> CanvasId {
    CanvasId::new("lobby").expect("valid id")
}

fn author() -> Author {
    Author {
        id: "user-1234".into(),
        name: Some("Ada".into()),
    }
}

fn client_messages() -> Vec<(&'static str, ClientMessage)> {
    let id = Some(RequestId::Num(42));
    vec![
        (
            "handshake",
            ClientMessage::Handshake(Handshake {
                id: id.clone(),
                token: "x".repeat(200),
            }),
        ),
        (
            "ping",
            ClientMessage::Ping(Ping {
                id: id.clone(),
                ts: Some(1_700_000_000_000),
            }),
        ),
        (
            "join",
            ClientMessage::Join(Join {
                id: id.clone(),
                canvas: canvas(),
                echo: false,
                since: Some(1200),
                epoch: Some("0b5f3c".into()),
            }),
        ),
        (
            "leave",
            ClientMessage::Leave(Leave {
                id: id.clone(),
                canvas: canvas(),
            }),
        ),
        (
            "draw_1px",
            ClientMessage::Draw(Draw {
                id: id.clone(),
                canvas: canvas(),
                key: None,
                pixels: vec![PixelInput {
                    x: 10,
                    y: 20,
                    color: 3,
                }],
            }),
        ),
        (
            "draw_64px",
            ClientMessage::Draw(Draw {
                id: id.clone(),
                canvas: canvas(),
                key: None,
                pixels: (0..64)
                    .map(|i| PixelInput {
                        x: i,
                        y: i,
                        color: i % 32,
                    })
                    .collect(),
            }),
        ),
        (
            "cursor",
            ClientMessage::Cursor(CursorMove {
                id: None,
                canvas: canvas(),
                x: 12.5,
                y: 40.25,
            }),
        ),
        (
            "chat",
            ClientMessage::Chat(ChatSend {
                id: id.clone(),
                canvas: canvas(),
                key: None,
                text: "hello everyone, nice canvas".into(),
            }),
        ),
        (
            "history",
            ClientMessage::History(HistoryRequest {
                id: id.clone(),
                canvas: canvas(),
                since: 100,
                limit: Some(500),
            }),
        ),
        (
            "chat_history",
            ClientMessage::ChatHistory(ChatHistoryRequest {
                id: id.clone(),
                canvas: canvas(),
                before: Some(1000),
                limit: Some(50),
            }),
        ),
        (
            "highlight",
            ClientMessage::Highlight(HighlightSend {
                id,
                canvas: canvas(),
                x: Some(120.0),
                y: Some(64.5),
                user: None,
                duration_ms: 3000,
            }),
        ),
    ]
}

fn server_messages() -> Vec<(&'static str, ServerMessage)> {
    let draw = ServerMessage::Draw(DrawEvent {
        canvas: canvas(),
        seq: Some(1201),
        author: author(),
        ts: 1_700_000_000_000,
        pixels: vec![Pixel {
            x: 10,
            y: 20,
            color: 3,
        }],
    });
    vec![
        (
            "welcome",
            ServerMessage::Welcome(Welcome {
                connection_id: "gw-1:42".into(),
                user: UserInfo {
                    id: "user-1234".into(),
                    name: Some("Ada".into()),
                },
                node: "gw-1".into(),
                server_time: 1_700_000_000_000,
                encoding: Encoding::Json,
                limits: AnnouncedLimits {
                    max_message_bytes: 65536,
                    max_canvases: 8,
                    max_pixels_per_draw: 256,
                    max_chat_chars: 2000,
                    ping_interval_ms: 25_000,
                    idle_timeout_ms: 60_000,
                    rate_limits: Default::default(),
                    user_rate_limits: Default::default(),
                    cursor_hz: 30,
                },
            }),
        ),
        (
            "pong",
            ServerMessage::Pong(Pong {
                id: Some(RequestId::Num(1)),
                ts: Some(1),
                server_time: 2,
            }),
        ),
        (
            "ack_published",
            ServerMessage::Ack(Ack {
                id: RequestId::Num(42),
                result: Some(AckResult::Published(Published {
                    seq: 1201,
                    object: None,
                })),
            }),
        ),
        (
            "ack_joined",
            ServerMessage::Ack(Ack {
                id: RequestId::Num(42),
                result: Some(AckResult::Joined(Joined {
                    canvas: canvas(),
                    width: 1024,
                    height: 1024,
                    palette_size: 32,
                    echo: false,
                    seq: 1200,
                    epoch: "0b5f3c".into(),
                    resume: Some(ResumeOutcome::Replayed),
                    role: shared::auth::Role::Player,
                    presence: Vec::new(),
                    presence_count: 0,
                })),
            }),
        ),
        (
            "ack_history_50",
            ServerMessage::Ack(Ack {
                id: RequestId::Num(42),
                result: Some(AckResult::History(HistoryPage {
                    canvas: canvas(),
                    epoch: "0b5f3c".into(),
                    seq: 1250,
                    complete: true,
                    next_since: 1250,
                    events: (0..50).map(|_| draw.clone()).collect(),
                })),
            }),
        ),
        (
            "error",
            ServerMessage::Error(ErrorReply {
                id: Some(RequestId::Num(42)),
                code: ErrorCode::RateLimited,
                message: "too many draws".into(),
                retry_after_ms: Some(250),
            }),
        ),
        ("draw", draw.clone()),
        (
            "cursor",
            ServerMessage::Cursor(CursorEvent {
                canvas: canvas(),
                author: author(),
                ts: 1_700_000_000_000,
                x: 12.5,
                y: 40.25,
            }),
        ),
        (
            "chat",
            ServerMessage::Chat(ChatEvent {
                canvas: canvas(),
                seq: Some(1202),
                author: author(),
                ts: 1_700_000_000_000,
                text: "hello everyone, nice canvas".into(),
            }),
        ),
        (
            "resync",
            ServerMessage::Resync(Resync {
                canvas: canvas(),
                reason: ResyncReason::BusReconnected,
            }),
        ),
        (
            "highlight",
            ServerMessage::Highlight(HighlightEvent {
                canvas: canvas(),
                author: author(),
                ts: 1_700_000_000_000,
                x: None,
                y: None,
                user: Some("ada".into()),
                duration_ms: 3000,
            }),
        ),
    ]
}

fn encodings() -> [(&'static str, Encoding); 2] {
    [("json", Encoding::Json), ("msgpack", Encoding::Msgpack)]
}

/// Encode and decode of each message in both encodings; `decode` checks
/// that the bytes decode (into the direction's message type).
fn bench_messages<M: serde::Serialize>(
    c: &mut Criterion,
    group: &str,
    messages: Vec<(&'static str, M)>,
    decode: fn(Encoding, &[u8]) -> bool,
) {
    let mut group = c.benchmark_group(group);
    for (name, msg) in messages {
        for (enc_name, enc) in encodings() {
            let bytes = codec::encode(enc, &msg).expect("encodes");
            assert!(decode(enc, &bytes), "{name} decodes");
            group.bench_function(format!("encode/{enc_name}/{name}"), |b| {
                b.iter(|| codec::encode(enc, black_box(&msg)).expect("encodes"))
            });
            group.bench_function(format!("decode/{enc_name}/{name}"), |b| {
                b.iter(|| decode(enc, black_box(&bytes)))
            });
        }
    }
    group.finish();
}

fn bench_client(c: &mut Criterion) {
    bench_messages(c, "client", client_messages(), |enc, bytes| {
        codec::decode_client(enc, bytes).is_ok()
    });
}

fn bench_server(c: &mut Criterion) {
    bench_messages(c, "server", server_messages(), |enc, bytes| {
        codec::decode_server(enc, bytes).is_ok()
    });
}

criterion_group!(benches, bench_client, bench_server);
criterion_main!(benches);
