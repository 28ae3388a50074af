//! The durable canvas log: sequence numbers, canvas state and the event
//! stream, in Redis (cluster) or in memory (standalone).
//!
//! A durable operation is one atomic step: take the canvas's next sequence
//! number, apply the change to the canvas state, append the event to the
//! canvas log, and publish it. In Redis that step is `scripts/publish.lua`
//! (loaded once, invoked by SHA); in memory it runs under the canvas's lock.
//! Either way every member sees a canvas's events in sequence order.

use crate::hub::Hub;
use crate::objects::{Change, ObjectOp, Outcome, Refusal};
use bytes::Bytes;
use parking_lot::Mutex;
use shared::CanvasId;
use shared::busframe;
use std::collections::{HashMap, VecDeque};

/// A canvas's place in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The last sequence number assigned (0 before the first event).
    pub seq: u64,
    /// The history's epoch; a new one starts when the history is lost.
    pub epoch: String,
}

/// The canvas state change a durable operation makes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PixelChange {
    /// Bits per cell in the packed state: 5 for palettes of up to 32
    /// colours, 8 up to 256.
    pub bits: u8,
    /// Cells on the canvas (width x height).
    pub cell_count: usize,
    /// `(cell index = y * width + x, palette index)`, applied in order.
    pub cells: Vec<(u32, u8)>,
}

impl PixelChange {
    /// Bits per cell for a palette of `palette_size` colours.
    pub fn bits_for(palette_size: u16) -> u8 {
        if palette_size <= 32 { 5 } else { 8 }
    }
}

/// A canvas's pixels and the position they include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub epoch: Option<String>,
    /// Palette index of each cell, row-major; cells never drawn are 0.
    pub cells: Vec<u8>,
}

/// Unpacks a Redis BITFIELD of `bits`-wide unsigned cells (most significant
/// bit first, as Redis stores them) into one byte per cell.
pub fn unpack_cells(packed: &[u8], bits: u8, count: usize) -> Vec<u8> {
    let bits = usize::from(bits);
    (0..count)
        .map(|i| {
            let mut v = 0u8;
            for b in 0..bits {
                let at = i * bits + b;
                let byte = packed.get(at / 8).copied().unwrap_or(0);
                let bit = (byte >> (7 - at % 8)) & 1;
                v = (v << 1) | bit;
            }
            v
        })
        .collect()
}

/// Sets cell `index` to `value` in a packed MSB-first BITFIELD of
/// `bits`-wide cells (the inverse of [`unpack_cells`]), growing it as needed.
pub fn pack_cell(packed: &mut Vec<u8>, bits: u8, index: usize, value: u8) {
    let bits = usize::from(bits);
    let end_bit = (index + 1) * bits;
    let need = end_bit.div_ceil(8);
    if packed.len() < need {
        packed.resize(need, 0);
    }
    for b in 0..bits {
        let at = index * bits + b;
        let bit = (value >> (bits - 1 - b)) & 1;
        let mask = 1u8 << (7 - at % 8);
        if bit == 1 {
            packed[at / 8] |= mask;
        } else {
            packed[at / 8] &= !mask;
        }
    }
}

/// A canvas's history as read back from durable storage, to rebuild Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The last sequence number the history holds.
    pub seq: u64,
    /// The cells after applying it, packed as Redis holds them.
    pub packed: Vec<u8>,
    /// The objects after applying it.
    pub objects: crate::objects::Objects,
}

/// What a [`History`] method returns.
pub type HistoryFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// Where a canvas's history can be reloaded from after Redis lost it.
pub trait History: Send + Sync {
    /// The canvas's history, or `None` if it has none.
    fn load<'a>(&'a self, canvas: &'a CanvasId) -> HistoryFuture<'a, Option<Restored>>;

    /// Stored events with `after < seq <= until`, oldest first, at most
    /// `limit`, as bus payloads (for ranges Redis no longer keeps).
    fn events<'a>(
        &'a self,
        canvas: &'a CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> HistoryFuture<'a, Vec<(u64, Bytes)>>;

