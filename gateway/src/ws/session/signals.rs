//! What a session does with the signals other gateways send it: access to
//! a joined canvas changed (check again; leave it and say so when the role
//! is not the one joined with), or the server disconnects the user.

use super::Session;
use crate::ops;
use shared::CanvasId;
use shared::CloseCode;
use shared::busframe::Signal;
use shared::protocol::ServerMessage;

impl Session<'_> {
    /// Acts on the signals that came for this connection, each canvas
    /// checked once however many signals named it.
    pub async fn on_signals(&mut self, signals: Vec<(CanvasId, Signal)>) {
        // After the signals arrived, so after the changes they announce.
        let since = std::time::Instant::now();
        let mut recheck: Vec<CanvasId> = Vec::new();
        let mut recount = false;
        for (channel, signal) in signals {
            match signal {
                Signal::Spread { user } if user == self.identity.user_id => recount = true,
                Signal::Disconnect { user } if user == self.identity.user_id => {
                    tracing::info!("disconnected by the server API");
                    self.out.control.close(CloseCode::Disconnected);
                    return;
                }
                Signal::Access { user }
                    if user.as_deref().is_none_or(|u| u == self.identity.user_id)
                        && !recheck.contains(&channel) =>
                {
                    recheck.push(channel);
                }
                _ => {}
            }
        }
        if recount {
            let user = &self.identity.user_id;
            crate::spread::recount(self.state, user, self.rates.user, &self.out.control).await;
        }
        for canvas in recheck {
            self.recheck(&canvas, since).await;
        }
    }

    /// Checks access to a joined canvas again; leaves it and sends
    /// `access_changed` when the role is no longer the one joined with.
    /// When access cannot be decided (the database or the hook is down),
    /// the membership stands until the next change.
    async fn recheck(&mut self, canvas: &CanvasId, since: std::time::Instant) {
        let Some(held) = self
            .joined
            .iter()
            .find(|m| m.canvas == *canvas)
            .map(|m| m.role)
        else {
            return;
        };
        let state = self.state;
        let Some(changed) = ops::access::changed(state, &self.identity, canvas, held, since).await
        else {
            return;
        };
        self.forget(canvas);
        state.bus.leave(canvas, self.conn);
        state.presence.leave(canvas, self.conn).await;
        self.out.send(&ServerMessage::AccessChanged(changed));
    }
}
