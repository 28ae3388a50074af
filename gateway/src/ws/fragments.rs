//! Large server messages go out as WebSocket fragments.
//!
//! tungstenite formats every frame into one write buffer that keeps the
//! capacity of the largest thing it ever held: a 192 KiB history page
//! would leave its connection holding 192 KiB for life. Sent as fragments
//! of at most [`FRAGMENT_BYTES`], and with the buffer written out once it
//! passes [`crate::ws::writer::WRITE_BUFFER_BYTES`], the buffer never
//! holds more than those two together (its capacity, with the vector's
//! doubling, at most about twice that). Clients see one message: every
//! WebSocket implementation reassembles fragments (RFC 6455, 5.4).

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The largest payload of one server frame.
pub(crate) const FRAGMENT_BYTES: usize = 4 << 10;

/// A message as the writer sends it.
pub(crate) enum Outgoing {
    /// In one frame: it fits, or is a control frame.
    Whole(Message),
    /// As these frames, in order: a first frame with the message's type,
    /// continuations, the last one final.
    Fragments(std::vec::IntoIter<Frame>),
}

/// Splits a text or binary message larger than [`FRAGMENT_BYTES`].
pub(crate) fn prepare(msg: Message) -> Outgoing {
    if msg.len() <= FRAGMENT_BYTES {
        return Outgoing::Whole(msg);
    }
    let (kind, payload) = match msg {
        Message::Text(text) => (Data::Text, bytes::Bytes::from(text)),
        Message::Binary(data) => (Data::Binary, data),
        other => return Outgoing::Whole(other),
    };
    let count = payload.len().div_ceil(FRAGMENT_BYTES);
    let frames: Vec<Frame> = (0..count)
        .map(|i| {
            let start = i * FRAGMENT_BYTES;
            let end = (start + FRAGMENT_BYTES).min(payload.len());
            let kind = if i == 0 { kind } else { Data::Continue };
            // Slices of the same bytes: no copy.
            Frame::message(
                payload.slice(start..end),
                OpCode::Data(kind),
                i + 1 == count,
            )
        })
        .collect();
    Outgoing::Fragments(frames.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(msg: Message) -> Vec<Frame> {
        match prepare(msg) {
            Outgoing::Whole(m) => panic!("sent whole: {} bytes", m.len()),
            Outgoing::Fragments(f) => f.collect(),
        }
    }

    #[test]
    fn small_and_control_messages_go_whole() {
        let small = Message::Text("x".repeat(FRAGMENT_BYTES).into());
        assert!(
            matches!(prepare(small), Outgoing::Whole(Message::Text(t)) if t.len() == FRAGMENT_BYTES)
        );
        let ping = Message::Ping(vec![0; 100].into());
        assert!(matches!(prepare(ping), Outgoing::Whole(Message::Ping(_))));
    }

    #[test]
    fn a_large_text_is_split_into_continuations_that_add_up() {
        // Multi-byte characters across the cuts: fragments need not be
        // valid UTF-8 on their own, only the whole message.
        let text = "é".repeat(FRAGMENT_BYTES + 7);
        let parts = frames(Message::Text(text.clone().into()));
        assert_eq!(parts.len(), (text.len()).div_ceil(FRAGMENT_BYTES));
        let mut joined = Vec::new();
        for (i, f) in parts.iter().enumerate() {
            let want = if i == 0 { Data::Text } else { Data::Continue };
            assert_eq!(f.header().opcode, OpCode::Data(want), "frame {i}");
            assert_eq!(f.header().is_final, i + 1 == parts.len(), "frame {i}");
            assert!(f.payload().len() <= FRAGMENT_BYTES);
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(joined, text.as_bytes());
    }

    #[test]
    fn a_large_binary_keeps_its_type() {
        let data: Vec<u8> = (0..3 * FRAGMENT_BYTES).map(|i| i as u8).collect();
        let parts = frames(Message::Binary(data.clone().into()));
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].header().opcode, OpCode::Data(Data::Binary));
        let joined: Vec<u8> = parts.iter().flat_map(|f| f.payload().to_vec()).collect();
        assert_eq!(joined, data);
    }
}
