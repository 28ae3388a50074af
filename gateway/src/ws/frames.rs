//! What a frame from the client means: its kind against the connection's
//! encoding, its decoded command, and what a read error tells the client.
//! Plain functions, so the read loop's future holds none of their state.

use super::outbox::Outbox;
use crate::state::AppState;
use shared::codec::{self, Encoding};
use shared::protocol::ClientMessage;
use shared::{CloseCode, ErrorCode};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{self, Message};

/// What a received frame means for this connection.
pub(super) enum Inbound<'a> {
    /// A data frame in the connection's encoding.
    Data(&'a [u8]),
    /// A data frame of the other kind (binary on JSON, text on MessagePack).
    WrongKind,
    /// Ping/pong: liveness only.
    Control,
    /// The peer closed.
    Close,
}

pub(super) fn classify(msg: &Message, encoding: Encoding) -> Inbound<'_> {
    match (msg, encoding) {
        (Message::Text(t), Encoding::Json) => Inbound::Data(t.as_bytes()),
        (Message::Binary(b), Encoding::Msgpack) => Inbound::Data(b),
        (Message::Text(_) | Message::Binary(_), _) => Inbound::WrongKind,
        (Message::Ping(_) | Message::Pong(_) | Message::Frame(_), _) => Inbound::Control,
        (Message::Close(_), _) => Inbound::Close,
    }
}

pub(super) fn wrong_kind(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "this connection speaks easel.v1.json: send text frames",
        Encoding::Msgpack => "this connection speaks easel.v1.msgpack: send binary frames",
    }
}

/// Handles a read error: reports what the client can act on, then closes.
pub(super) fn read_failed(out: &Outbox, err: &tungstenite::Error, max_message_bytes: usize) {
    match err {
        tungstenite::Error::Capacity(_) => out.error(
            None,
            ErrorCode::MessageTooLarge,
            format!("message exceeds {max_message_bytes} bytes"),
        ),
        tungstenite::Error::Utf8(_) => {
            out.control.close(CloseCode::InvalidPayload);
        }
        // The socket closed without a Close frame (a tab or process gone,
        // a network drop): the connection ended, as with a reset (below);
        // the client broke nothing it could be told about.
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            tracing::debug!("connection ended without a close frame");
            out.control.close(CloseCode::Normal);
        }
        tungstenite::Error::Protocol(p) => {
            tracing::debug!(error = %p, "websocket protocol error");
            out.control.close(CloseCode::ProtocolError);
        }
        other => {
            tracing::debug!(error = %other, "read failed");
            out.control.close(CloseCode::Normal);
        }
    }
}

/// What a frame from the client asks of the read loop.
pub(super) enum Frame {
    /// Nothing more to do (a reply, if any, is queued).
    Done,
    /// The connection is to close.
    Close,
    /// A command to run.
    Command(ClientMessage),
}

/// Decodes one frame the client sent; errors are answered here.
pub(super) fn on_frame(state: &AppState, out: &Outbox, msg: &Message) -> Frame {
    state.metrics.bytes_received.inc_by(msg.len() as u64);
    match classify(msg, out.encoding) {
        Inbound::Data(bytes) => match codec::decode_client(out.encoding, bytes) {
            Ok(cmd) => {
                state.metrics.messages_received.inc(cmd.kind());
                Frame::Command(cmd)
            }
            Err(err) => {
                out.error(err.id, ErrorCode::InvalidMessage, err.message);
                Frame::Done
            }
        },
        Inbound::WrongKind => {
            out.error(None, ErrorCode::InvalidMessage, wrong_kind(out.encoding));
            Frame::Done
        }
        Inbound::Control => Frame::Done,
        Inbound::Close => {
            out.control.close(CloseCode::Normal);
            Frame::Close
        }
    }
}
