//! The WebSocket transport: the upgrade (`upgrade.rs`), one task per
//! connection reading frames (`connection.rs`, which `frames.rs` tells
//! what each frame means) and one writing them
//! (`writer.rs`, which sends large messages as fragments,
//! `fragments.rs`), the connection's command state (`session.rs`), which
//! hands each command to its operation, and the reply funnel
//! (`outbox.rs`).

mod connection;
mod fragments;
mod frames;
mod outbox;
mod session;
pub(crate) mod upgrade;
pub(crate) mod writer;
