//! The Easel gateway: terminates WebSockets, authenticates, validates and
//! publishes client operations, and fans events out to local members.
//!
//! `main.rs` only parses configuration, sets up tracing and binds; all
//! behaviour is behind [`run`], which tests call on port 0.
//!
//! Layers, each importing only those below it: transports (`ws`, `rest`,
//! `sse`, with `http` for what HTTP handlers share) call `ops`, one module
//! per command family; `ops` use `state` and the services (`presence`,
//! `online`, `canvases`, `limits`); `server` and `startup` wire it all.

mod canvases;
mod config;
mod drain;
mod feed;
mod gather;
mod history;
mod hook;
mod http;
mod limits;
mod members;
mod metrics;
mod online;
mod ops;
mod presence;
mod rest;
mod routes;
mod server;
mod spread;
mod sse;
mod startup;
mod state;
mod ws;

pub use canvases::CACHE_TTL as CATALOGUE_CACHE_TTL;
pub use config::{
    Command, Config, ConfigError, LogFormat, OriginPolicy, RedisSettings, Settings, settings_table,
};
pub use routes::{Audience, ROUTES, Route};
pub use server::run;
pub use startup::GatewayError;
