//! The gateway's Prometheus metrics. Labels have bounded cardinality: never
//! a canvas id or user id.

use fanout::Hub;
use parking_lot::Mutex;
use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// The gateway's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections_open: IntGauge,
    /// WebSocket connections accepted (upgraded), in all.
    pub connections_opened: IntCounter,
    /// Users with connections here whose rate limits are shared with other
    /// gateways (their open connections span several).
    pub users_shared_limits: IntGauge,
    /// Connections closed, by close reason.
    pub connections_closed: IntCounterVec,
    /// Decoded client messages, by type.
    pub messages_received: ByKind,
    /// Messages a connection queued for its own client (replies, welcome,
    /// pongs, replays), by type; fan-out deliveries are counted apart.
    pub messages_sent: std::sync::Arc<ByKind>,
    /// WebSocket payload bytes read from clients.
    pub bytes_received: IntCounter,
    /// WebSocket payload bytes written to clients.
    pub bytes_sent: IntCounter,
    /// WebSocket frames written, and the socket writes carrying them.
    pub frames_written: IntCounter,
    pub writes: IntCounter,
    /// Failed authentications (token or handshake), by reason.
    pub auth_failures: IntCounterVec,
    /// Upgrade requests answered with an HTTP error instead of 101, by reason.
    pub upgrades_refused: IntCounterVec,
    /// Operations (and new connections) refused by a rate limit, by class.
    pub rate_limited: IntCounterVec,
    /// One publish to the bus (Redis round trip), durable events.
    pub publish_durable: Histogram,
    /// The same for ephemeral events.
    pub publish_ephemeral: Histogram,
    /// EASEL_BACKLOG_LIMIT, so alerts can compare the persister's backlog
    /// with it.
    pub backlog_limit: IntGauge,
    /// Joins with `since`, by outcome.
    pub resumes: IntCounterVec,
    /// Durable writes refused because the canvas's unpersisted backlog was full.
    pub durable_refused: IntCounter,
    /// Durable writes answered E012 whose outcome is unknown (Redis timed
    /// out or the connection broke mid-call).
    pub durable_unknown: IntCounter,
    /// Durable commands answered from a remembered operation key.
    pub durable_repeats: IntCounter,
    /// Canvases created by their first use.
    pub canvases_auto_created: IntCounter,
    /// Joins, reads and streams refused because the caller may not see the
    /// canvas (or it does not exist).
    pub access_refused: IntCounter,
    /// Live memberships ended because access was withdrawn.
    pub access_revoked: IntCounter,
    /// Uses of unknown canvases refused by EASEL_AUTO_CREATE_RATE.
    pub canvases_auto_create_refused: IntCounter,
    /// Error replies sent, by error code name.
    pub errors: IntCounterVec,
    /// From a live event's ingest on its origin gateway to this gateway
    /// writing it to a member's socket, seconds.
    pub fanout_latency: Histogram,
    hub: HubMetrics,
}

/// The hub's own counters and gauges, copied in at each scrape.
struct HubMetrics {
    deliveries: IntCounter,
    slow_consumers: IntCounter,
    bad_frames: IntCounter,
    resyncs: IntCounter,
    bus_reconnects: IntCounter,
    joined_canvases: IntGauge,
    local_members: IntGauge,
    bus_connected: IntGauge,
    subscriptions: IntGauge,
    /// Serialises scrapes so two at once do not both add the same delta.
    sync: Mutex<()>,
}

/// Fan-out latency buckets: doubling from 0.1 ms to 13 s, so that
/// `histogram_quantile` interpolates within a factor of two anywhere from
/// 0.1 ms to 10 s.
const FANOUT_BUCKETS: [f64; 18] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048,
    0.4096, 0.8192, 1.6384, 3.2768, 6.5536, 13.1072,
];

/// Redis publish buckets: doubling from 50 µs to 3.3 s.
const PUBLISH_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512,
    0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768,
];

