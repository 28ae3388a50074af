//! The frame gateways exchange over the bus (Redis pub/sub or in-memory).
//!
//! Layout: a MessagePack header map, then the event's sequence number (a
//! MessagePack unsigned integer for durable events, `nil` for ephemeral
//! ones), then the event as a MessagePack-encoded [`ServerMessage`].
//!
//! For an ephemeral event (cursor) the tail is byte for byte the frame a
//! MessagePack client receives, so a receiving node hands it on without
//! re-encoding. A durable event's sequence number is assigned inside Redis
//! by the publish script, which writes it between header and event; the
//! receiving node decodes the event once, sets `seq`, and encodes it once
//! per wire encoding.

use crate::protocol::ServerMessage;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Who published an event and when; never sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusHeader {
    /// Node id of the gateway that accepted the operation.
    pub node: String,
    /// Connection number on that node; with `node`, identifies the sender
    /// so it does not receive its own event unless it asked for echo.
    pub conn: u64,
    /// Ingest time on the origin node, microseconds since the Unix epoch.
    pub ingest_us: u64,
    /// Gm-only data (about a fog object): members who are not gms get a
    /// `hidden` event in its place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gm_only: bool,
    /// A [`Signal`] to the channel's members' connections, not an event:
    /// nothing is queued to any client.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
}

/// What a control frame tells the connections that are members of its
/// channel (their own sessions act on it; clients see only the outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "signal")]
pub enum Signal {
    /// Access to the canvas changed (its visibility, a membership, or the
    /// canvas was deleted): connections of `user` (of every user when
    /// `None`) check again whether and as what they may stay.
    Access { user: Option<String> },
    /// The server disconnects `user` everywhere: its connections close.
    Disconnect { user: String },
    /// `user`'s connections came to or left a gateway: the gateways
    /// holding the others count again how many gateways share the user's
    /// rate limits.
    Spread { user: String },
}

impl Signal {
    /// The whole bus payload of this signal from `node`.
    pub fn frame(&self, node: &str) -> Result<Vec<u8>, BusFrameError> {
        let mut header = BusHeader::now(node, 0);
        header.control = true;
        let mut out = encode_header(&header)?;
        out.extend_from_slice(&encode_seq(None));
        out.extend_from_slice(&rmp_serde::to_vec_named(self).map_err(BusFrameError::Encode)?);
        Ok(out)
    }

    /// The signal carried by a control frame's event bytes.
    pub fn decode(event: &[u8]) -> Result<Signal, BusFrameError> {
        rmp_serde::from_slice(event).map_err(BusFrameError::Header)
    }
}

impl BusHeader {
    /// The header of an event node `node` publishes now for its connection
    /// `conn` (0: from no connection, so no member is skipped as its sender).
    pub fn now(node: &str, conn: u64) -> Self {
        BusHeader {
            node: node.to_owned(),
            conn,
            ingest_us: crate::now_us(),
            gm_only: false,
            control: false,
        }
    }
}

/// A bus payload that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BusFrameError {
    #[error("bus frame header unreadable")]
    Header(#[source] rmp_serde::decode::Error),
    #[error("bus frame has no event after its header")]
    Empty,
    #[error("bus frame nests deeper than any event may")]
    TooDeep,
    #[error("bus frame encoding failed")]
    Encode(#[source] rmp_serde::encode::Error),
}

/// Encodes the header alone: the prefix the durable publish script puts
/// before the sequence number it assigns.
pub fn encode_header(header: &BusHeader) -> Result<Vec<u8>, BusFrameError> {
    let mut out = Vec::with_capacity(64);
    rmp_serde::encode::write_named(&mut out, header).map_err(BusFrameError::Encode)?;
    Ok(out)
}

/// Encodes an event alone (the suffix after the sequence number).
pub fn encode_event(event: &ServerMessage) -> Result<Vec<u8>, BusFrameError> {
    rmp_serde::to_vec_named(event).map_err(BusFrameError::Encode)
}

/// The MessagePack form of a sequence number as the publish script writes
/// it: `0xcf` and eight big-endian bytes (`None` is `nil`).
pub fn encode_seq(seq: Option<u64>) -> Vec<u8> {
    match seq {
        Some(seq) => {
            let mut out = Vec::with_capacity(9);
            out.push(0xcf);
            out.extend_from_slice(&seq.to_be_bytes());
            out
        }
        None => vec![0xc0],
    }
}

/// Encodes a whole bus payload.
pub fn encode(
    header: &BusHeader,
    seq: Option<u64>,
    event: &ServerMessage,
) -> Result<Vec<u8>, BusFrameError> {
    let mut out = encode_header(header)?;
    out.extend_from_slice(&encode_seq(seq));
    out.extend_from_slice(&encode_event(event)?);
    Ok(out)
}

/// A bus payload taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Parts {
    pub header: BusHeader,
    /// The sequence number of a durable event.
    pub seq: Option<u64>,
    /// The event's MessagePack bytes (a zero-copy slice of the payload).
    pub event: Bytes,
}

