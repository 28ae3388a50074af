//! The Easel wire protocol and everything that must agree across processes:
//! message types and their two encodings, validation rules, error and close
//! codes, JWT verification, Redis key names and the node-to-node bus frame.
//!
//! Nothing here depends on tokio, Redis or Postgres, so the load tester and
//! fuzzers link only what they need.

pub mod auth;
pub mod backoff;
pub mod busframe;
pub mod codec;
pub mod config;
pub mod encoding;
pub mod error;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod protocol;
pub mod role;
pub mod validate;

pub use codec::Encoding;
pub use error::{CloseCode, ErrorCode};
pub use ids::{CanvasId, RequestId};

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Microseconds since the Unix epoch on this machine's clock.
///
/// Used to stamp events at ingest so a destination node can compute the
/// end-to-end fan-out latency (nodes' clocks are assumed NTP-synchronised).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
