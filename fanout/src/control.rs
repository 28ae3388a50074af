//! A connection's close signal, shared by its tasks and the hub.

use shared::CloseCode;
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

/// Tells a connection's reader and writer to stop, and why.
///
/// The first reason set wins, so a slow-consumer kick racing a shutdown
/// reports whichever happened first, and a reason is counted once.
#[derive(Debug, Default)]
pub struct ConnControl {
    reason: OnceLock<CloseCode>,
    token: CancellationToken,
}

impl ConnControl {
    /// A control that has not been closed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the connection to close with `code`. Returns true if this call
    /// set the reason (false if the connection was already closing).
    pub fn close(&self, code: CloseCode) -> bool {
        let first = self.reason.set(code).is_ok();
        self.token.cancel();
        first
    }

    /// Why the connection is closing, once it is.
    pub fn reason(&self) -> Option<CloseCode> {
        self.reason.get().copied()
    }

    /// Whether a close has been requested.
    pub fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when a close is requested.
    pub async fn closed(&self) {
        self.token.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins() {
        let c = ConnControl::new();
        assert!(!c.is_closed());
        assert!(c.close(CloseCode::SlowConsumer));
        assert!(!c.close(CloseCode::ServiceRestart));
        c.closed().await;
        assert_eq!(c.reason(), Some(CloseCode::SlowConsumer));
    }
}