/// Splits a bus payload into header, sequence number and event bytes.
pub fn split(payload: &Bytes) -> Result<Parts, BusFrameError> {
    // serde would recurse into a deep header (an unknown field's value).
    if crate::codec::deeper_than(
        crate::codec::Encoding::Msgpack,
        payload,
        crate::codec::MAX_SERVER_NESTING,
    ) {
        return Err(BusFrameError::TooDeep);
    }
    let mut cursor = std::io::Cursor::new(payload.as_ref());
    let (header, seq): (BusHeader, Option<u64>) = {
        let mut de = rmp_serde::Deserializer::new(&mut cursor);
        let header = Deserialize::deserialize(&mut de).map_err(BusFrameError::Header)?;
        let seq = Deserialize::deserialize(&mut de).map_err(BusFrameError::Header)?;
        (header, seq)
    };
    let at = cursor.position() as usize;
    if at >= payload.len() {
        return Err(BusFrameError::Empty);
    }
    Ok(Parts {
        header,
        seq,
        event: payload.slice(at..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Encoding, decode_server, encode as encode_msg};
    use crate::ids::CanvasId;
    use crate::protocol::{Author, ChatEvent};

    #[test]
    fn sequence_numbers_survive_the_frame_in_every_width() {
        let header = BusHeader {
            node: "n".into(),
            conn: 1,
            ingest_us: 2,
            gm_only: false,
            control: false,
        };
        let event = ServerMessage::Resync(crate::protocol::Resync {
            canvas: CanvasId::new("c").expect("valid"),
            reason: crate::protocol::ResyncReason::BusReconnected,
        });
        for seq in [
            None,
            Some(0),
            Some(1),
            Some(200),
            Some(70_000),
            Some(u64::MAX),
        ] {
            let payload = Bytes::from(encode(&header, seq, &event).expect("encodes"));
            let parts = split(&payload).expect("splits");
            assert_eq!(parts.seq, seq);
            assert_eq!(parts.header, header);
        }
    }

    #[test]
    fn the_tail_is_exactly_the_msgpack_client_frame() {
        let header = BusHeader {
            node: "gw-a".into(),
            conn: 42,
            ingest_us: 1_700_000_000_000_000,
            gm_only: false,
            control: false,
        };
        let event = ServerMessage::Chat(ChatEvent {
            canvas: CanvasId::new("c").expect("valid"),
            seq: None,
            author: Author {
                id: "u".into(),
                name: None,
            },
            ts: 3,
            text: "hello".into(),
        });
        let payload = Bytes::from(encode(&header, None, &event).expect("encodes"));
        let Parts {
            header: h,
            seq,
            event: tail,
        } = split(&payload).expect("splits");
        assert_eq!(h, header);
        assert_eq!(seq, None);
        assert_eq!(
            tail.as_ref(),
            encode_msg(Encoding::Msgpack, &event)
                .expect("encodes")
                .as_slice()
        );
        assert_eq!(
            decode_server(Encoding::Msgpack, &tail).expect("decodes"),
            event
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"\xc1", b"\x93\x01", b"hello"] {
            assert!(split(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        let header_only = rmp_serde::to_vec_named(&BusHeader {
            node: "n".into(),
            conn: 1,
            ingest_us: 2,
            gm_only: false,
            control: false,
        })
        .expect("encodes");
        assert!(split(&Bytes::from(header_only.clone())).is_err());
        let mut no_event = header_only;
        no_event.push(0xc0);
        assert!(matches!(
            split(&Bytes::from(no_event)),
            Err(BusFrameError::Empty)
        ));
    }

    #[test]
    fn deep_frames_and_events_are_refused_before_decoding() {
        // Found by the fuzzer: thousands of nested arrays overflowed a
        // debug build's stack in serde before any limit applied.
        let mut frame = encode_header(&BusHeader {
            node: "n".into(),
            conn: 1,
            ingest_us: 0,
            gm_only: false,
            control: false,
        })
        .expect("a header");
        frame.extend(std::iter::repeat_n(0x91, 5000));
        frame.push(0x90);
        assert!(matches!(
            split(&Bytes::from(frame)),
            Err(BusFrameError::TooDeep)
        ));
        let mut event = vec![0x81, 0xa1, b'x'];
        event.extend(std::iter::repeat_n(0x91, 5000));
        event.push(0x90);
        let err = decode_server(Encoding::Msgpack, &event).expect_err("refused");
        assert!(err.message.contains("nest"), "{}", err.message);
        let json = format!("{{\"x\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(decode_server(Encoding::Json, json.as_bytes()).is_err());
    }
}
