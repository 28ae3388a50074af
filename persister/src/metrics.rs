//! The persister's Prometheus metrics. Labels have bounded cardinality:
//! never a canvas id.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the persister exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub events_persisted: IntCounter,
    pub events_replayed: IntCounter,
    pub events_diverged: IntCounter,
    pub canvases_evicted: IntCounter,
    pub redis_canvases: IntGauge,
    pub batches: IntCounter,
    pub batch_size: Histogram,
    pub commit_seconds: Histogram,
    pub backlog: IntGauge,
    pub backlog_max: IntGauge,
    pub lag_seconds: prometheus::Gauge,
    pub errors: IntCounterVec,
    pub claimed: IntCounter,
    pub snapshots: IntCounter,
    pub streams: IntGauge,
}

impl Metrics {
    /// Registers every metric (and the process collector) in a new registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            events_persisted: IntCounter::new(
                "easel_persister_events_persisted_total",
                "Events inserted into Postgres",
            )?,
            events_replayed: IntCounter::new(
                "easel_persister_events_duplicate_total",
                "Events read again after a crash or claim that Postgres already had",
            )?,
            events_diverged: IntCounter::new(
                "easel_persister_events_diverged_total",
                "Events whose sequence number Postgres already holds with another payload \
                 (Redis went back behind Postgres); kept in diverged_events",
            )?,
            canvases_evicted: IntCounter::new(
                "easel_persister_canvases_evicted_total",
                "Cold canvases evicted from Redis (EASEL_EVICT_IDLE_SECS)",
            )?,
            redis_canvases: IntGauge::new(
                "easel_persister_redis_canvases",
                "Canvases in Redis at the evictor's last pass",
            )?,
            batches: IntCounter::new("easel_persister_batches_total", "Batches committed")?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("easel_persister_batch_size", "Events per committed batch")
                    .buckets(vec![
                        1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
                    ]),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new("easel_persister_commit_seconds", "Time to commit one batch")
                    .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
            )?,
            backlog: IntGauge::new(
                "easel_persister_backlog_events",
                "Events in the canvas logs this replica touched last that are not yet persisted",
            )?,
            backlog_max: IntGauge::new(
                "easel_persister_backlog_max_events",
                "The largest unpersisted backlog of one canvas log this replica touched last \
                 (gateways refuse durable writes at easel_gateway_backlog_limit_events)",
            )?,
            lag_seconds: prometheus::Gauge::new(
                "easel_persister_lag_seconds",
                "Age of the oldest event in the last committed batch; 0 once caught up",
            )?,
            errors: IntCounterVec::new(
                Opts::new("easel_persister_errors_total", "Errors by kind"),
                &["kind"],
            )?,
            claimed: IntCounter::new(
                "easel_persister_claimed_total",
                "Entries claimed from replicas presumed dead",
            )?,
            snapshots: IntCounter::new(
                "easel_persister_snapshots_total",
                "Canvas snapshots stored",
            )?,
            streams: IntGauge::new(
                "easel_persister_streams",
                "Canvas logs known to this replica",
            )?,
            registry,
        };
        m.registry.register(Box::new(m.events_persisted.clone()))?;
        m.registry.register(Box::new(m.events_replayed.clone()))?;
        m.registry.register(Box::new(m.events_diverged.clone()))?;
        m.registry.register(Box::new(m.canvases_evicted.clone()))?;
        m.registry.register(Box::new(m.redis_canvases.clone()))?;
        m.registry.register(Box::new(m.batches.clone()))?;
        m.registry.register(Box::new(m.batch_size.clone()))?;
        m.registry.register(Box::new(m.commit_seconds.clone()))?;
        m.registry.register(Box::new(m.backlog.clone()))?;
        m.registry.register(Box::new(m.backlog_max.clone()))?;
        m.registry.register(Box::new(m.lag_seconds.clone()))?;
        m.registry.register(Box::new(m.errors.clone()))?;
        m.registry.register(Box::new(m.claimed.clone()))?;
        m.registry.register(Box::new(m.snapshots.clone()))?;
        m.registry.register(Box::new(m.streams.clone()))?;
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        for kind in ["redis", "postgres"] {
            m.errors.with_label_values(&[kind]);
        }
        shared::limits::register(&m.registry)?;
        Ok(m)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(err) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "metrics encoding failed");
        }
        out
    }
}
