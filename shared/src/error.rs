//! Stable error codes sent in `error` replies, and WebSocket close codes.
//!
//! Every code is documented in docs/PROTOCOL.md. The numeric/string values
//! are part of the public protocol: never renumber, only add.

use serde::{Deserialize, Serialize};

/// A stable error code carried in an `error` reply as `"E001"`..`"E012"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
pub enum ErrorCode {
    /// The server could not set up or keep the connection (capacity, internal failure).
    #[serde(rename = "E001")]
    ConnectionFailed,
    /// The token is missing, malformed, expired, not yet valid or signed wrongly.
    #[serde(rename = "E002")]
    AuthFailed,
    /// A frame or message exceeded the configured size limit.
    #[serde(rename = "E003")]
    MessageTooLarge,
    /// Too many operations; `retry_after_ms` says when to try again.
    #[serde(rename = "E004")]
    RateLimited,
    /// The command is not valid in the connection's current state
    /// (a command before the handshake, a second handshake).
    #[serde(rename = "E005")]
    InvalidSession,
    /// The message could not be decoded: malformed, unknown type, missing or unknown fields.
    #[serde(rename = "E006")]
    InvalidMessage,
    /// The message decoded but a value is out of range (bounds, colour, length).
    #[serde(rename = "E007")]
    InvalidValue,
    /// The user's role does not allow this operation, or the Origin is not allowed.
    #[serde(rename = "E008")]
    Forbidden,
    /// The canvas (or other named thing) does not exist.
    #[serde(rename = "E009")]
    NotFound,
    /// The operation names a canvas this connection has not joined.
    #[serde(rename = "E010")]
    NotJoined,
    /// A per-connection limit was reached (e.g. too many joined canvases).
    #[serde(rename = "E011")]
    LimitReached,
    /// A backend the operation needs (Redis) is unavailable; the operation was not applied.
    #[serde(rename = "E012")]
    Unavailable,
    /// The canvas's unpersisted backlog is at its limit; the durable
    /// operation was not applied. Retry after `retry_after_ms`.
    #[serde(rename = "E013")]
    BacklogFull,
}

impl ErrorCode {
    /// Every code, in order; used by docs tests and the load tester.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::ConnectionFailed,
        ErrorCode::AuthFailed,
        ErrorCode::MessageTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::InvalidSession,
        ErrorCode::InvalidMessage,
        ErrorCode::InvalidValue,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::NotJoined,
        ErrorCode::LimitReached,
        ErrorCode::Unavailable,
        ErrorCode::BacklogFull,
    ];

    /// The wire form, e.g. `"E006"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ConnectionFailed => "E001",
            ErrorCode::AuthFailed => "E002",
            ErrorCode::MessageTooLarge => "E003",
            ErrorCode::RateLimited => "E004",
            ErrorCode::InvalidSession => "E005",
            ErrorCode::InvalidMessage => "E006",
            ErrorCode::InvalidValue => "E007",
            ErrorCode::Forbidden => "E008",
            ErrorCode::NotFound => "E009",
            ErrorCode::NotJoined => "E010",
            ErrorCode::LimitReached => "E011",
            ErrorCode::Unavailable => "E012",
            ErrorCode::BacklogFull => "E013",
        }
    }

    /// A short snake_case name, used as a bounded metric label and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ConnectionFailed => "connection_failed",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidSession => "invalid_session",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BacklogFull => "backlog_full",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server sends. 1xxx are RFC 6455 codes, 4xxx are Easel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the client asked to close, or left cleanly.
    Normal,
    /// 1002: the client broke the WebSocket protocol (e.g. an unmasked frame).
    ProtocolError,
    /// 1007: a text frame was not valid UTF-8.
    InvalidPayload,
    /// 1009: a frame or message exceeded `max_message_bytes`.
    MessageTooBig,
    /// 1012: the server is shutting down or draining; reconnect (to any gateway).
    ServiceRestart,
    /// 4001: the token was rejected (invalid, expired, wrong signature/algorithm/audience).
    AuthFailed,
    /// 4002: no token arrived within the handshake deadline.
    AuthTimeout,
    /// 4003: the connection's token expired (`exp` passed) and no `refresh`
    /// brought a new one.
    TokenExpired,
    /// 4004: the app's backend disconnected the user (server API).
    Disconnected,
    /// 4005: a command arrived before the handshake completed.
    InvalidSession,
    /// 4008: the client did not read fast enough and its outbound queue filled up.
    SlowConsumer,
    /// 4009: nothing was received from the client within the idle timeout (ping unanswered).
    IdleTimeout,
    /// 4011: the user already holds the most connections allowed on this gateway.
    TooManyConnections,
    /// 4029: the client kept sending operations that were refused with E004.
    RateLimited,
}

