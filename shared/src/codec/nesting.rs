//! How deeply a frame nests, measured before it is decoded: serde decodes
//! nested values by recursion, so a small frame of thousands of brackets
//! could exhaust a task's stack (a debug build's first). Both encodings are
//! scanned in one pass without recursion or allocation beyond a counter
//! stack, and a frame nesting deeper than [`MAX_NESTING`] is refused.

use crate::encoding::Encoding;

/// Most levels of arrays and objects (maps) one message may nest, the
/// message itself included.
pub const MAX_NESTING: usize = 32;

/// Most levels a server message (or a bus frame) may nest: it wraps what a
/// client sent (at most [`MAX_NESTING`]) in a few levels of its own.
pub const MAX_SERVER_NESTING: usize = 64;

/// Whether `payload` nests deeper than [`MAX_NESTING`]. A malformed payload
/// is not judged here (the decoder reports it).
pub fn too_deep(encoding: Encoding, payload: &[u8]) -> bool {
    deeper_than(encoding, payload, MAX_NESTING)
}

/// Whether `payload` (one value, or MessagePack values one after another)
/// nests deeper than `max`.
pub fn deeper_than(encoding: Encoding, payload: &[u8], max: usize) -> bool {
    match encoding {
        Encoding::Json => json_depth_exceeds(payload, max),
        Encoding::Msgpack => msgpack_depth_exceeds(payload, max),
    }
}

fn json_depth_exceeds(payload: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    for &b in payload {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// What a MessagePack marker at the start of `rest` is: a container of
/// `n` items, or a scalar taking `len` bytes in all. `None` when truncated.
enum Item {
    Container { header: usize, items: u64 },
    Scalar { len: usize },
}

fn be(rest: &[u8], at: usize, n: usize) -> Option<u64> {
    let bytes = rest.get(at..at + n)?;
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn item(rest: &[u8]) -> Option<Item> {
    let m = *rest.first()?;
    let scalar = |len: usize| Some(Item::Scalar { len });
    let sized = |width: usize, extra: usize| {
        let n = be(rest, 1, width)? as usize;
        Some(Item::Scalar {
            len: 1 + width + extra + n,
        })
    };
    let container = |width: usize, per: u64| {
        let n = be(rest, 1, width)?;
        Some(Item::Container {
            header: 1 + width,
            items: n * per,
        })
    };
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0..=0xc3 => scalar(1),
        0x80..=0x8f => Some(Item::Container {
            header: 1,
            items: u64::from(m & 0x0f) * 2,
        }),
        0x90..=0x9f => Some(Item::Container {
            header: 1,
            items: u64::from(m & 0x0f),
        }),
        0xa0..=0xbf => scalar(1 + usize::from(m & 0x1f)),
        0xc4 | 0xd9 => sized(1, 0),
        0xc5 | 0xda => sized(2, 0),
        0xc6 | 0xdb => sized(4, 0),
        0xc7 => sized(1, 1),
        0xc8 => sized(2, 1),
        0xc9 => sized(4, 1),
        0xca | 0xce | 0xd2 => scalar(5),
        0xcb | 0xcf | 0xd3 => scalar(9),
        0xcc | 0xd0 => scalar(2),
        0xcd | 0xd1 => scalar(3),
        0xd4 => scalar(3),
        0xd5 => scalar(4),
        0xd6 => scalar(6),
        0xd7 => scalar(10),
        0xd8 => scalar(18),
        0xdc => container(2, 1),
        0xdd => container(4, 1),
        0xde => container(2, 2),
        0xdf => container(4, 2),
    }
}

fn msgpack_depth_exceeds(payload: &[u8], max: usize) -> bool {
    // Items still to read in each open container, innermost last.
    let mut open: Vec<u64> = Vec::new();
    let mut at = 0;
    loop {
        while open.last() == Some(&0) {
            open.pop();
        }
        if at >= payload.len() {
            return false;
        }
        if let Some(left) = open.last_mut() {
            *left -= 1;
        }
        match item(&payload[at..]) {
            None => return false,
            Some(Item::Scalar { len }) => at += len,
            Some(Item::Container { header, items }) => {
                at += header;
                if items > 0 {
                    if open.len() + 1 > max {
                        return true;
                    }
                    open.push(items);
                } else if open.len() + 1 > max {
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(depth: usize) -> Vec<u8> {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
    }

    fn msgpack(depth: usize) -> Vec<u8> {
        // Arrays of one element, the innermost empty.
        let mut v = vec![0x91; depth.saturating_sub(1)];
        v.push(0x90);
        v
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert!(!json_depth_exceeds(&json(32), 32));
        assert!(json_depth_exceeds(&json(33), 32));
        assert!(!json_depth_exceeds(br#"{"t":"[[[[[[\"[[[["}"#, 2));
        assert!(json_depth_exceeds(br#"{"a":{"b":[1]}}"#, 2));
    }

    #[test]
    fn msgpack_depth_follows_maps_arrays_and_skips_scalars() {
        assert!(!msgpack_depth_exceeds(&msgpack(32), 32));
        assert!(msgpack_depth_exceeds(&msgpack(33), 32));
        assert!(msgpack_depth_exceeds(&msgpack(570), 32));
        // {"a": "xyz", "b": [1, [2]]}: depth 3.
        let v = rmp_serde::to_vec_named(&serde_json::json!({"a": "xyz", "b": [1, [2]]}))
            .expect("encodes");
        assert!(!msgpack_depth_exceeds(&v, 3));
        assert!(msgpack_depth_exceeds(&v, 2));
        // Truncated input is left to the decoder.
        assert!(!msgpack_depth_exceeds(&[0xdc, 0x00], 1));
    }
}

#[cfg(test)]
mod refusals {
    use super::MAX_NESTING;
    use crate::codec::decode_client;
    use crate::encoding::Encoding;

    #[test]
    fn frames_nesting_deeper_than_the_limit_are_refused_before_decoding() {
        // A `chat` whose text is fine but whose unknown field nests 600 deep:
        // without the limit, serde would recurse 600 times (a debug build's
        // task stack overflows well before rmp-serde's own limit of 1024).
        for depth in [MAX_NESTING, 600] {
            let deep = format!(
                r#"{{"type":"ping","x":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let err = decode_client(Encoding::Json, deep.as_bytes()).expect_err("refused");
            assert!(err.message.contains("nest"), "{depth}: {}", err.message);
            let mut packed = vec![0x82, 0xa4];
            packed.extend_from_slice(b"type");
            packed.push(0xa4);
            packed.extend_from_slice(b"ping");
            packed.push(0xa1);
            packed.push(b'x');
            packed.extend(std::iter::repeat_n(0x91, depth - 1));
            packed.push(0x90);
            let err = decode_client(Encoding::Msgpack, &packed).expect_err("refused");
            assert!(err.message.contains("nest"), "{depth}: {}", err.message);
        }
        // Within the limit, depth is no reason to refuse.
        let ok = format!(
            r#"{{"type":"object_create","canvas":"c","kind":"token","x":1,"y":1,"w":1,"h":1,"props":{{"a":{}1{}}}}}"#,
            "[".repeat(MAX_NESTING - 3),
            "]".repeat(MAX_NESTING - 3)
        );
        assert!(decode_client(Encoding::Json, ok.as_bytes()).is_ok());
    }
}
