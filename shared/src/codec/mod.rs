//! The two wire encodings and the functions that turn frames into messages
//! and back.
//!
//! The encoding is negotiated per connection with the WebSocket subprotocol:
//! `easel.v1.json` (text frames, also the default when no subprotocol is
//! asked for) or `easel.v1.msgpack` (binary frames, MessagePack maps with the
//! same field names as JSON).

mod nesting;

pub use crate::encoding::{
    Encoding, JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, UnsupportedSubprotocol,
};
pub use nesting::{MAX_NESTING, MAX_SERVER_NESTING, deeper_than};

use crate::ids::RequestId;
use crate::protocol::{ClientMessage, ServerMessage};
use serde::{Deserialize, Serialize};

/// A frame that could not be decoded into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// The request id, when the frame was readable enough to find one, so the
    /// error reply can still be matched to its request.
    pub id: Option<RequestId>,
    /// What was wrong, for humans.
    pub message: String,
}

/// Failure to encode a server message (never expected for Easel's own types).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("json encoding failed")]
    Json(#[source] serde_json::Error),
    #[error("msgpack encoding failed")]
    Msgpack(#[source] rmp_serde::encode::Error),
}

/// Longest decode error message sent back to a client.
const MAX_ERROR_MESSAGE: usize = 200;

/// Used only on the error path, to recover the `id` of a message that failed
/// to decode as a whole.
#[derive(Deserialize)]
struct IdProbe {
    #[serde(default)]
    id: Option<RequestId>,
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_MESSAGE {
        let mut cut = MAX_ERROR_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Decodes one client frame's payload in the given encoding.
///
/// A message must be a JSON object or a MessagePack map: serde would also
/// accept the sequence form of a tagged enum (`["join", ...]`, or the
/// struct-as-array MessagePack that rmp-serde writes by default), which is
/// not part of the protocol and would silently depend on field order.
pub fn decode_client(encoding: Encoding, payload: &[u8]) -> Result<ClientMessage, DecodeError> {
    if nesting::too_deep(encoding, payload) {
        return Err(DecodeError {
            id: None,
            message: format!("a message may nest at most {MAX_NESTING} levels"),
        });
    }
    if !is_map(encoding, payload) {
        return Err(DecodeError {
            id: None,
            message: match encoding {
                Encoding::Json => "a message must be a JSON object".into(),
                Encoding::Msgpack => "a message must be a MessagePack map".into(),
            },
        });
    }
    match encoding {
        Encoding::Json => serde_json::from_slice(payload).map_err(|e| DecodeError {
            id: serde_json::from_slice::<IdProbe>(payload)
                .ok()
                .and_then(|p| p.id),
            message: truncate(e.to_string()),
        }),
        Encoding::Msgpack => rmp_serde::from_slice(payload).map_err(|e| DecodeError {
            id: rmp_serde::from_slice::<IdProbe>(payload)
                .ok()
                .and_then(|p| p.id),
            message: truncate(e.to_string()),
        }),
    }
}

fn is_map(encoding: Encoding, payload: &[u8]) -> bool {
    match encoding {
        Encoding::Json => payload
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{'),
        Encoding::Msgpack => payload
            .first()
            .is_some_and(|b| matches!(b, 0x80..=0x8f | 0xde | 0xdf)),
    }
}

/// Encodes any serializable protocol value in the given encoding.
pub fn encode<T: Serialize>(encoding: Encoding, msg: &T) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::Json => serde_json::to_vec(msg).map_err(EncodeError::Json),
        Encoding::Msgpack => rmp_serde::to_vec_named(msg).map_err(EncodeError::Msgpack),
    }
}

/// Decodes a server message (used by clients: the load tester and tests,
/// and by gateways for events from the bus), refusing one that nests
/// deeper than [`MAX_SERVER_NESTING`] before serde recurses into it.
pub fn decode_server(encoding: Encoding, payload: &[u8]) -> Result<ServerMessage, DecodeError> {
    if nesting::deeper_than(encoding, payload, MAX_SERVER_NESTING) {
        return Err(DecodeError {
            id: None,
            message: format!("a server message may nest at most {MAX_SERVER_NESTING} levels"),
        });
    }
    let res = match encoding {
        Encoding::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
        Encoding::Msgpack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
    };
    res.map_err(|message| DecodeError {
        id: None,
        message: truncate(message),
    })
}

#[cfg(test)]
mod tests;
