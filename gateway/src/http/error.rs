//! API errors: JSON `{"code": "E0xx", "message": ..., "retry_after_ms"?}`
//! with the HTTP status that [`status_for`], the one mapping, gives the
//! code, and `Retry-After` when the error says when to retry.

use crate::ops::{Cause, OpError};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::ErrorCode;

/// An operation's error, answered over HTTP.
#[derive(Debug)]
pub(crate) struct ApiError(pub OpError);

impl From<OpError> for ApiError {
    fn from(err: OpError) -> Self {
        ApiError(err)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(OpError::new(code, message))
    }
}

/// The HTTP status of an error code (and its refinement).
pub(crate) fn status_for(err: &OpError) -> StatusCode {
    match (err.code, err.cause) {
        (ErrorCode::InvalidValue, Cause::Conflict) => StatusCode::CONFLICT,
        (ErrorCode::Unavailable, Cause::NotConfigured) => StatusCode::NOT_IMPLEMENTED,
        (ErrorCode::AuthFailed, _) => StatusCode::UNAUTHORIZED,
        (ErrorCode::MessageTooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
        (ErrorCode::RateLimited | ErrorCode::LimitReached, _) => StatusCode::TOO_MANY_REQUESTS,
        (ErrorCode::InvalidSession | ErrorCode::InvalidMessage | ErrorCode::InvalidValue, _) => {
            StatusCode::BAD_REQUEST
        }
        (ErrorCode::Forbidden, _) => StatusCode::FORBIDDEN,
        (ErrorCode::NotFound, _) => StatusCode::NOT_FOUND,
        (ErrorCode::NotJoined, _) => StatusCode::CONFLICT,
        (ErrorCode::ConnectionFailed | ErrorCode::Unavailable | ErrorCode::BacklogFull, _) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let err = self.0;
        let mut body = serde_json::json!({"code": err.code, "message": err.message});
        if let Some(ms) = err.retry_after_ms {
            body["retry_after_ms"] = ms.into();
        }
        let mut resp = (status_for(&err), Json(body)).into_response();
        if let Some(ms) = err.retry_after_ms
            && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
