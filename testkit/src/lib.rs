//! Test support shared by the integration tests of every crate.
//!
//! [`RedisServer`] and [`PostgresServer`] run private servers from the system's binaries
//! on a free loopback port in a temporary directory, so tests run in
//! parallel and can kill and restart "their" Redis or Postgres. [`eventually`] polls a
//! condition until a deadline instead of sleeping a fixed time.

// Test support may panic: a failed precondition is a failed test.
#![allow(clippy::unwrap_used)]

mod cluster;
pub mod http;
mod postgres;
mod redis;
mod tls;
pub mod ws;

pub use cluster::{RedisCluster, cluster_mode};
pub use postgres::PostgresServer;
pub use redis::RedisServer;
pub use tls::TestCerts;
pub use ws::WsClient;

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago.
///
/// Another process can take it before the caller binds it; callers that
/// start servers retry on a bind failure.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Polls `check` every 10 ms until it returns true; panics with `what` if it
/// has not within `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Finds an executable on PATH or in the usual system directories.
pub fn find_binary(name: &str, extra_dirs: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
