//! The REST API: thin adapters that decode a request, call one operation
//! and encode its reply. Reads (`reads.rs`), the fallback writes for
//! clients without a WebSocket (`writes.rs`, and every canvas command in
//! its WebSocket form in `commands.rs`), the catalogue
//! (`canvases.rs`), the server API for trusted backends
//! (`server_api.rs`, and its access and inspection calls in
//! `server_access.rs`) and development tokens (`dev.rs`). Errors are [`crate::http::ApiError`]s.

pub(crate) mod canvases;
pub(crate) mod commands;
pub(crate) mod dev;
pub(crate) mod reads;
pub(crate) mod server_access;
pub(crate) mod server_api;
pub(crate) mod writes;
