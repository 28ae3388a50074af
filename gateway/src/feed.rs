//! The gateway's side of the webhook feed (`EASEL_WEBHOOK_FEED`): the
//! events only a gateway sees (a member joined or left a canvas, a canvas
//! became occupied or vacated, an operation was refused) are queued on a
//! Redis stream that the persister sends on to the app's webhook.
//!
//! Never on the real-time path's clock: [`Feed::emit`] puts the event in a
//! bounded in-memory queue and returns; one task writes the queue to Redis
//! in pipelined batches. A full queue drops the event (counted), and so
//! does a failed write.

use prometheus::{IntCounterVec, Opts, Registry};
use serde_json::{Value, json};
use shared::CanvasId;
use shared::auth::Role;
use shared::protocol::Author;
use store::RedisPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events waiting for the writer, at most.
const QUEUE: usize = 10_000;

/// Events per Redis round trip, at most.
const BATCH: usize = 500;

/// See the module documentation.
pub(crate) struct Feed {
    tx: Option<mpsc::Sender<String>>,
    /// Events by outcome: written, dropped (queue full), failed (Redis).
    events: IntCounterVec,
}

impl Feed {
    /// A feed: writing to `pool` when given (until `shutdown`), else off
    /// (every event ignored).
    pub fn new(
        pool: Option<RedisPool>,
        registry: &Registry,
        shutdown: CancellationToken,
    ) -> Result<Feed, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new(
                "easel_gateway_webhook_feed_events_total",
                "Webhook feed events (EASEL_WEBHOOK_FEED) by outcome: written, dropped (the queue was full), failed (Redis refused the write)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(events.clone()))?;
        for outcome in ["written", "dropped", "failed"] {
            events.with_label_values(&[outcome]);
        }
        let tx = pool.map(|pool| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write(pool, rx, events.clone(), shutdown));
            tx
        });
        Ok(Feed { tx, events })
    }

    /// Queues `event` without waiting.
    fn emit(&self, event: Value) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.try_send(event.to_string()).is_err() {
            self.events.with_label_values(&["dropped"]).inc();
        }
    }

    /// Whether events are queued at all.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// A user's first connection joined the canvas; with `first_on_canvas`
    /// the canvas had nobody before (`canvas_occupied` too).
    pub fn member_joined(
        &self,
        canvas: &CanvasId,
        author: &Author,
        role: Role,
        first_on_canvas: bool,
    ) {
        if !self.is_on() {
            return;
        }
        let ts = shared::now_ms();
        if first_on_canvas {
            self.emit(json!({"type": "canvas_occupied", "canvas": canvas, "ts": ts}));
        }
        self.emit(json!({"type": "member_joined", "canvas": canvas, "user": author, "role": role, "ts": ts}));
    }

    /// A user's last connection left the canvas (after the presence grace
    /// period); with `vacated` nobody is left (`canvas_vacated` too).
    pub fn member_left(&self, canvas: &CanvasId, user: &str, vacated: bool) {
        if !self.is_on() {
            return;
        }
        let ts = shared::now_ms();
        self.emit(json!({"type": "member_left", "canvas": canvas, "user": {"id": user}, "ts": ts}));
        if vacated {
            self.emit(json!({"type": "canvas_vacated", "canvas": canvas, "ts": ts}));
        }
    }

    /// An operation on the canvas was refused for the user's role or
    /// access (`E008`).
    pub fn refused(&self, canvas: &CanvasId, author: &Author, command: &str, message: &str) {
        if !self.is_on() {
            return;
        }
        self.emit(json!({
            "type": "refused", "canvas": canvas, "user": author, "command": command,
            "code": "E008", "message": message, "ts": shared::now_ms(),
        }));
    }
}

/// Writes queued events to Redis until `shutdown` (then what is queued).
async fn write(
    pool: RedisPool,
    mut rx: mpsc::Receiver<String>,
    events: IntCounterVec,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            first = rx.recv() => first,
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else {
            return;
        };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        match store::feed::append(&pool, &batch).await {
            Ok(()) => events.with_label_values(&["written"]).inc_by(n),
            Err(err) => {
                tracing::warn!(error = %err, events = n, "webhook feed events lost");
                events.with_label_values(&["failed"]).inc_by(n);
            }
        }
        batch.clear();
    }
}