impl CloseCode {
    /// Every close code the server sends.
    pub const ALL: [CloseCode; 14] = [
        CloseCode::Normal,
        CloseCode::ProtocolError,
        CloseCode::InvalidPayload,
        CloseCode::MessageTooBig,
        CloseCode::ServiceRestart,
        CloseCode::AuthFailed,
        CloseCode::AuthTimeout,
        CloseCode::TokenExpired,
        CloseCode::Disconnected,
        CloseCode::InvalidSession,
        CloseCode::SlowConsumer,
        CloseCode::IdleTimeout,
        CloseCode::TooManyConnections,
        CloseCode::RateLimited,
    ];

    /// The numeric close code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::ProtocolError => 1002,
            CloseCode::InvalidPayload => 1007,
            CloseCode::MessageTooBig => 1009,
            CloseCode::ServiceRestart => 1012,
            CloseCode::AuthFailed => 4001,
            CloseCode::AuthTimeout => 4002,
            CloseCode::TokenExpired => 4003,
            CloseCode::Disconnected => 4004,
            CloseCode::InvalidSession => 4005,
            CloseCode::SlowConsumer => 4008,
            CloseCode::IdleTimeout => 4009,
            CloseCode::TooManyConnections => 4011,
            CloseCode::RateLimited => 4029,
        }
    }

    /// The close reason text (at most 123 bytes, as RFC 6455 requires).
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "bye",
            CloseCode::ProtocolError => "websocket protocol error",
            CloseCode::InvalidPayload => "text frame is not valid UTF-8",
            CloseCode::MessageTooBig => "message too large",
            CloseCode::ServiceRestart => "server restarting, reconnect",
            CloseCode::AuthFailed => "authentication failed",
            CloseCode::AuthTimeout => "no handshake within the deadline",
            CloseCode::TokenExpired => "token expired: refresh before exp",
            CloseCode::Disconnected => "disconnected by the server",
            CloseCode::InvalidSession => "command before handshake",
            CloseCode::SlowConsumer => "slow consumer: outbound queue full",
            CloseCode::IdleTimeout => "idle timeout: no frames received",
            CloseCode::TooManyConnections => "too many connections for this user",
            CloseCode::RateLimited => "rate limit exceeded repeatedly",
        }
    }

    /// A bounded label for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::InvalidPayload => "invalid_payload",
            CloseCode::MessageTooBig => "message_too_big",
            CloseCode::ServiceRestart => "service_restart",
            CloseCode::AuthFailed => "auth_failed",
            CloseCode::AuthTimeout => "auth_timeout",
            CloseCode::TokenExpired => "token_expired",
            CloseCode::Disconnected => "disconnected",
            CloseCode::InvalidSession => "invalid_session",
            CloseCode::SlowConsumer => "slow_consumer",
            CloseCode::IdleTimeout => "idle_timeout",
            CloseCode::TooManyConnections => "too_many_connections",
            CloseCode::RateLimited => "rate_limited",
        }
    }

    /// The close code an error always ends the connection with, if it does.
    ///
    /// This is the one place that decides which error codes close the
    /// connection. `E005` is fatal only before the handshake (a command from
    /// an unauthenticated client closes with 4005); after it, a second
    /// handshake is answered with `E005` and the connection stays open, so
    /// `E005` is not listed here.
    pub fn for_fatal(code: ErrorCode) -> Option<CloseCode> {
        match code {
            ErrorCode::AuthFailed => Some(CloseCode::AuthFailed),
            ErrorCode::MessageTooLarge => Some(CloseCode::MessageTooBig),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_stable_strings() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            let expected = format!("E{:03}", i + 1);
            assert_eq!(code.as_str(), expected);
            assert_eq!(
                serde_json::to_string(code).expect("serializes"),
                format!("\"{expected}\"")
            );
        }
    }

    #[test]
    fn close_reasons_fit_in_a_close_frame() {
        for code in CloseCode::ALL {
            assert!(code.reason().len() <= 123, "{code:?}");
        }
    }
}