    /// Stored chat events with `seq < before`, newest first, at most `limit`.
    fn chat_before<'a>(
        &'a self,
        canvas: &'a CanvasId,
        before: u64,
        limit: usize,
    ) -> HistoryFuture<'a, Vec<(u64, Bytes)>>;
}

/// Whether a bus payload holds an event of `kind`.
pub fn payload_is(payload: &Bytes, kind: &str) -> bool {
    busframe::split(payload)
        .ok()
        .and_then(|parts| {
            shared::codec::decode_server(shared::codec::Encoding::Msgpack, &parts.event).ok()
        })
        .is_some_and(|msg| msg.kind() == kind)
}

/// Standalone mode's log: the same semantics in process memory.
pub(crate) struct MemoryLog {
    canvases: Mutex<HashMap<CanvasId, CanvasLog>>,
    /// Events kept per canvas (the stream bound).
    max_events: usize,
}

struct CanvasLog {
    seq: u64,
    epoch: String,
    /// One byte per cell, allocated on the first pixel change.
    cells: Vec<u8>,
    objects: crate::objects::Objects,
    /// The last `max_events` bus payloads, oldest first.
    events: VecDeque<(u64, Bytes)>,
}

impl CanvasLog {
    fn new() -> Self {
        CanvasLog {
            seq: 0,
            epoch: new_epoch(),
            cells: Vec::new(),
            objects: Default::default(),
            events: VecDeque::new(),
        }
    }
}

