//! The Easel gateway: terminates WebSockets, authenticates, validates and
//! publishes client operations, and fans events out to local members.
//!
//! `main.rs` only parses configuration, sets up tracing and binds; all
//! behaviour is behind [`run`], which tests call on port 0.

mod api;
mod canvases;
mod config;
mod connection;
mod drain;
mod history;
mod limits;
mod metrics;
mod objects;
mod online;
mod presence;
mod rest_ops;
mod server;
mod server_api;
mod session;
mod sse;
mod upgrade;
mod writer;

pub use canvases::CACHE_TTL as CATALOGUE_CACHE_TTL;
pub use config::{Command, Config, ConfigError, LogFormat, OriginPolicy, Settings};
pub use server::{GatewayError, run};
