//! The operations: everything a client can ask, once, whatever transport
//! it came on. One module per command family; each entry point takes the
//! authenticated caller and a validated command and returns a reply or one
//! [`OpError`]. The WebSocket session, the REST handlers and SSE streams
//! are thin adapters over these: they decode, call, and encode the result.

pub(crate) mod access;
pub(crate) mod canvas;
pub(crate) mod catalogue;
pub(crate) mod channels;
pub(crate) mod chat;
pub(crate) mod cursors;
pub(crate) mod dispatch;
pub(crate) mod history;
pub(crate) mod objects;
pub(crate) mod pixels;
pub(crate) mod presence;
pub(crate) mod publish;
pub(crate) mod snapshot;

use shared::ErrorCode;
use shared::auth::Role;
use shared::protocol::Author;

/// A refused or failed operation: a stable code, a message for people, and
/// when to retry. Nothing was applied, except where the message says the
/// outcome is unknown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpError {
    pub code: ErrorCode,
    pub message: String,
    /// When a retry may succeed (rate limits, a full backlog).
    pub retry_after_ms: Option<u64>,
    /// What kind of refusal within the code, where HTTP tells them apart.
    pub cause: Cause,
}

/// Refinements of a code that HTTP answers with its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Nothing more to say than the code.
    Plain,
    /// The thing to create exists already (HTTP 409).
    Conflict,
    /// The feature is not configured on this gateway (HTTP 501).
    NotConfigured,
}

impl OpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OpError {
            code,
            message: message.into(),
            retry_after_ms: None,
            cause: Cause::Plain,
        }
    }

    /// With a `retry_after_ms` hint.
    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = cause;
        self
    }

    /// A validation failure from `shared::validate`.
    pub fn invalid(invalid: shared::validate::Invalid) -> Self {
        OpError::new(invalid.code, invalid.message)
    }

    /// E012 for a backend that failed, logged with what failed.
    pub fn unavailable(what: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %err, "{what} unavailable");
        OpError::new(ErrorCode::Unavailable, format!("{what} unavailable; retry"))
    }
}

/// Who asks: the user, the connection (0 for a request with none), and the
/// role they hold on the canvas the operation names.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub author: Author,
    pub conn: u64,
    pub role: Role,
}

impl Caller {
    /// Whether the caller sees gm-only data (fog) on the canvas.
    pub fn gm(&self) -> bool {
        self.role >= Role::Gm
    }
}

/// How a caller pays for an operation from its rate limits: a connection
/// from its own and its user's buckets, a request from its user's.
pub(crate) trait Payer: Send {
    /// Takes `cost` tokens of `class`, or the E004 refusal.
    fn pay(&mut self, class: crate::limits::OpClass, cost: usize) -> Result<(), OpError>;
}

/// The E004 refusal of an operation of `class` that may be retried after
/// `wait` (`by_user`: the user's shared bucket refused), counted in
/// `easel_gateway_rate_limited_total`.
pub(crate) fn rate_refusal(
    state: &crate::state::AppState,
    class: crate::limits::OpClass,
    wait: std::time::Duration,
    by_user: bool,
) -> OpError {
    state
        .metrics
        .rate_limited
        .with_label_values(&[class.name()])
        .inc();
    let ms = wait.as_millis() as u64 + 1;
    let shared_by = if by_user {
        " (shared by this user's connections)"
    } else {
        ""
    };
    OpError::new(
        ErrorCode::RateLimited,
        format!(
            "{} rate limit{shared_by}: not applied; retry in {ms} ms",
            class.name()
        ),
    )
    .retry_after(ms)
}
