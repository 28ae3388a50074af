//! What the load tester sends, and how it recognises its own messages when
//! they come back: every publisher numbers its messages, and the number
//! travels inside the message itself (pixel coordinates and colour, chat
//! text, cursor position), so any receiver can look up when it was sent.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use shared::codec::Encoding;
use shared::protocol::{ChatSend, ClientMessage, CursorMove, Draw, PixelInput};
use shared::{CanvasId, RequestId};
use std::borrow::Cow;

/// The operation publishers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One-pixel draws (durable, sequenced).
    Draw,
    /// Chat messages (durable, sequenced).
    Chat,
    /// Cursor moves (ephemeral).
    Cursor,
}

/// A canvas's size and palette, from the join ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub palette: u16,
}

/// Sub-pixel steps per cursor unit: positions are multiples of 1/64, which
/// an f32 holds exactly on any canvas up to 4096 wide.
const CURSOR_STEPS: u64 = 64;

/// User ids of publishers are `lt-p<N>`.
const PUBLISHER_PREFIX: &str = "lt-p";

/// The user id of publisher `n`.
pub fn publisher_user(n: usize) -> String {
    format!("{PUBLISHER_PREFIX}{n}")
}

/// Which publisher an author id names.
pub fn publisher_of(user: &str) -> Option<usize> {
    user.strip_prefix(PUBLISHER_PREFIX)?.parse().ok()
}

impl Kind {
    /// Whether the server sequences and stores this kind.
    pub fn durable(self) -> bool {
        matches!(self, Kind::Draw | Kind::Chat)
    }

    /// How many distinct counters fit in one message of this kind.
    pub fn modulus(self, g: Geometry) -> u64 {
        let (w, h) = (u64::from(g.width), u64::from(g.height));
        match self {
            Kind::Draw => w * h * u64::from(g.palette),
            Kind::Chat => 1 << 48,
            Kind::Cursor => w * CURSOR_STEPS * h * CURSOR_STEPS,
        }
    }

    /// The command carrying counter `n`, with request id `id`.
    pub fn command(self, canvas: &CanvasId, id: u64, n: u64, g: Geometry) -> ClientMessage {
        let id = Some(RequestId::Num(id));
        let canvas = canvas.clone();
        let n = n % self.modulus(g);
        let (w, h) = (u64::from(g.width), u64::from(g.height));
        match self {
            Kind::Draw => ClientMessage::Draw(Draw {
                id,
                canvas,
                key: None,
                pixels: vec![PixelInput {
                    x: (n % w) as i64,
                    y: (n / w % h) as i64,
                    color: (n / (w * h)) as i64,
                }],
            }),
            Kind::Chat => ClientMessage::Chat(ChatSend {
                id,
                canvas,
                key: None,
                text: format!("load {n}"),
            }),
            Kind::Cursor => {
                let xs = w * CURSOR_STEPS;
                ClientMessage::Cursor(CursorMove {
                    id,
                    canvas,
                    x: (n % xs) as f64 / CURSOR_STEPS as f64,
                    y: (n / xs) as f64 / CURSOR_STEPS as f64,
                })
            }
        }
    }
}

/// Pixels in one stroke: a short horizontal line.
pub const STROKE_PIXELS: u32 = 16;

/// Stroke `n`: a draw of a [`STROKE_PIXELS`]-pixel line, without a request
/// id (no ack; a rejection comes back as an error without an id). Strokes
/// ride beside the publishers' numbered kind: receivers count them, and do
/// not track them per publisher.
pub fn stroke(canvas: &CanvasId, n: u64, g: Geometry) -> ClientMessage {
    let len = STROKE_PIXELS.min(g.width);
    let y = (n % u64::from(g.height)) as i64;
    let x0 = (n / u64::from(g.height) % u64::from(g.width - len + 1)) as i64;
    let color = (n % u64::from(g.palette)) as i64;
    ClientMessage::Draw(Draw {
        id: None,
        canvas: canvas.clone(),
        key: None,
        pixels: (0..i64::from(len))
            .map(|i| PixelInput {
                x: x0 + i,
                y,
                color,
            })
            .collect(),
    })
}

