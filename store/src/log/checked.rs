//! Which canvases have been checked against the durable history since
//! Redis last (re)started: the record `rebuild.rs` keeps and the Redis log
//! holds.

use parking_lot::Mutex;
use shared::CanvasId;
use std::collections::HashSet;

/// Most canvases remembered as checked; beyond it the record starts again
/// (each canvas is then checked once more: one indexed query).
const MAX_CHECKED: usize = 100_000;

/// The canvases checked against the history, for one pool generation.
#[derive(Default)]
pub(crate) struct Checked {
    inner: Mutex<(u64, HashSet<CanvasId>)>,
}

impl Checked {
    pub(super) fn contains(&self, canvas: &CanvasId, generation: u64) -> bool {
        let inner = self.inner.lock();
        inner.0 == generation && inner.1.contains(canvas)
    }

    pub(super) fn insert(&self, canvas: &CanvasId, generation: u64) {
        let mut inner = self.inner.lock();
        if inner.0 != generation || inner.1.len() >= MAX_CHECKED {
            *inner = (generation, HashSet::new());
        }
        inner.1.insert(canvas.clone());
    }
}
