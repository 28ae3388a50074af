//! Identifiers that appear on the wire: canvas ids and client request ids.

use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;

/// Longest canvas id accepted.
pub const MAX_CANVAS_ID_LEN: usize = 64;
/// Longest string request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// A canvas id: 1 to 64 characters from `A-Z a-z 0-9 _ - .`.
///
/// The character set keeps ids safe inside Redis key names and hash tags
/// (no `{`, `}` or `:`), URLs and metric-free log lines. Cloning is a
/// reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ts_rs::TS)]
#[serde(transparent)]
#[ts(type = "string")]
pub struct CanvasId(Arc<str>);

/// Why a canvas id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid canvas id {0:?}: use 1-64 characters from A-Z a-z 0-9 _ - .")]
pub struct InvalidCanvasId(pub String);

impl CanvasId {
    /// Validates and wraps a canvas id.
    pub fn new(id: &str) -> Result<Self, InvalidCanvasId> {
        let ok = !id.is_empty()
            && id.len() <= MAX_CANVAS_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(CanvasId(Arc::from(id)))
        } else {
            let shown: String = id.chars().take(MAX_CANVAS_ID_LEN + 1).collect();
            Err(InvalidCanvasId(shown))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The global channel: announcements and canvas changes.
    /// Channel ids start with `!`, which no canvas id contains, so clients
    /// cannot join them as canvases.
    pub fn global_channel() -> Self {
        CanvasId(Arc::from("!global"))
    }

    /// The channel of `user_online` / `user_offline` (subscribed to as
    /// `online`).
    pub fn online_channel() -> Self {
        CanvasId(Arc::from("!online"))
    }

    /// A user's own channel (notifications), named by the hex of the id so
    /// any user id makes a well-formed Redis key.
    pub fn user_channel(user: &str) -> Self {
        let hex: String = user.bytes().map(|b| format!("{b:02x}")).collect();
        CanvasId(Arc::from(format!("!u.{hex}")))
    }

    /// The user whose channel this is (see [`CanvasId::user_channel`]).
    pub fn user_of_channel(&self) -> Option<String> {
        let hex = self.0.strip_prefix("!u.")?;
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        String::from_utf8(bytes?).ok()
    }

    /// Whether this is a channel rather than a canvas.
    pub fn is_channel(&self) -> bool {
        self.0.starts_with('!')
    }

    /// A canvas or channel id read back from a Redis channel name.
    pub(crate) fn from_key_part(part: &str) -> Option<Self> {
        if part == "!global" || part == "!online" || part.starts_with("!u.") {
            return Some(CanvasId(Arc::from(part)));
        }
        CanvasId::new(part).ok()
    }
}

impl std::fmt::Display for CanvasId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CanvasId {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(de)?;
        CanvasId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A client-chosen request id, echoed in the one reply to that request.
///
/// Either a non-negative integer or a string of at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ts_rs::TS)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id, e.g. a client-side counter.
    Num(u64),
    /// A string id, e.g. a UUID.
    Str(String),
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RequestId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(
                    f,
                    "a non-negative integer or a string of at most {MAX_REQUEST_ID_LEN} bytes"
                )
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RequestId, E> {
                Ok(RequestId::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RequestId, E> {
                u64::try_from(v)
                    .map(RequestId::Num)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RequestId, E> {
                if v.len() > MAX_REQUEST_ID_LEN {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(RequestId::Str(v.to_owned()))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RequestId, E> {
                let s = std::str::from_utf8(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Bytes(v), &self))?;
                self.visit_str(s)
            }
        }
        de.deserialize_any(Visitor)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestId::Num(n) => write!(f, "{n}"),
            RequestId::Str(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_ids_accept_the_documented_alphabet_only() {
        for ok in ["a", "lobby", "Team_7-board.v2", &"x".repeat(64)] {
            assert!(CanvasId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "with space", "a{b}", "a:b", "é", &"x".repeat(65)] {
            assert!(CanvasId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_user_channel_names_its_user() {
        for user in ["ada", "user:42 é", ""] {
            assert_eq!(
                CanvasId::user_channel(user).user_of_channel().as_deref(),
                Some(user)
            );
        }
        assert_eq!(CanvasId::global_channel().user_of_channel(), None);
        assert_eq!(CanvasId(Arc::from("!u.4")).user_of_channel(), None);
        assert_eq!(CanvasId(Arc::from("!u.zz")).user_of_channel(), None);
    }

    #[test]
    fn request_ids_are_numbers_or_short_strings() {
        let n: RequestId = serde_json::from_str("7").expect("number");
        assert_eq!(n, RequestId::Num(7));
        let s: RequestId = serde_json::from_str("\"abc\"").expect("string");
        assert_eq!(s, RequestId::Str("abc".into()));
        assert!(serde_json::from_str::<RequestId>("-1").is_err());
        assert!(serde_json::from_str::<RequestId>("1.5").is_err());
        assert!(serde_json::from_str::<RequestId>(&format!("\"{}\"", "a".repeat(65))).is_err());
        assert!(serde_json::from_str::<RequestId>("[1]").is_err());
    }
}
