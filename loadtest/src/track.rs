//! Correctness accounting: which numbered messages of a stream a receiver
//! got, and how many it lost, got twice or got out of order.
//!
//! A stream is a sequence of counters that the sender (or the server) hands
//! out one after another: a canvas's durable sequence numbers, or a
//! publisher's own message counter for ephemeral events. A receiver expects
//! every counter from the one it starts at up to the last one sent.

use serde::Serialize;

/// What one received counter was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// New, and after everything seen before.
    InOrder,
    /// New, but a later counter arrived before it.
    OutOfOrder,
    /// Already received.
    Duplicate,
    /// Before the start of what this receiver expects.
    Early,
}

/// One receiver's view of one stream.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The first counter this receiver expects.
    start: u64,
    /// Bit `i` is set once `start + i` arrived.
    seen: Vec<u64>,
    unique: u64,
    max: Option<u64>,
    pub counts: Counts,
}

/// Correctness counters; all zero in a healthy run without injected faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    /// Cursor updates the gateway merged into a later one (EASEL_CURSOR_HZ):
    /// skipped on purpose, not lost.
    pub coalesced: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Counts) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.coalesced += other.coalesced;
    }

    /// Whether nothing was lost, duplicated, reordered or unexpected.
    pub fn is_clean(&self) -> bool {
        Counts {
            coalesced: 0,
            ..*self
        } == Counts::default()
    }
}

impl Stream {
    /// A stream whose first expected counter is `start`.
    pub fn starting_at(start: u64) -> Self {
        Stream {
            start,
            seen: Vec::new(),
            unique: 0,
            max: None,
            counts: Counts::default(),
        }
    }

    /// The highest counter received so far.
    pub fn max(&self) -> Option<u64> {
        self.max
    }

