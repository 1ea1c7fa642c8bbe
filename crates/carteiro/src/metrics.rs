//! Prometheus series for `GET /metrics`. The crates count where things
//! happen through the `metrics` facade (the delivery engine: outcomes per
//! account, queue size, delivery latency, outbound connections; the spool:
//! commit time, a full disk); this module installs the recorder they count into (the
//! exporter crate's, without its own HTTP server: the HTTP crate serves the
//! text), and reads the inbound connection count at scrape time. The mail
//! path's own series (received messages, webhook backlog) are counted in
//! `carteiro_service::metrics`.
//!
//! Counting stays cheap on the mail path: a counter is an atomic add on a
//! handle found without a lock, histograms append to a lock-free buffer
//! that the upkeep task drains every few seconds. Labels are bounded: the
//! account name at most, never a recipient or a message.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// SMTP connections open on our listeners.
pub const CONNECTIONS_IN: &str = "carteiro_connections_in";
/// Buckets of the delivery latency, seconds: from a local sink (tens of
/// milliseconds) to retries over days.
const LATENCY_BUCKETS: [f64; 15] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0,
];

/// Buckets of one spool commit (write and fdatasync), seconds.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// How often recorded histogram values are folded into their buckets (the
/// recorder keeps them in a buffer until then).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The installed recorder.
pub struct Metrics {
    handle: PrometheusHandle,
}

/// Installs the process-wide recorder. Call before the spool and the engine
/// start: handles they take before it count nowhere.
pub fn install() -> anyhow::Result<Arc<Metrics>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(carteiro_delivery::engine::DELIVERY_LATENCY.to_owned()),
            &LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(carteiro_spool::COMMIT_SECONDS.to_owned()),
            &COMMIT_BUCKETS,
        )?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    describe();
    Ok(Arc::new(Metrics { handle }))
}

fn describe() {
    carteiro_delivery::engine::describe_metrics();
    metrics::describe_gauge!(CONNECTIONS_IN, "Open inbound SMTP connections");
    metrics::describe_histogram!(
        carteiro_spool::COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time of one spool group commit (write and fdatasync of a batch)"
    );
    metrics::describe_gauge!(
        carteiro_spool::FULL,
        "1 while the spool's disk is full and new messages are refused, else 0"
    );
    carteiro_service::metrics::describe();
}

impl Metrics {
    /// The text exposition, with the gauges read at scrape time set first.
    pub fn render(&self, connections_in: usize) -> String {
        metrics::gauge!(CONNECTIONS_IN).set(connections_in as f64);
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Folds histogram values into buckets every few seconds, so memory
    /// stays bounded when nobody scrapes.
    pub fn spawn_upkeep(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let metrics = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(UPKEEP_INTERVAL) => metrics.handle.run_upkeep(),
                }
            }
        })
    }
}