/// A load-test message recognised in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tagged {
    /// The publisher that sent it.
    pub publisher: usize,
    /// Its counter modulo the kind's modulus.
    pub raw: u64,
    /// The canvas sequence number, for durable events.
    pub seq: Option<u64>,
}

/// The fields of a server message that receivers look at. Decoding just
/// these (borrowing strings from the frame) costs a fraction of decoding the
/// full `ServerMessage`, whose tagged enum buffers every field first; at
/// 100,000 deliveries a second that decides whether the load tester or the
/// gateways are being measured.
#[derive(Debug, Deserialize)]
pub struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub author: Option<EventAuthor<'a>>,
    #[serde(default)]
    pub pixels: Vec<EventPixel>,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default)]
    pub x: Option<f32>,
    #[serde(default)]
    pub y: Option<f32>,
}

/// An event's author id.
#[derive(Debug, Deserialize)]
pub struct EventAuthor<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// One pixel of a draw event.
#[derive(Debug, Deserialize)]
pub struct EventPixel {
    pub x: u32,
    pub y: u32,
    pub color: u8,
}

impl<'a> Event<'a> {
    /// Decodes a frame's payload in `encoding`.
    pub fn decode(encoding: Encoding, bytes: &'a [u8]) -> anyhow::Result<Self> {
        Ok(match encoding {
            Encoding::Json => serde_json::from_slice(bytes)?,
            Encoding::Msgpack => rmp_serde::from_slice(bytes)?,
        })
    }
}

