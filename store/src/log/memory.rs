//! Standalone mode's log: the durable log's semantics in process memory,
//! one lock per node, so numbering, state and delivery order agree.

use super::{Deliver, ObjectsPage, OpKey, Position, Snapshot, Written, new_epoch, payload_is};
use crate::objects::{Change, ObjectOp, Objects, Outcome, Refusal};
use bytes::Bytes;
use parking_lot::Mutex;
use shared::CanvasId;
use shared::busframe;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Standalone mode's log: the same semantics in process memory.
pub struct MemoryLog {
    canvases: Mutex<HashMap<CanvasId, CanvasLog>>,
    /// Events kept per canvas (the stream bound).
    max_events: usize,
    /// Hands a numbered event to this node's members, under the lock.
    deliver: Deliver,
}

struct CanvasLog {
    seq: u64,
    epoch: String,
    /// One byte per cell, allocated on the first pixel change.
    cells: Vec<u8>,
    objects: Objects,
    /// The last `max_events` bus payloads, oldest first.
    events: VecDeque<(u64, Bytes)>,
    /// Remembered operation keys: the sequence number and created object
    /// of each, until it expires.
    op_keys: HashMap<String, (u64, Option<String>, Instant)>,
    /// The same keys in the order they were remembered (by expiry, as one
    /// gateway uses one window).
    op_expiry: VecDeque<(Instant, String)>,
}

impl CanvasLog {
    fn new() -> Self {
        CanvasLog {
            seq: 0,
            epoch: new_epoch(),
            cells: Vec::new(),
            objects: Default::default(),
            events: VecDeque::new(),
            op_keys: HashMap::new(),
            op_expiry: VecDeque::new(),
        }
    }

    /// The first operation under `key`, if it is remembered; forgets
    /// expired keys.
    fn repeated(&mut self, key: &str, now: Instant) -> Option<Written> {
        while let Some((until, _)) = self.op_expiry.front() {
            if *until > now {
                break;
            }
            if let Some((until, old)) = self.op_expiry.pop_front() {
                // Unless the key was used again since: then it is the newer.
                if self.op_keys.get(&old).is_some_and(|e| e.2 == until) {
                    self.op_keys.remove(&old);
                }
            }
        }
        // (A key remembered for a shorter window than those before it may
        // outlive its expiry in the map, so each is checked.)
        self.op_keys
            .get(key)
            .filter(|(_, _, until)| *until > now)
            .map(|(seq, object, _)| Written::Repeated {
                seq: *seq,
                object: object.clone(),
            })
    }

    fn remember(&mut self, key: String, seq: u64, object: Option<String>, until: Instant) {
        self.op_keys.insert(key.clone(), (seq, object, until));
        self.op_expiry.push_back((until, key));
    }
}

impl MemoryLog {
    pub fn new(max_events: usize, deliver: Deliver) -> Self {
        MemoryLog {
            canvases: Mutex::new(HashMap::new()),
            max_events: max_events.max(1),
            deliver,
        }
    }

    pub fn position(&self, canvas: &CanvasId) -> Position {
        let mut map = self.canvases.lock();
        let log = map.entry(canvas.clone()).or_insert_with(CanvasLog::new);
        Position {
            seq: log.seq,
            epoch: log.epoch.clone(),
        }
    }

    /// Answers a remembered `key` as its first operation did; else checks
    /// the change, assigns the next sequence number, applies the change,
    /// keeps the payload, remembers the key and delivers the event to this
    /// node, all under the lock so that dispatch order is sequence order.
    /// `headers.1` frames an event about a fog object.
    pub fn publish(
        &self,
        canvas: &CanvasId,
        headers: (&[u8], &[u8]),
        event: &[u8],
        change: Option<&Change>,
        key: Option<&OpKey>,
    ) -> Result<Written, Refusal> {
        let mut map = self.canvases.lock();
        let log = map.entry(canvas.clone()).or_insert_with(CanvasLog::new);
        let now = Instant::now();
        let field = key.map(OpKey::field);
        if let Some(first) = field.as_deref().and_then(|f| log.repeated(f, now)) {
            return Ok(first);
        }
        let mut header = headers.0;
        if let Some(Change::Object(change)) = change {
            if log.objects.check(change)? == Outcome::Unchanged {
                return Ok(Written::Unchanged);
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
        (self.deliver)(canvas, &payload);
        if let (Some(field), Some(key)) = (field, key) {
            let created = match change {
                Some(Change::Object(c)) if matches!(c.op, ObjectOp::Create(_)) => {
                    Some(c.op.object().to_owned())
                }
                _ => None,
            };
            log.remember(field, seq, created, now + key.window);
        }
        Ok(Written::Applied(seq))
    }

    /// A page of the canvas's objects (see [`super::Log::objects_page`]).
    pub fn objects(
        &self,
        canvas: &CanvasId,
        gm: bool,
        after: Option<&str>,
        budget: usize,
    ) -> ObjectsPage {
        let mut map = self.canvases.lock();
        let log = map.entry(canvas.clone()).or_insert_with(CanvasLog::new);
        let (objects, next) = log.objects.page(gm, after, budget);
        ObjectsPage {
            position: Position {
                seq: log.seq,
                epoch: log.epoch.clone(),
            },
            objects,
            next,
        }
    }

    /// Whether `object` is a fog region on the canvas.
    pub fn is_fog(&self, canvas: &CanvasId, object: &str) -> bool {
        let map = self.canvases.lock();
        map.get(canvas)
            .is_some_and(|log| log.objects.is_fog(object))
    }

    /// Kept events with `after < seq <= until`, oldest first, at most `limit`.
    pub fn events(
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
    pub fn kind_before(
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

    pub fn snapshot(&self, canvas: &CanvasId, cell_count: usize) -> Snapshot {
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
    use crate::PixelChange;
    use shared::CanvasId;

    #[test]
    fn memory_log_numbers_events_gaplessly_and_keeps_state() {
        let delivered = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let seen = delivered.clone();
        let log = MemoryLog::new(
            2,
            std::sync::Arc::new(move |_: &CanvasId, p: &bytes::Bytes| seen.lock().push(p.clone())),
        );
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
                log.publish(&c, (b"", b""), b"", Some(&change), None),
                Ok(Written::Applied(expected))
            );
        }
        assert_eq!(delivered.lock().len(), 3, "each event delivered once");
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
