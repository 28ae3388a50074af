//! Load scenarios against Easel gateways. Each scenario opens real
//! WebSocket connections, authenticates with tokens it mints itself from the
//! configured secret, and reports what it measured.

pub mod client;
pub mod engine;
pub mod flood;
pub mod floor;
pub mod idle;
pub mod payload;
pub mod persist;
pub mod plot;
pub mod proc;
pub mod report;
pub mod scrape;
pub mod stats;
pub mod track;