    /// Counters received once each.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Whether counter `n` arrived.
    pub fn has(&self, n: u64) -> bool {
        let Some(i) = n.checked_sub(self.start) else {
            return false;
        };
        let i = i as usize;
        self.seen
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// Final counts of a coalesced stream (cursors) once the sender says
    /// `end` (exclusive) was its last and `rejected` of its sends were
    /// refused: skipped counters are coalesced, and only a missing last
    /// one is lost, since the latest position must always arrive.
    pub fn finish_coalesced(&self, end: u64, rejected: u64) -> Counts {
        let gaps = self.finish(end).lost.saturating_sub(rejected);
        let lost = u64::from(end > self.start && !self.has(end - 1)).min(gaps);
        Counts {
            lost,
            coalesced: gaps - lost,
            ..self.counts
        }
    }

    /// Records counter `n`.
    pub fn observe(&mut self, n: u64) -> Seen {
        if n < self.start {
            self.counts.unexpected += 1;
            return Seen::Early;
        }
        let i = (n - self.start) as usize;
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.counts.duplicated += 1;
            return Seen::Duplicate;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        match self.max {
            Some(max) if n < max => {
                self.counts.out_of_order += 1;
                Seen::OutOfOrder
            }
            _ => {
                self.max = Some(n);
                Seen::InOrder
            }
        }
    }

    /// Final counts once the sender says `end` (exclusive) was its last:
    /// every counter in `start..end` not received is lost.
    pub fn finish(&self, end: u64) -> Counts {
        let expected = end.saturating_sub(self.start);
        let received = self.received_before(end);
        Counts {
            lost: expected.saturating_sub(received),
            ..self.counts
        }
    }

    fn received_before(&self, end: u64) -> u64 {
        if end <= self.start {
            return 0;
        }
        let n = (end - self.start) as usize;
        let full = n / 64;
        let mut count: u64 = self
            .seen
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        if let Some(w) = self.seen.get(full) {
            let mask = (1u64 << (n % 64)) - 1;
            count += u64::from((w & mask).count_ones());
        }
        count
    }
}

/// Recovers a counter sent modulo `modulus` (the payload only has room for
/// that many values): the value congruent to `raw` nearest `reference`,
/// usually the last counter seen from the same sender.
pub fn unwrap(raw: u64, modulus: u64, reference: u64) -> u64 {
    let base = reference - reference % modulus;
    let candidates = [
        base.checked_sub(modulus),
        Some(base),
        base.checked_add(modulus),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|b| b + raw)
        .min_by_key(|c| c.abs_diff(reference))
        .unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    #[test]
    fn coalesced_streams_lose_only_a_missing_last_counter() {
        let mut s = Stream::starting_at(0);
        for n in [0, 3, 7, 9] {
            s.observe(n);
        }
        assert!(s.has(7) && !s.has(8) && !s.has(100));
        let c = s.finish_coalesced(10, 0);
        assert_eq!((c.lost, c.coalesced), (0, 6));
        assert!(c.is_clean());
        let c = s.finish_coalesced(12, 0);
        assert_eq!((c.lost, c.coalesced), (1, 7));
        assert!(!c.is_clean());
        // A rejected last send is not expected to arrive.
        let c = s.finish_coalesced(11, 1);
        assert_eq!((c.lost, c.coalesced), (1, 5));
    }

    use super::*;

    #[test]
    fn in_order_delivery_is_clean() {
        let mut s = Stream::starting_at(10);
        for n in 10..200 {
            assert_eq!(s.observe(n), Seen::InOrder);
        }
        assert!(s.finish(200).is_clean());
        assert_eq!(s.unique(), 190);
        assert_eq!(s.max(), Some(199));
    }

    #[test]
    fn gaps_and_a_missing_tail_are_lost() {
        let mut s = Stream::starting_at(0);
        for n in [0, 1, 3, 4, 70, 71] {
            s.observe(n);
        }
        // missing: 2, 5..=69 (65 values), 72..100 (28 values)
        assert_eq!(s.finish(100).lost, 1 + 65 + 28);
        // Nothing expected yet: nothing lost.
        assert_eq!(Stream::starting_at(5).finish(5).lost, 0);
        assert_eq!(Stream::starting_at(5).finish(0).lost, 0);
    }

    #[test]
    fn duplicates_and_reordering_are_told_apart() {
        let mut s = Stream::starting_at(0);
        assert_eq!(s.observe(0), Seen::InOrder);
        assert_eq!(s.observe(2), Seen::InOrder);
        assert_eq!(s.observe(1), Seen::OutOfOrder);
        assert_eq!(s.observe(2), Seen::Duplicate);
        assert_eq!(s.observe(1), Seen::Duplicate);
        let c = s.finish(3);
        assert_eq!((c.lost, c.duplicated, c.out_of_order), (0, 2, 1));
        assert!(!c.is_clean());
    }

    #[test]
    fn counters_before_the_start_are_unexpected() {
        let mut s = Stream::starting_at(50);
        assert_eq!(s.observe(49), Seen::Early);
        assert_eq!(s.finish(50).unexpected, 1);
    }

    #[test]
    fn lost_counts_only_up_to_the_end() {
        let mut s = Stream::starting_at(0);
        for n in 0..130 {
            s.observe(n);
        }
        // A counter beyond `end` (a late ack) does not hide a loss before it.
        let mut t = Stream::starting_at(0);
        t.observe(0);
        t.observe(5);
        assert_eq!(t.finish(3).lost, 2);
        assert_eq!(s.finish(128).lost, 0);
        assert_eq!(s.finish(64).lost, 0);
    }

    #[test]
    fn unwrap_follows_the_reference() {
        assert_eq!(unwrap(5, 100, 0), 5);
        assert_eq!(unwrap(99, 100, 0), 99, "no negative counters");
        assert_eq!(unwrap(2, 100, 198), 202);
        assert_eq!(unwrap(98, 100, 201), 198);
        assert_eq!(unwrap(50, 100, 1_000_050), 1_000_050);
        assert_eq!(unwrap(0, 320_000, 319_999), 320_000);
    }

    #[test]
    fn counts_add_up() {
        let mut a = Counts {
            lost: 1,
            ..Counts::default()
        };
        a.add(Counts {
            duplicated: 2,
            out_of_order: 3,
            unexpected: 4,
            lost: 5,
            coalesced: 6,
        });
        assert_eq!(
            a,
            Counts {
                lost: 6,
                duplicated: 2,
                out_of_order: 3,
                unexpected: 4,
                coalesced: 6,
            }
        );
    }
}
