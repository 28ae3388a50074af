//! The frame gateways exchange over the bus (Redis pub/sub or in-memory).
//!
//! Layout: a MessagePack header map, immediately followed by the event as a
//! MessagePack-encoded [`ServerMessage`] — byte for byte the frame a
//! MessagePack client receives. A receiving node can therefore hand the tail
//! of the bus payload to its MessagePack members without re-encoding, and
//! decodes it only once to produce the JSON frame.

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
}

/// A bus payload that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BusFrameError {
    #[error("bus frame header unreadable")]
    Header(#[source] rmp_serde::decode::Error),
    #[error("bus frame has no event after its header")]
    Empty,
    #[error("bus frame encoding failed")]
    Encode(#[source] rmp_serde::encode::Error),
}

/// Encodes a header and an event into one bus payload.
pub fn encode(header: &BusHeader, event: &ServerMessage) -> Result<Vec<u8>, BusFrameError> {
    let mut out = Vec::with_capacity(128);
    rmp_serde::encode::write_named(&mut out, header).map_err(BusFrameError::Encode)?;
    rmp_serde::encode::write_named(&mut out, event).map_err(BusFrameError::Encode)?;
    Ok(out)
}

/// Splits a bus payload into its header and the event's MessagePack bytes
/// (a zero-copy slice of `payload`).
pub fn split(payload: &Bytes) -> Result<(BusHeader, Bytes), BusFrameError> {
    let mut cursor = std::io::Cursor::new(payload.as_ref());
    let header: BusHeader = {
        let mut de = rmp_serde::Deserializer::new(&mut cursor);
        Deserialize::deserialize(&mut de).map_err(BusFrameError::Header)?
    };
    let at = cursor.position() as usize;
    if at >= payload.len() {
        return Err(BusFrameError::Empty);
    }
    Ok((header, payload.slice(at..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Encoding, decode_server, encode as encode_msg};
    use crate::ids::CanvasId;
    use crate::protocol::{Author, ChatEvent};

    #[test]
    fn the_tail_is_exactly_the_msgpack_client_frame() {
        let header = BusHeader {
            node: "gw-a".into(),
            conn: 42,
            ingest_us: 1_700_000_000_000_000,
        };
        let event = ServerMessage::Chat(ChatEvent {
            canvas: CanvasId::new("c").expect("valid"),
            author: Author {
                id: "u".into(),
                name: None,
            },
            ts: 3,
            text: "hello".into(),
        });
        let payload = Bytes::from(encode(&header, &event).expect("encodes"));
        let (h, tail) = split(&payload).expect("splits");
        assert_eq!(h, header);
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
        })
        .expect("encodes");
        assert!(matches!(
            split(&Bytes::from(header_only)),
            Err(BusFrameError::Empty)
        ));
    }
}