/// The `reason` labels of `easel_gateway_upgrades_refused_total`.
pub(crate) const UPGRADE_REFUSALS: [&str; 9] = [
    "not_websocket",
    "bad_version",
    "no_key",
    "origin",
    "subprotocol",
    "draining",
    "capacity",
    "not_upgradable",
    "rate_limited",
];

/// `reason` labels of `easel_gateway_auth_failures_total` beside the
/// token's own ([`shared::auth::AuthError::REASONS`]).
pub(crate) const CONNECTION_AUTH_FAILURES: [&str; 5] = [
    "handshake_timeout",
    "no_handshake",
    "bad_authorization_header",
    "expired_live",
    "refresh_other_user",
];

/// Server message types a connection sends itself.
const SENT_KINDS: [&str; 8] = [
    "welcome", "pong", "ack", "error", "draw", "cursor", "chat", "resync",
];

/// A counter per message type, looked up without the label map's lock on
/// the hot path; a type missing from the list still counts, through it.
pub(crate) struct ByKind {
    vec: IntCounterVec,
    known: Vec<(&'static str, IntCounter)>,
}

impl ByKind {
    fn new(vec: IntCounterVec, kinds: &[&'static str]) -> Self {
        let known = kinds
            .iter()
            .map(|k| (*k, vec.with_label_values(&[*k])))
            .collect();
        ByKind { vec, known }
    }

    pub fn inc(&self, kind: &str) {
        match self.known.iter().find(|(k, _)| *k == kind) {
            Some((_, counter)) => counter.inc(),
            None => self.vec.with_label_values(&[kind]).inc(),
        }
    }
}

/// Registers `metric` with `r` and hands it back, so a metric cannot be
/// created and then forgotten by the registry.
fn registered<M: Collector + Clone + 'static>(
    r: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    r.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    registered(r, IntCounter::new(name, help)?)
}

fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    registered(r, IntGauge::new(name, help)?)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> Result<IntCounterVec, prometheus::Error> {
    registered(r, IntCounterVec::new(Opts::new(name, help), &[label])?)
}

/// Brings a Prometheus counter up to a monotonic source counter.
fn catch_up(counter: &IntCounter, source: &AtomicU64) {
    let now = source.load(Ordering::Relaxed);
    let seen = counter.get();
    if now > seen {
        counter.inc_by(now - seen);
    }
}

/// The counters of durable writes (refused, unknown outcome, repeated)
/// and of canvases created by use (created, refused).
fn write_counters(r: &Registry) -> Result<[IntCounter; 7], prometheus::Error> {
    Ok([
        counter(
            r,
            "easel_gateway_durable_writes_refused_total",
            "Durable writes refused with E013 because the canvas's unpersisted backlog was full",
        )?,
        counter(
            r,
            "easel_gateway_durable_writes_unknown_total",
            "Durable writes answered E012 whose outcome is unknown (Redis timed out or the connection broke mid-call)",
        )?,
        counter(
            r,
            "easel_gateway_durable_repeats_total",
            "Durable commands resent with a remembered operation key, answered with the first ack and not applied again",
        )?,
        counter(
            r,
            "easel_gateway_canvases_auto_created_total",
            "Canvases created by their first use (EASEL_AUTO_CREATE_CANVASES)",
        )?,
        counter(
            r,
            "easel_gateway_canvases_auto_create_refused_total",
            "Uses of unknown canvases refused with E004 because the user created too many (EASEL_AUTO_CREATE_RATE)",
        )?,
        counter(
            r,
            "easel_gateway_access_refused_total",
            "Joins, reads and streams refused with E008 because the caller may not see the canvas or it does not exist",
        )?,
        counter(
            r,
            "easel_gateway_access_revoked_total",
            "Live canvas memberships (WebSocket joins, SSE streams) ended because access was withdrawn",
        )?,
    ])
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let hub = HubMetrics::new(r)?;
        let (publish_durable, publish_ephemeral, fanout_latency) = histograms(r)?;
        let [
            durable_refused,
            durable_unknown,
            durable_repeats,
            canvases_auto_created,
            canvases_auto_create_refused,
            access_refused,
            access_revoked,
        ] = write_counters(r)?;
        let m = Metrics {
            publish_durable,
            publish_ephemeral,
            connections_open: gauge(
                r,
                "easel_gateway_connections_open",
                "Open WebSocket connections",
            )?,
            connections_opened: counter(
                r,
                "easel_gateway_connections_opened_total",
                "WebSocket connections accepted (upgraded)",
            )?,
            users_shared_limits: gauge(
                r,
                "easel_gateway_users_shared_limits",
                "Users with connections here whose rate limits are shared with other gateways",
            )?,
            connections_closed: counter_vec(
                r,
                "easel_gateway_connections_closed_total",
                "WebSocket connections closed, by close reason",
                "reason",
            )?,
            messages_received: ByKind::new(
                counter_vec(
                    r,
                    "easel_gateway_messages_received_total",
                    "Client messages decoded, by type",
                    "type",
                )?,
                &shared::protocol::ClientMessage::KINDS,
            ),
            messages_sent: std::sync::Arc::new(ByKind::new(
                counter_vec(
                    r,
                    "easel_gateway_messages_sent_total",
                    "Messages queued by a connection for its own client, by type \
                     (fan-out deliveries: easel_gateway_deliveries_total)",
                    "type",
                )?,
                &SENT_KINDS,
            )),
            bytes_received: counter(
                r,
                "easel_gateway_received_bytes_total",
                "WebSocket message payload bytes read from clients",
            )?,
            bytes_sent: counter(
                r,
                "easel_gateway_sent_bytes_total",
                "WebSocket message payload bytes written to clients",
            )?,
            frames_written: counter(
                r,
                "easel_gateway_frames_written_total",
                "WebSocket frames written to clients (pings included)",
            )?,
            writes: counter(
                r,
                "easel_gateway_socket_writes_total",
                "Socket writes carrying WebSocket frames to clients (frames_written / socket_writes: frames per write)",
            )?,
            rate_limited: counter_vec(
                r,
                "easel_gateway_rate_limited_total",
                "Operations refused with E004 by a rate limit, by class (connections: new connections per IP)",
                "class",
            )?,
            auth_failures: counter_vec(
                r,
                "easel_gateway_auth_failures_total",
                "Connections refused because the token or handshake failed, by reason",
                "reason",
            )?,
            upgrades_refused: counter_vec(
                r,
                "easel_gateway_upgrades_refused_total",
                "WebSocket upgrade requests refused with an HTTP error, by reason",
                "reason",
            )?,
            backlog_limit: gauge(
                r,
                "easel_gateway_backlog_limit_events",
                "EASEL_BACKLOG_LIMIT: unpersisted events per canvas at which durable writes are refused (0: none)",
            )?,
            resumes: counter_vec(
                r,
                "easel_gateway_resumes_total",
                "Joins with since (resumes), by outcome",
                "outcome",
            )?,
            durable_refused,
            durable_unknown,
            durable_repeats,
            canvases_auto_created,
            access_refused,
            access_revoked,
            canvases_auto_create_refused,
            errors: counter_vec(
                r,
                "easel_gateway_errors_total",
                "Error replies sent, by code",
                "code",
            )?,
            fanout_latency,
            hub,
            registry,
        };
        m.start_labels_at_zero();
        m.register_process()?;
        Ok(m)
    }

