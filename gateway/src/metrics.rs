//! The gateway's Prometheus metrics. Labels have bounded cardinality: never
//! a canvas id or user id.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The gateway's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections_open: IntGauge,
    /// Durable writes refused because the canvas's unpersisted backlog was full.
    pub durable_refused: IntCounter,
    /// Error replies sent, by error code name.
    pub errors: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            connections_open: IntGauge::new(
                "easel_gateway_connections_open",
                "Open WebSocket connections",
            )?,
            durable_refused: IntCounter::new(
                "easel_gateway_durable_writes_refused_total",
                "Durable writes refused with E013 because the canvas's unpersisted backlog was full",
            )?,
            errors: IntCounterVec::new(
                Opts::new("easel_gateway_errors_total", "Error replies sent, by code"),
                &["code"],
            )?,
            registry,
        };
        m.registry.register(Box::new(m.connections_open.clone()))?;
        m.registry.register(Box::new(m.durable_refused.clone()))?;
        m.registry.register(Box::new(m.errors.clone()))?;
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::error!(error = %err, "metrics encoding failed");
        }
        out
    }
}
