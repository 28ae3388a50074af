//! A connection's close signal, shared by its tasks and the hub.

use parking_lot::Mutex;
use shared::CloseCode;
use shared::busframe::Signal;
use std::sync::OnceLock;
use tokio::sync::Notify;

/// Most signals kept for a connection that has not looked at them yet;
/// beyond it the oldest are dropped (each says "check again", so the
/// newest carry what matters).
const MAX_PENDING_SIGNALS: usize = 64;

/// What [`ConnControl::attention`] woke for.
#[derive(Debug, PartialEq)]
pub enum Attention {
    /// The connection is asked to close.
    Closed,
    /// Signals from control frames, with the channel each came on.
    Signals(Vec<(shared::CanvasId, Signal)>),
}

/// Tells a connection's reader and writer to stop, and why.
///
/// The first reason set wins, so a slow-consumer kick racing a shutdown
/// reports whichever happened first, and a reason is counted once.
#[derive(Debug, Default)]
pub struct ConnControl {
    reason: OnceLock<CloseCode>,
    /// Woken (all waiters) on close. A flag and a `Notify` rather than a
    /// cancellation token: a token is a tree node of its own on the heap
    /// (112 bytes per connection) and its wait future is larger.
    closing: Notify,
    /// Signals from control frames, with the channel they came on.
    signals: Mutex<Vec<(shared::CanvasId, Signal)>>,
    signalled: Notify,
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
        // The reason is set before the waiters are woken: `closed` checks
        // it after registering, so no close is missed.
        self.closing.notify_waiters();
        // Wakes a reader waiting in `attention`.
        self.signalled.notify_one();
        first
    }

    /// Why the connection is closing, once it is.
    pub fn reason(&self) -> Option<CloseCode> {
        self.reason.get().copied()
    }

    /// Whether a close has been requested.
    pub fn is_closed(&self) -> bool {
        self.reason.get().is_some()
    }

    /// Completes when a close is requested or signals come, whichever is
    /// first (a close wins if both are there): one wait, and one waiter's
    /// state in the reader's future, for both.
    pub async fn attention(&self) -> Attention {
        loop {
            if self.is_closed() {
                return Attention::Closed;
            }
            let taken = std::mem::take(&mut *self.signals.lock());
            if !taken.is_empty() {
                return Attention::Signals(taken);
            }
            // notify_one stores a permit when nobody waits, so a close or
            // signal between the checks above and here is not missed.
            self.signalled.notified().await;
        }
    }

    /// Completes when a close is requested.
    pub async fn closed(&self) {
        loop {
            let notified = self.closing.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Hands the connection a signal that came on `channel`.
    pub fn signal(&self, channel: &shared::CanvasId, signal: Signal) {
        {
            let mut pending = self.signals.lock();
            if pending.len() >= MAX_PENDING_SIGNALS {
                pending.remove(0);
            }
            pending.push((channel.clone(), signal));
        }
        self.signalled.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Spawns `wait` on its own task and checks that it is waiting.
    async fn waiting<T, F>(
        c: &Arc<ConnControl>,
        wait: impl FnOnce(Arc<ConnControl>) -> F,
    ) -> tokio::task::JoinHandle<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let waiter = tokio::spawn(wait(c.clone()));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "returned before anything came");
        waiter
    }

    #[tokio::test]
    async fn first_reason_wins() {
        let c = ConnControl::new();
        assert!(!c.is_closed());
        assert!(c.close(CloseCode::SlowConsumer));
        assert!(!c.close(CloseCode::ServiceRestart));
        c.closed().await;
        assert_eq!(c.reason(), Some(CloseCode::SlowConsumer));
    }

    /// The signals `attention` returns, or a failure if it saw a close.
    async fn signals_of(c: &ConnControl) -> Vec<(shared::CanvasId, Signal)> {
        match c.attention().await {
            Attention::Signals(signals) => signals,
            Attention::Closed => panic!("closed, expected signals"),
        }
    }

    #[tokio::test]
    async fn signals_wait_until_one_comes_and_are_taken_in_order() {
        let c = Arc::new(ConnControl::new());
        let canvas = shared::CanvasId::new("c").expect("valid");
        let waiter = waiting(&c, |c| async move { signals_of(&c).await }).await;
        c.signal(&canvas, Signal::Access { user: None });
        let got = waiter.await.expect("joins");
        assert_eq!(got, vec![(canvas.clone(), Signal::Access { user: None })]);
        for i in 0..(MAX_PENDING_SIGNALS + 3) {
            c.signal(
                &canvas,
                Signal::Disconnect {
                    user: i.to_string(),
                },
            );
        }
        let got = signals_of(&c).await;
        assert_eq!(got.len(), MAX_PENDING_SIGNALS);
        assert_eq!(got[0].1, Signal::Disconnect { user: "3".into() });
    }

    #[tokio::test]
    async fn attention_wakes_for_a_close_which_wins_over_signals() {
        let c = Arc::new(ConnControl::new());
        let canvas = shared::CanvasId::new("c").expect("valid");
        let waiter = waiting(&c, |c| async move { c.attention().await }).await;
        c.signal(&canvas, Signal::Access { user: None });
        c.close(CloseCode::Normal);
        // Both are there when the waiter runs (this runtime has one
        // thread): the close wins, and stays.
        assert_eq!(waiter.await.expect("joins"), Attention::Closed);
        assert_eq!(c.attention().await, Attention::Closed);
    }
}