/// Recognises a load-test event; `None` for anything else.
pub fn read(ev: &Event<'_>, g: Geometry) -> Option<Tagged> {
    let (w, h) = (u64::from(g.width), u64::from(g.height));
    let publisher = publisher_of(&ev.author.as_ref()?.id)?;
    let raw = match ev.kind.as_ref() {
        "draw" => {
            let p = ev.pixels.first()?;
            u64::from(p.color) * w * h + u64::from(p.y) * w + u64::from(p.x)
        }
        "chat" => ev.text.as_ref()?.strip_prefix("load ")?.parse().ok()?,
        "cursor" => {
            let steps = CURSOR_STEPS as f32;
            let x = (ev.x? * steps).round() as u64;
            let y = (ev.y? * steps).round() as u64;
            y * w * CURSOR_STEPS + x
        }
        _ => return None,
    };
    Some(Tagged {
        publisher,
        raw,
        seq: ev.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::codec;
    use shared::protocol::{Author, ChatEvent, CursorEvent, DrawEvent, Pixel, ServerMessage};

    const G: Geometry = Geometry {
        width: 100,
        height: 80,
        palette: 32,
    };

    fn author(n: usize) -> Author {
        Author {
            id: publisher_user(n),
            name: None,
        }
    }

    /// Turns a command into the event the server would send for it.
    fn echo(cmd: ClientMessage, publisher: usize, seq: Option<u64>) -> ServerMessage {
        let seq = seq.filter(|_| !matches!(cmd, ClientMessage::Cursor(_)));
        let canvas = CanvasId::new("c").expect("id");
        match cmd {
            ClientMessage::Draw(d) => ServerMessage::Draw(DrawEvent {
                canvas,
                seq,
                author: author(publisher),
                ts: 0,
                pixels: d
                    .pixels
                    .iter()
                    .map(|p| Pixel {
                        x: p.x as u32,
                        y: p.y as u32,
                        color: p.color as u8,
                    })
                    .collect(),
            }),
            ClientMessage::Chat(c) => ServerMessage::Chat(ChatEvent {
                canvas,
                seq,
                author: author(publisher),
                ts: 0,
                text: c.text,
            }),
            ClientMessage::Cursor(c) => ServerMessage::Cursor(CursorEvent {
                canvas,
                author: author(publisher),
                ts: 0,
                x: c.x as f32,
                y: c.y as f32,
            }),
            other => panic!("not a load command: {other:?}"),
        }
    }

    #[test]
    fn strokes_are_lines_inside_the_canvas() {
        let canvas = CanvasId::new("c").expect("a valid canvas id");
        let tiny = Geometry {
            width: 5,
            height: 3,
            palette: 2,
        };
        for g in [G, tiny] {
            for n in 0..10_000 {
                let ClientMessage::Draw(d) = stroke(&canvas, n, g) else {
                    panic!("not a draw")
                };
                assert!(d.id.is_none());
                assert_eq!(d.pixels.len() as u32, STROKE_PIXELS.min(g.width));
                for (i, p) in d.pixels.iter().enumerate() {
                    assert!(p.x >= 0 && p.x < i64::from(g.width), "{n}: x {}", p.x);
                    assert!(p.y >= 0 && p.y < i64::from(g.height));
                    assert!(p.color >= 0 && p.color < i64::from(g.palette));
                    assert_eq!(p.x, d.pixels[0].x + i as i64);
                }
            }
        }
    }

    #[test]
    fn every_kind_round_trips_its_counter() {
        let canvas = CanvasId::new("c").expect("id");
        for kind in [Kind::Draw, Kind::Chat, Kind::Cursor] {
            let m = kind.modulus(G);
            for n in [0, 1, 99, 100, 7_999, 8_000, m / 2, m - 1, m, m + 5] {
                let cmd = kind.command(&canvas, 1, n, G);
                let msg = echo(cmd, 7, Some(3));
                for encoding in [Encoding::Json, Encoding::Msgpack] {
                    let bytes = codec::encode(encoding, &msg).expect("encode");
                    let ev = Event::decode(encoding, &bytes).expect("decode");
                    let t = read(&ev, G).unwrap_or_else(|| panic!("{kind:?} {n}"));
                    assert_eq!(t.publisher, 7);
                    assert_eq!(t.raw, n % m, "{kind:?} {n}");
                    assert_eq!(t.seq, kind.durable().then_some(3));
                }
            }
        }
    }

    #[test]
    fn commands_stay_inside_the_canvas() {
        let canvas = CanvasId::new("c").expect("id");
        let m = Kind::Draw.modulus(G);
        match Kind::Draw.command(&canvas, 1, m - 1, G) {
            ClientMessage::Draw(d) => {
                let p = &d.pixels[0];
                assert_eq!((p.x, p.y, p.color), (99, 79, 31));
            }
            other => panic!("{other:?}"),
        }
        match Kind::Cursor.command(&canvas, 1, Kind::Cursor.modulus(G) - 1, G) {
            ClientMessage::Cursor(c) => assert!(c.x < 100.0 && c.y < 80.0, "{c:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_users_messages_are_not_ours() {
        assert_eq!(publisher_of("lt-p12"), Some(12));
        assert_eq!(publisher_of("alice"), None);
        assert_eq!(publisher_of("lt-px"), None);
        let ev = ServerMessage::Chat(ChatEvent {
            canvas: CanvasId::new("c").expect("id"),
            seq: Some(1),
            author: Author {
                id: "alice".into(),
                name: None,
            },
            ts: 0,
            text: "load 5".into(),
        });
        let bytes = codec::encode(Encoding::Json, &ev).expect("encode");
        assert_eq!(
            read(&Event::decode(Encoding::Json, &bytes).expect("decode"), G),
            None
        );
        let escaped = br#"{"type":"chat","canvas":"c","seq":1,"author":{"id":"lt-p\u0031"},"ts":0,"text":"load 5"}"#;
        let ev = Event::decode(Encoding::Json, escaped).expect("escaped strings decode too");
        assert_eq!(read(&ev, G).map(|t| t.publisher), Some(1));
    }
}
