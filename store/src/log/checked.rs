//! Which canvases have been checked against the durable history since
//! Redis last (re)started: the record `rebuild.rs` keeps and the Redis log
//! holds. On a single server a restart is a new pool generation; on a
//! Redis Cluster each canvas remembers the run id of the master it was
//! checked on, and its writes name it (see `guard.lua`).

use parking_lot::Mutex;
use shared::CanvasId;
use std::collections::HashMap;

/// Most canvases remembered as checked; beyond it the record starts again
/// (each canvas is then checked once more: one indexed query).
const MAX_CHECKED: usize = 100_000;

/// The canvases checked against the history, for one pool generation, with
/// the server each was checked on ('' on a single server).
#[derive(Default)]
pub(crate) struct Checked {
    inner: Mutex<(u64, HashMap<CanvasId, String>)>,
}

impl Checked {
    /// The server the canvas was checked on in this generation, if it was.
    pub(super) fn server(&self, canvas: &CanvasId, generation: u64) -> Option<String> {
        let inner = self.inner.lock();
        if inner.0 != generation {
            return None;
        }
        inner.1.get(canvas).cloned()
    }

    pub(super) fn insert(&self, canvas: &CanvasId, generation: u64, server: String) {
        let mut inner = self.inner.lock();
        if inner.0 != generation || inner.1.len() >= MAX_CHECKED {
            *inner = (generation, HashMap::new());
        }
        inner.1.insert(canvas.clone(), server);
    }

    /// Forgets the canvas: its server changed, it is checked again.
    pub(super) fn forget(&self, canvas: &CanvasId) {
        self.inner.lock().1.remove(canvas);
    }
}
