//! Every route of the public port, in one table: the router is built from
//! it, and `docs/openapi.json` is checked against it (a test also probes a
//! running gateway with each row, so a row cannot name a method its
//! handler does not take).

use crate::state::AppState;
use crate::{rest, sse, ws};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use std::sync::Arc;

/// Who a route is for, which decides its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Clients, browsers included: CORS applies (see `http/cors.rs`).
    Browser,
    /// Clients that are not pages (the WebSocket) and trusted backends
    /// (the server API): no CORS.
    Direct,
    /// Only on a `--dev` gateway that generated its own secret.
    Dev,
}

/// One method on one path.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub audience: Audience,
    pub(crate) handler: fn() -> MethodRouter<Arc<AppState>>,
}

const fn route(
    method: &'static str,
    path: &'static str,
    audience: Audience,
    handler: fn() -> MethodRouter<Arc<AppState>>,
) -> Route {
    Route {
        method,
        path,
        audience,
        handler,
    }
}

use Audience::{Browser, Dev, Direct};

/// The public port's routes.
pub const ROUTES: &[Route] = &[
    route("GET", "/ws", Direct, || get(ws::upgrade::websocket)),
    route("GET", "/api/canvases", Browser, || {
        get(rest::canvases::list)
    }),
    route("POST", "/api/canvases", Browser, || {
        post(rest::canvases::create)
    }),
    route("GET", "/api/canvases/{id}", Browser, || {
        get(rest::canvases::get)
    }),
    route("PATCH", "/api/canvases/{id}", Browser, || {
        patch(rest::canvases::update)
    }),
    route("DELETE", "/api/canvases/{id}", Browser, || {
        delete(rest::canvases::delete)
    }),
    route("GET", "/api/canvases/{id}/snapshot", Browser, || {
        get(rest::reads::snapshot)
    }),
    route("GET", "/api/canvases/{id}/events", Browser, || {
        get(rest::reads::events)
    }),
    route("GET", "/api/canvases/{id}/presence", Browser, || {
        get(rest::reads::presence)
    }),
    route("GET", "/api/canvases/{id}/objects", Browser, || {
        get(rest::reads::objects)
    }),
    route("GET", "/api/canvases/{id}/activity", Browser, || {
        get(rest::reads::activity)
    }),
    route("GET", "/api/canvases/{id}/chat", Browser, || {
        get(rest::reads::chat)
    }),
    route("POST", "/api/canvases/{id}/draw", Browser, || {
        post(rest::writes::draw)
    }),
    route("POST", "/api/canvases/{id}/cursor", Browser, || {
        post(rest::writes::cursor)
    }),
    route("POST", "/api/canvases/{id}/commands", Browser, || {
        post(rest::commands::command)
    }),
    route("GET", "/api/users/online", Browser, || {
        get(rest::reads::online)
    }),
    route("GET", "/sse/canvases/{id}", Browser, || {
        get(sse::canvas_events)
    }),
    route("GET", "/sse/notifications", Browser, || {
        get(sse::notifications)
    }),
    route("GET", "/sse/system", Browser, || get(sse::system)),
    route("GET", "/sse/online", Browser, || get(sse::online)),
    route("POST", "/api/server/canvases/{id}/notice", Direct, || {
        post(rest::server_api::notice)
    }),
    route("POST", "/api/server/users/{id}/notify", Direct, || {
        post(rest::server_api::notify)
    }),
    route("POST", "/api/server/broadcast", Direct, || {
        post(rest::server_api::broadcast)
    }),
    route("GET", "/api/server/canvases/{id}/members", Direct, || {
        get(rest::server_access::members)
    }),
    route(
        "PUT",
        "/api/server/canvases/{id}/members/{user}",
        Direct,
        || put(rest::server_access::set_member),
    ),
    route(
        "DELETE",
        "/api/server/canvases/{id}/members/{user}",
        Direct,
        || delete(rest::server_access::remove_member),
    ),
    route("POST", "/api/server/users/{id}/disconnect", Direct, || {
        post(rest::server_access::disconnect)
    }),
    route("GET", "/api/server/canvases/{id}/presence", Direct, || {
        get(rest::server_access::presence)
    }),
    route("GET", "/api/server/canvases/{id}/events", Direct, || {
        get(rest::server_access::events)
    }),
    route("GET", "/dev/token", Dev, || get(rest::dev::token)),
];
