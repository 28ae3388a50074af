//! Load scenarios against Easel gateways. Each scenario opens real
//! WebSocket connections, authenticates with tokens it mints itself from the
//! configured secret, and reports what it measured.

pub mod client;
pub mod idle;
pub mod persist;
pub mod proc;
pub mod stats;
