//! Presence per canvas (see `store::presence` for the store): this
//! gateway's entries, kept alive while their connections are, announced
//! with `user_joined` when a user's first connection arrives and
//! `user_left` when a sweep finds a user's last entry expired; the same
//! changes go to the webhook feed (`EASEL_WEBHOOK_FEED`), with the canvas
//! becoming occupied and vacated.

use crate::feed::Feed;
use crate::gather::{self, Gather};
use fanout::Fanout;
use parking_lot::Mutex;
use shared::CanvasId;
use shared::auth::Role;
use shared::protocol::{
    Activity, ActivityEvent, Author, PresentUser, ServerMessage, UserJoined, UserLeft,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{EntryInfo, PresenceStore, StoreError};

/// Presence settings and this gateway's live entries.
pub(crate) struct Presence {
    /// Where entries are kept (Redis, or memory when standalone).
    store: PresenceStore,
    /// Where `user_joined`/`user_left`/`activity` are published.
    bus: Arc<Fanout>,
    /// This gateway's id, part of every entry's name.
    node: String,
    /// An entry lives this long without a refresh.
    pub ttl: Duration,
    /// A left entry stays this long, so a quick reconnect is no departure.
    pub grace: Duration,
    /// `user_joined`/`user_left` are sent only on canvases with at most
    /// this many connections: beyond, every join would cost a delivery to
    /// everyone (quadratic in a join storm); clients ask with `presence`.
    pub events_max: usize,
    /// Entry names and details by canvas and connection.
    local: Mutex<HashMap<(CanvasId, u64), (String, EntryInfo)>>,
    /// Where presence changes go for the app's webhook.
    feed: Arc<Feed>,
    /// Canvases a connection left lately, swept until their left entries
    /// have expired (when the feed is on), so the last departure from a
    /// canvas with no member left here is still reported.
    recent: Mutex<HashMap<CanvasId, Instant>>,
    /// Leaves, written together when many come at once.
    leaves: Gather<(CanvasId, String)>,
}

impl Presence {
    pub fn new(
        store: PresenceStore,
        bus: Arc<Fanout>,
        feed: Arc<Feed>,
        node: String,
        (ttl, grace): (Duration, Duration),
        events_max: usize,
    ) -> Self {
        Presence {
            store,
            bus,
            node,
            ttl,
            grace,
            events_max,
            local: Mutex::new(HashMap::new()),
            feed,
            recent: Mutex::new(HashMap::new()),
            leaves: Gather::default(),
        }
    }

    /// Registers connection `conn` of `author` on `canvas`, announces the
    /// user if this is their first connection there, and returns who is on
    /// the canvas now (this user included) with the canvas's connection
    /// count. Beyond `events_max` connections the list is left out: sending
    /// every joiner the whole list made joins a storm (quadratic bytes);
    /// clients ask with `presence`.
    pub async fn enter(
        &self,
        canvas: &CanvasId,
        conn: u64,
        author: &Author,
        role: Role,
    ) -> (Vec<PresentUser>, u32) {
        let now = shared::now_ms();
        let entry = store::presence::entry(&author.id, &self.node, conn);
        let info = EntryInfo {
            name: author.name.clone(),
            role,
            since: now,
            activity: None,
            gm_only: false,
        };
        let expiry = now + self.ttl.as_millis() as u64;
        self.local
            .lock()
            .insert((canvas.clone(), conn), (entry.clone(), info.clone()));
        let entered = self.store.enter(canvas, &entry, &info, expiry).await;
        let live = match &entered {
            Ok((_, live)) => *live,
            Err(_) => 0,
        };
        if let Ok((true, live)) = entered {
            self.feed.member_joined(canvas, author, role, live == 1);
        }
        match entered {
            Ok((true, live)) if live <= self.events_max => {
                let event = ServerMessage::UserJoined(UserJoined {
                    canvas: canvas.clone(),
                    user: PresentUser {
                        id: author.id.clone(),
                        name: author.name.clone(),
                        role,
                        since: now,
                        connections: 1,
                        activity: None,
                    },
                });
                self.announce(canvas, conn, false, &event).await;
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%canvas, error = %err, "presence entry not stored"),
        }
        let count = u32::try_from(live).unwrap_or(u32::MAX);
        if live > self.events_max {
            return (Vec::new(), count);
        }
        let list = self
            .list(canvas, role >= Role::Gm)
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(%canvas, error = %err, "presence unavailable");
                Vec::new()
            });
        (list, count)
    }

    /// Records what connection `conn`'s user is doing on `canvas` (shown in
    /// the presence list) and tells the canvas. False if the connection has
    /// no entry there.
    pub async fn set_activity(
        &self,
        canvas: &CanvasId,
        conn: u64,
        author: &Author,
        activity: Activity,
        gm_only: bool,
    ) -> Result<bool, StoreError> {
        let found = self
            .local
            .lock()
            .get_mut(&(canvas.clone(), conn))
            .map(|(entry, info)| {
                info.activity = Some(activity.clone());
                info.gm_only = gm_only;
                (entry.clone(), info.clone())
            });
        let Some((entry, info)) = found else {
            return Ok(false);
        };
        let expiry = shared::now_ms() + self.ttl.as_millis() as u64;
        // Re-entering an existing entry replaces its details; it is not an
        // arrival, so nothing is announced for it.
        self.store.enter(canvas, &entry, &info, expiry).await?;
        let event = ServerMessage::Activity(ActivityEvent {
            canvas: canvas.clone(),
            user: author.clone(),
            activity,
        });
        self.announce(canvas, conn, gm_only, &event).await;
        Ok(true)
    }

    /// Who is on the canvas, as a gm sees it or (`gm` false) anyone else.
    pub async fn list(&self, canvas: &CanvasId, gm: bool) -> Result<Vec<PresentUser>, StoreError> {
        self.store.list(canvas, gm).await
    }

    /// Connection `conn` left `canvas`: its entry expires after the grace
    /// period unless the user is back, and a sweep announces the departure.
    pub async fn leave(&self, canvas: &CanvasId, conn: u64) {
        let Some((entry, _)) = self.local.lock().remove(&(canvas.clone(), conn)) else {
            return;
        };
        if self.feed.is_on() {
            // A second past the grace: the entry has expired by then.
            let swept_after = Instant::now() + self.grace + Duration::from_secs(1);
            self.recent.lock().insert(canvas.clone(), swept_after);
        }
        let write = |entries: Vec<(CanvasId, String)>| async move {
            let expiry = shared::now_ms() + self.grace.as_millis() as u64;
            if let Err(err) = self.store.expire(&entries, expiry).await {
                // The entries then expire at their TTL instead.
                tracing::warn!(entries = entries.len(), error = %err, "presence leave not stored");
            }
        };
        self.leaves.add((canvas.clone(), entry), write).await;
    }

    /// Keeps this gateway's entries alive (every third of the TTL).
    pub async fn refresh(&self) {
        let entries: Vec<(CanvasId, String)> = self
            .local
            .lock()
            .iter()
            .map(|((canvas, _), (entry, _))| (canvas.clone(), entry.clone()))
            .collect();
        let expiry = shared::now_ms() + self.ttl.as_millis() as u64;
        for chunk in entries.chunks(gather::CHUNK) {
            if let Err(err) = self.store.expire(chunk, expiry).await {
                tracing::warn!(error = %err, "presence refresh failed; retrying next round");
                return;
            }
        }
    }

    /// Sweeps the canvases this gateway has members on, announcing
    /// departures.
    pub async fn sweep(&self) {
        let mut canvases: BTreeSet<CanvasId> = self
            .local
            .lock()
            .keys()
            .map(|(canvas, _)| canvas.clone())
            .collect();
        // Recently left canvases: swept once more after their grace ends.
        let now = Instant::now();
        self.recent.lock().retain(|canvas, after| {
            canvases.insert(canvas.clone());
            *after >= now
        });
        for canvas in canvases {
            match self.store.sweep(&canvas).await {
                Ok((left, live)) => {
                    for (i, user) in left.iter().enumerate() {
                        self.feed
                            .member_left(&canvas, user, live == 0 && i + 1 == left.len());
                    }
                    // `live` is after the departures: announce while the
                    // canvas was within the limit.
                    if live + left.len() > self.events_max {
                        continue;
                    }
                    for user in left {
                        let event = ServerMessage::UserLeft(UserLeft {
                            canvas: canvas.clone(),
                            user,
                        });
                        self.announce(&canvas, 0, false, &event).await;
                    }
                }
                Err(err) => tracing::debug!(%canvas, error = %err, "presence sweep failed"),
            }
        }
    }

    /// Publishes a presence event to the canvas's members on every gateway
    /// (`conn` 0: from no connection, so no member is skipped as its
    /// sender); a `gm_only` one reaches gms alone.
    async fn announce(&self, canvas: &CanvasId, conn: u64, gm_only: bool, event: &ServerMessage) {
        let header = shared::busframe::BusHeader {
            gm_only,
            ..shared::busframe::BusHeader::now(&self.node, conn)
        };
        if let Err(err) = self.bus.publish(canvas, &header, event).await {
            tracing::warn!(%canvas, error = %err, "presence event not published");
        }
    }
}
