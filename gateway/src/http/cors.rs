//! CORS for the client REST API and the SSE streams: browsers on the
//! origins `EASEL_ALLOWED_ORIGINS` allows (any, with `*` or `--dev`) may
//! call them, preflight included, and read the `X-Easel-*` headers. The
//! WebSocket checks its Origin itself; the server API is for backends and
//! gets no CORS at all.

use crate::config::OriginPolicy;
use axum::http::{HeaderName, HeaderValue, Method, header};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Response headers a browser script may read.
const EXPOSED: [&str; 7] = [
    "x-easel-seq",
    "x-easel-epoch",
    "x-easel-width",
    "x-easel-height",
    "x-easel-palette-size",
    "x-easel-bits",
    "retry-after",
];

/// The layer for `policy`. Tokens travel in the `Authorization` header or
/// the query string, never in cookies, so no credentials are allowed.
pub(crate) fn layer(policy: &OriginPolicy) -> CorsLayer {
    let origin = match policy {
        OriginPolicy::Any => AllowOrigin::any(),
        OriginPolicy::List(_) => {
            let policy = policy.clone();
            AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                origin
                    .to_str()
                    .is_ok_and(|origin| policy.allows(Some(origin)))
            })
        }
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers(EXPOSED.map(HeaderName::from_static))
        .max_age(Duration::from_secs(600))
}
