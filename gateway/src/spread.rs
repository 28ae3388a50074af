//! A user's rate limits across gateways. Each gateway holding some of a
//! user's open connections allows that user 1/N of every per-user rate and
//! burst, N being the number of such gateways, so together they allow the
//! user's limits once (`limits::UserLimits::share`).
//!
//! N comes from the online registry, which names the gateway of every open
//! connection: a gateway learns it when it admits one of the user's
//! connections, and when the user's connections come to a gateway that
//! held none of them, or leave one for good, that gateway signals the
//! user's channel and the gateways holding the others count again.

use crate::limits::UserLimits;
use crate::state::AppState;
use fanout::ConnControl;
use shared::CanvasId;
use shared::busframe::Signal;
use std::sync::Arc;
use std::time::Duration;

/// How soon a count the registry could not answer is tried again.
const RECOUNT_RETRY: Duration = Duration::from_secs(1);

/// Connection of `user` admitted here, with `gateways` (from the registry;
/// 0 when it did not answer) holding the user's open connections.
pub(crate) async fn arrived(state: &AppState, user: &str, limits: &UserLimits, gateways: usize) {
    if gateways == 0 {
        return;
    }
    // N changed (this gateway's first connection of the user): the
    // gateways holding the rest count again.
    let before = set(state, limits, gateways);
    if gateways > 1 && before != gateways {
        signal(state, user).await;
    }
}

/// Whether the closing connection counted in `limits` is the user's last
/// here while other gateways hold the rest: then, once its registry entry
/// is in its grace period, [`left`] tells them. The user's share here goes
/// back to whole (REST requests after the last connection pay from it).
pub(crate) fn last_here(state: &AppState, limits: &UserLimits) -> bool {
    let shared = limits.connections() == 1 && limits.spread() > 1;
    if shared {
        set(state, limits, 1);
    }
    shared
}

/// The user's last connection here closed (see [`last_here`]).
pub(crate) async fn left(state: &AppState, user: &str) {
    signal(state, user).await;
}

/// Another gateway said `user`'s connections moved, or the bus came back:
/// count again. When the registry cannot answer (Redis is still coming
/// back), the connection whose `control` carried the signal is signalled
/// again after [`RECOUNT_RETRY`], until a count succeeds or it closes.
pub(crate) async fn recount(
    state: &AppState,
    user: &str,
    limits: &UserLimits,
    control: &Arc<ConnControl>,
) {
    match state.online.gateways(user).await {
        // This gateway serves the user, whatever the registry shows yet.
        Ok(gateways) if limits.connections() > 0 => {
            set(state, limits, gateways);
            tracing::debug!(user, gateways, "user's gateways counted");
        }
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(user, error = %err, "user's gateways not counted; counting again shortly");
            let control = control.clone();
            let user = user.to_owned();
            tokio::spawn(async move {
                tokio::select! {
                    _ = control.closed() => {}
                    _ = tokio::time::sleep(RECOUNT_RETRY) => {
                        let channel = CanvasId::user_channel(&user);
                        control.signal(&channel, Signal::Spread { user });
                    }
                }
            });
        }
    }
}

/// Sets the user's share here, keeping the gauge of shared users; the
/// number of gateways it replaces.
fn set(state: &AppState, limits: &UserLimits, gateways: usize) -> usize {
    let before = limits.set_spread(gateways);
    let gauge = &state.metrics.users_shared_limits;
    match (before > 1, gateways > 1) {
        (false, true) => gauge.inc(),
        (true, false) => gauge.dec(),
        _ => {}
    }
    before
}

async fn signal(state: &AppState, user: &str) {
    let signal = Signal::Spread {
        user: user.to_owned(),
    };
    if let Err(err) = state
        .bus
        .signal(&CanvasId::user_channel(user), &signal)
        .await
    {
        tracing::warn!(user, error = %err, "spread of the user's connections not signalled");
    }
}