    /// The text exposition, with the hub's figures as of now.
    /// The registry, for services that keep their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self, hub: &Hub, bus_connected: bool) -> String {
        {
            let h = &self.hub;
            let _one_at_a_time = h.sync.lock();
            let stats = hub.stats();
            catch_up(&h.deliveries, &stats.delivered);
            catch_up(&h.slow_consumers, &stats.slow_consumers);
            catch_up(&h.bad_frames, &stats.bad_frames);
            catch_up(&h.resyncs, &stats.resyncs);
            catch_up(&h.bus_reconnects, &stats.bus_reconnects);
            h.joined_canvases.set(hub.canvas_count() as i64);
            h.local_members.set(hub.membership_count() as i64);
            h.bus_connected.set(i64::from(bus_connected));
            h.subscriptions
                .set(stats.subscriptions.load(Ordering::Relaxed) as i64);
        }
        let mut out = String::new();
        if let Err(err) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::error!(error = %err, "metrics encoding failed");
        }
        out
    }
}
/// The publish histograms (durable, ephemeral) and the fan-out latency.
fn histograms(r: &Registry) -> Result<(Histogram, Histogram, Histogram), prometheus::Error> {
    let publish_seconds = registered(
        r,
        HistogramVec::new(
            HistogramOpts::new(
                "easel_gateway_bus_publish_seconds",
                "One publish to the bus, from the call to Redis's reply, by durability",
            )
            .buckets(PUBLISH_BUCKETS.to_vec()),
            &["durability"],
        )?,
    )?;
    let fanout_latency = registered(
        r,
        Histogram::with_opts(
            HistogramOpts::new(
                "easel_gateway_fanout_latency_seconds",
                "From a live event's ingest on its origin gateway to a member's socket \
                 on this one (wall clocks of both nodes, assumed synchronised)",
            )
            .buckets(FANOUT_BUCKETS.to_vec()),
        )?,
    )?;
    Ok((
        publish_seconds.with_label_values(&["durable"]),
        publish_seconds.with_label_values(&["ephemeral"]),
        fanout_latency,
    ))
}

