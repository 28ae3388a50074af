//! The canvas log's stream entry format, read in one place: an entry's id
//! is `<seq>-0` and its field `p` holds the bus payload (the frame header,
//! the sequence number and the MessagePack event).

use bytes::Bytes;
use redis::streams::StreamId;

/// The field of a stream entry that holds the bus payload.
pub const PAYLOAD_FIELD: &str = "p";

/// The stream entry id of sequence number `seq`.
pub fn entry_id(seq: u64) -> String {
    format!("{seq}-0")
}

/// The sequence number of a stream entry id.
pub fn seq_of(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// An entry's sequence number and bus payload; `None` for an entry that
/// is not one of the log's.
pub fn entry(entry: &StreamId) -> Option<(u64, Bytes)> {
    let seq = seq_of(&entry.id)?;
    let payload: Vec<u8> = entry.get(PAYLOAD_FIELD)?;
    Some((seq, Bytes::from(payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_sequence_number() {
        assert_eq!(seq_of(&entry_id(42)), Some(42));
        assert_eq!(seq_of("7-3"), Some(7));
        assert_eq!(seq_of("x-0"), None);
        assert_eq!(seq_of("7"), None);
    }
}
