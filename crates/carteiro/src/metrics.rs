//! Prometheus series for `GET /metrics`. The crates count where things
//! happen through the `metrics` facade (the delivery engine: outcomes per
//! account, queue size, delivery latency, outbound connections; the spool:
//! commit time); this module installs the recorder they count into (the
//! exporter crate's, without its own HTTP server: the HTTP crate serves the
//! text), counts received messages, reads the inbound connection count at
//! scrape time, and keeps the webhook backlog gauge.
//!
//! Counting stays cheap on the mail path: a counter is an atomic add on a
//! handle found without a lock, histograms append to a lock-free buffer
//! that the upkeep task drains every few seconds. Labels are bounded: the
//! account name at most, never a recipient or a message.

use metrics::Counter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// Messages accepted, per account (a bulk message split per recipient
/// counts each copy).
pub const RECEIVED: &str = "carteiro_messages_received_total";
/// SMTP connections open on our listeners.
pub const CONNECTIONS_IN: &str = "carteiro_connections_in";
/// Webhook events waiting to be POSTed.
pub const WEBHOOK_BACKLOG: &str = "carteiro_webhook_backlog";

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
    metrics::describe_counter!(RECEIVED, "Messages accepted (SMTP and API), per account");
    metrics::describe_gauge!(CONNECTIONS_IN, "Open inbound SMTP connections");
    metrics::describe_gauge!(WEBHOOK_BACKLOG, "Webhook events waiting to be delivered");
    metrics::describe_histogram!(
        carteiro_spool::COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time of one spool group commit (write and fdatasync of a batch)"
    );
    // Present from the start, before any webhook code sets it.
    metrics::gauge!(WEBHOOK_BACKLOG).set(0.0);
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

/// Sets the webhook backlog gauge: events waiting to be POSTed, over every
/// endpoint (for the webhook dispatcher).
pub fn set_webhook_backlog(events: u64) {
    metrics::gauge!(WEBHOOK_BACKLOG).set(events as f64);
}

/// Account ids below this find their counter in a table, without a lock
/// (ids count up from 1, so this covers almost every installation).
const DIRECT_ACCOUNTS: usize = 1024;

/// A counter per account with the `account` label, found without a lock
/// and without allocating once an account has counted once.
pub struct PerAccount {
    name: &'static str,
    direct: Box<[OnceLock<Counter>]>,
    /// Accounts with larger ids (rare): behind a lock.
    others: Mutex<HashMap<i64, Counter>>,
}

impl PerAccount {
    pub fn new(name: &'static str) -> PerAccount {
        PerAccount {
            name,
            direct: (0..DIRECT_ACCOUNTS).map(|_| OnceLock::new()).collect(),
            others: Mutex::new(HashMap::new()),
        }
    }

    /// Adds one for account `id` named `account`.
    pub fn increment(&self, id: i64, account: &str) {
        let make = || metrics::counter!(self.name, "account" => account.to_owned());
        match usize::try_from(id).ok().and_then(|i| self.direct.get(i)) {
            Some(slot) => slot.get_or_init(make).increment(1),
            None => {
                let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
                others.entry(id).or_insert_with(make).increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_account_counters_take_any_id() {
        // Without a recorder the counters count nowhere; this checks the
        // table and the fallback do not panic for any id.
        let counter = PerAccount::new(RECEIVED);
        for id in [0, 1, 1023, 1024, -1, i64::MAX] {
            counter.increment(id, "acme");
            counter.increment(id, "acme");
        }
        assert_eq!(counter.others.lock().expect("lock").len(), 3);
    }
}