impl HubMetrics {
    fn new(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(HubMetrics {
            deliveries: counter(
                r,
                "easel_gateway_deliveries_total",
                "Event frames queued to local members",
            )?,
            slow_consumers: counter(
                r,
                "easel_gateway_slow_consumer_disconnects_total",
                "Members closed with 4008 because their outbound queue was full",
            )?,
            bad_frames: counter(
                r,
                "easel_gateway_bad_bus_frames_total",
                "Bus payloads that could not be decoded and were dropped",
            )?,
            resyncs: counter(
                r,
                "easel_gateway_resyncs_total",
                "resync notices queued to members after a bus reconnect",
            )?,
            bus_reconnects: counter(
                r,
                "easel_gateway_bus_reconnects_total",
                "Times the Redis pub/sub connection was re-established after a loss",
            )?,
            joined_canvases: gauge(
                r,
                "easel_gateway_joined_canvases",
                "Canvases with at least one member on this gateway",
            )?,
            local_members: gauge(
                r,
                "easel_gateway_local_members",
                "Canvas memberships of this gateway's connections",
            )?,
            bus_connected: gauge(
                r,
                "easel_gateway_bus_connected",
                "1 while the bus can deliver events (Redis pub/sub connected; always 1 standalone)",
            )?,
            subscriptions: gauge(
                r,
                "easel_gateway_bus_subscriptions",
                "Canvas channels subscribed on the Redis pub/sub connection",
            )?,
            sync: Mutex::new(()),
        })
    }
}

impl Metrics {
    /// The process's own figures (CPU, memory, descriptors) and its limits.
    fn register_process(&self) -> Result<(), prometheus::Error> {
        #[cfg(target_os = "linux")]
        self.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        shared::limits::register(&self.registry)?;
        Ok(())
    }

    /// Every label value from zero, so rates and dashboards show 0 rather
    /// than no data before the first occurrence.
    fn start_labels_at_zero(&self) {
        for code in shared::ErrorCode::ALL {
            self.errors.with_label_values(&[code.name()]);
        }
        for code in shared::CloseCode::ALL {
            self.connections_closed.with_label_values(&[code.name()]);
        }
        for outcome in shared::protocol::ResumeOutcome::ALL {
            self.resumes.with_label_values(&[outcome.name()]);
        }
        for class in crate::limits::OpClass::ALL {
            self.rate_limited.with_label_values(&[class.name()]);
        }
        self.rate_limited.with_label_values(&["connections"]);
        for reason in UPGRADE_REFUSALS {
            self.upgrades_refused.with_label_values(&[reason]);
        }
        for reason in shared::auth::AuthError::REASONS
            .iter()
            .chain(&CONNECTION_AUTH_FAILURES)
        {
            self.auth_failures.with_label_values(&[reason]);
        }
    }
}
