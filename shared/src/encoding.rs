//! The two wire encodings and their negotiation by WebSocket subprotocol:
//! `easel.v1.json` (text frames, the default) or `easel.v1.msgpack`
//! (binary frames). The codec (`codec`) turns messages into frames.

use serde::{Deserialize, Serialize};

/// Subprotocol name for JSON text frames.
pub const JSON_SUBPROTOCOL: &str = "easel.v1.json";
/// Subprotocol name for MessagePack binary frames.
pub const MSGPACK_SUBPROTOCOL: &str = "easel.v1.msgpack";

/// A connection's wire encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// JSON in text frames.
    Json,
    /// MessagePack (named fields) in binary frames.
    Msgpack,
}

impl Encoding {
    /// Both encodings, for tests and fan-out caches indexed by encoding.
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::Msgpack];

    /// The subprotocol that selects this encoding.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => JSON_SUBPROTOCOL,
            Encoding::Msgpack => MSGPACK_SUBPROTOCOL,
        }
    }

    /// A dense index (0 or 1) for per-encoding arrays.
    pub fn index(self) -> usize {
        match self {
            Encoding::Json => 0,
            Encoding::Msgpack => 1,
        }
    }

    /// Picks the encoding from a `Sec-WebSocket-Protocol` header value
    /// (comma-separated offers, in the client's order of preference).
    ///
    /// `Ok(None)` means the client asked for no subprotocol (JSON, and no
    /// protocol header in the response); `Err` means it offered only
    /// subprotocols this server does not speak.
    pub fn negotiate(offered: Option<&str>) -> Result<Option<Encoding>, UnsupportedSubprotocol> {
        let Some(offered) = offered else {
            return Ok(None);
        };
        let mut any = false;
        for offer in offered.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            any = true;
            if offer.eq_ignore_ascii_case(JSON_SUBPROTOCOL) {
                return Ok(Some(Encoding::Json));
            }
            if offer.eq_ignore_ascii_case(MSGPACK_SUBPROTOCOL) {
                return Ok(Some(Encoding::Msgpack));
            }
        }
        if any {
            Err(UnsupportedSubprotocol(offered.chars().take(200).collect()))
        } else {
            Ok(None)
        }
    }

    /// Whether frames in this encoding are binary (otherwise text).
    pub fn is_binary(self) -> bool {
        matches!(self, Encoding::Msgpack)
    }
}

/// The client offered only subprotocols this server does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported subprotocol {0:?}; supported: easel.v1.json, easel.v1.msgpack")]
pub struct UnsupportedSubprotocol(pub String);