/// A fresh epoch id: unique enough to tell two histories apart.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl MemoryLog {
    pub(crate) fn new(max_events: usize) -> Self {
        MemoryLog {
            canvases: Mutex::new(HashMap::new()),
            max_events: max_events.max(1),
        }
    }

    pub(crate) fn position(&self, canvas: &CanvasId) -> Position {
        let mut map = self.canvases.lock();
        let log = map.entry(canvas.clone()).or_insert_with(CanvasLog::new);
        Position {
            seq: log.seq,
            epoch: log.epoch.clone(),
        }
    }

    /// Checks the change, assigns the next sequence number, applies the
    /// change, keeps the payload, and dispatches it to the hub, all under
    /// the lock so that dispatch order is sequence order. `None` when the
    /// change changes nothing (nothing is published); `gm_header` frames an
    /// event about a fog object.
    pub(crate) fn publish(
        &self,
        hub: &Hub,
        canvas: &CanvasId,
        headers: (&[u8], &[u8]),
        event: &[u8],
        change: Option<&Change>,
    ) -> Result<Option<u64>, Refusal> {
        let mut map = self.canvases.lock();
        let log = map.entry(canvas.clone()).or_insert_with(CanvasLog::new);
        let mut header = headers.0;
        if let Some(Change::Object(change)) = change {
            if log.objects.check(change)? == Outcome::Unchanged {
                return Ok(None);
            }
            if log.objects.is_fog(change.op.object())
                || matches!(&change.op, ObjectOp::Create(o) if o.is_fog())
            {
                header = headers.1;
            }
        }
        log.seq += 1;
        let seq = log.seq;
        match change {
            Some(Change::Pixels(change)) => {
                if log.cells.len() < change.cell_count {
                    log.cells.resize(change.cell_count, 0);
                }
                for &(cell, color) in &change.cells {
                    if let Some(slot) = log.cells.get_mut(cell as usize) {
                        *slot = color;
                    }
                }
            }
            Some(Change::Object(change)) => log.objects.apply(&change.op, &change.user),
            Some(Change::Clear) => {
                log.cells.clear();
                log.objects.clear();
            }
            None => {}
        }
        let mut payload = Vec::with_capacity(header.len() + 9 + event.len());
        payload.extend_from_slice(header);
        payload.extend_from_slice(&busframe::encode_seq(Some(seq)));
        payload.extend_from_slice(event);
        let payload = Bytes::from(payload);
        log.events.push_back((seq, payload.clone()));
        while log.events.len() > self.max_events {
            log.events.pop_front();
        }
        hub.dispatch(canvas, &payload);
        Ok(Some(seq))
    }

    /// The canvas's objects (fog regions only for a gm) and the position
    /// they include.
    pub(crate) fn objects(
        &self,
        canvas: &CanvasId,
        gm: bool,
    ) -> (Position, Vec<shared::protocol::ObjectState>) {
        let mut map = self.canvases.lock();
        let log = map.entry(canvas.clone()).or_insert_with(CanvasLog::new);
        (
            Position {
                seq: log.seq,
                epoch: log.epoch.clone(),
            },
            log.objects.visible(gm),
        )
    }

    /// Kept events with `after < seq <= until`, oldest first, at most `limit`.
    pub(crate) fn events(
        &self,
        canvas: &CanvasId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Vec<(u64, Bytes)> {
        let map = self.canvases.lock();
        let Some(log) = map.get(canvas) else {
            return Vec::new();
        };
        log.events
            .iter()
            .filter(|(seq, _)| *seq > after && *seq <= until)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Kept events of `kind` with `seq < before`, newest first, at most `limit`.
    pub(crate) fn kind_before(
        &self,
        canvas: &CanvasId,
        kind: &str,
        before: u64,
        limit: usize,
    ) -> Vec<(u64, Bytes)> {
        let map = self.canvases.lock();
        let Some(log) = map.get(canvas) else {
            return Vec::new();
        };
        log.events
            .iter()
            .rev()
            .filter(|(seq, payload)| *seq < before && payload_is(payload, kind))
            .take(limit)
            .cloned()
            .collect()
    }

    pub(crate) fn snapshot(&self, canvas: &CanvasId, cell_count: usize) -> Snapshot {
        let map = self.canvases.lock();
        match map.get(canvas) {
            Some(log) => {
                let mut cells = log.cells.clone();
                cells.resize(cell_count, 0);
                Snapshot {
                    seq: log.seq,
                    epoch: Some(log.epoch.clone()),
                    cells,
                }
            }
            None => Snapshot {
                seq: 0,
                epoch: None,
                cells: vec![0; cell_count],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_msb_first_cells_like_redis_bitfield() {
        // Cells 0..3 as u5: 31, 1, 0 -> 11111 00001 00000 (+ padding)
        let packed = [0b1111_1000, 0b0100_0000];
        assert_eq!(unpack_cells(&packed, 5, 3), vec![31, 1, 0]);
        assert_eq!(unpack_cells(&[7, 255], 8, 3), vec![7, 255, 0]);
        assert_eq!(unpack_cells(&[], 5, 2), vec![0, 0]);
    }

    #[test]
    fn packing_is_the_inverse_of_unpacking() {
        for bits in [5u8, 8] {
            let mut packed = Vec::new();
            let values: Vec<u8> = (0..37).map(|i| (i * 7 % 32) as u8).collect();
            for (i, v) in values.iter().enumerate() {
                pack_cell(&mut packed, bits, i, *v);
            }
            // Overwrites clear bits too.
            pack_cell(&mut packed, bits, 3, 0);
            let mut expected = values.clone();
            expected[3] = 0;
            assert_eq!(unpack_cells(&packed, bits, values.len()), expected);
        }
    }

    #[test]
    fn memory_log_numbers_events_gaplessly_and_keeps_state() {
        let hub = Hub::new("n", None);
        let log = MemoryLog::new(2);
        let c = CanvasId::new("c").expect("valid");
        let p0 = log.position(&c);
        assert_eq!(p0.seq, 0);
        let change = Change::Pixels(PixelChange {
            bits: 5,
            cell_count: 4,
            cells: vec![(3, 7), (0, 1)],
        });
        for expected in 1..=3 {
            assert_eq!(
                log.publish(&hub, &c, (b"", b""), b"", Some(&change)),
                Ok(Some(expected))
            );
        }
        let snap = log.snapshot(&c, 4);
        assert_eq!(snap.seq, 3);
        assert_eq!(snap.epoch, Some(p0.epoch.clone()));
        assert_eq!(snap.cells, vec![1, 0, 0, 7]);
        assert_eq!(
            log.position(&c),
            Position {
                seq: 3,
                epoch: p0.epoch
            }
        );
    }
}
