//! The engine's Prometheus series, through the `metrics` facade (the binary
//! installs the recorder; without one every handle is a no-op): recipients
//! delivered, deferred, bounced and expired per account, the queue's size,
//! and the time from acceptance to delivery.
//!
//! Only the engine task touches this, so the per-account handles sit in a
//! plain map: after an account's first outcome, counting is a map lookup
//! and an atomic add, with no lock and no allocation. The only label is the
//! account name (bounded by the number of accounts), never a recipient or a
//! message.

use super::events::{DeliveryEvent, DeliveryEventKind};
use carteiro_queue::{QueuedMessage, RcptStatus};
use metrics::{Counter, Gauge, Histogram};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Series names, shared with the binary's documentation of `/metrics`.
pub const DELIVERED: &str = "carteiro_messages_delivered_total";
pub const DEFERRED: &str = "carteiro_messages_deferred_total";
pub const BOUNCED: &str = "carteiro_messages_bounced_total";
pub const EXPIRED: &str = "carteiro_messages_expired_total";
pub const QUEUE_MESSAGES: &str = "carteiro_queue_messages";
pub const QUEUE_RECIPIENTS: &str = "carteiro_queue_recipients";
pub const DELIVERY_LATENCY: &str = "carteiro_delivery_latency_seconds";
pub use crate::client::CONNECTIONS_OUT;

/// Describes the engine's series (HELP lines); call once after installing
/// the recorder.
pub fn describe() {
    let per_recipient = "(per recipient: a message to n recipients counts n)";
    metrics::describe_counter!(
        DELIVERED,
        format!("Recipients accepted by the remote server {per_recipient}")
    );
    metrics::describe_counter!(
        DEFERRED,
        format!("Delivery attempts that failed temporarily {per_recipient}")
    );
    metrics::describe_counter!(
        BOUNCED,
        format!("Recipients refused permanently {per_recipient}")
    );
    metrics::describe_counter!(
        EXPIRED,
        format!("Recipients still deferred at the maximum age {per_recipient}")
    );
    metrics::describe_gauge!(QUEUE_MESSAGES, "Messages in the delivery queue");
    metrics::describe_gauge!(
        QUEUE_RECIPIENTS,
        "Recipients in the delivery queue still waiting for delivery"
    );
    metrics::describe_histogram!(
        DELIVERY_LATENCY,
        metrics::Unit::Seconds,
        "Time from acceptance to delivery, per delivered recipient"
    );
    metrics::describe_gauge!(CONNECTIONS_OUT, "Open outbound SMTP connections");
}

/// One account's outcome counters.
struct AccountSeries {
    delivered: Counter,
    deferred: Counter,
    bounced: Counter,
    expired: Counter,
}

impl AccountSeries {
    fn new(account: &str) -> AccountSeries {
        let label = |name: &'static str| metrics::counter!(name, "account" => account.to_owned());
        AccountSeries {
            delivered: label(DELIVERED),
            deferred: label(DEFERRED),
            bounced: label(BOUNCED),
            expired: label(EXPIRED),
        }
    }
}

pub(crate) struct EngineMetrics {
    accounts: HashMap<i64, AccountSeries>,
    queue_messages: Gauge,
    queue_recipients: Gauge,
    latency: Histogram,
    /// Recipients of queued messages still pending, kept as they change.
    pending: u64,
    /// The queue's size as the gauges show it, for the engine's handle.
    size: Arc<QueueSize>,
}

/// The queue's size, readable from outside the engine task.
#[derive(Debug, Default)]
pub(crate) struct QueueSize {
    messages: AtomicU64,
    recipients: AtomicU64,
}

impl QueueSize {
    /// Messages queued and recipients still to deliver.
    pub fn get(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.recipients.load(Ordering::Relaxed),
        )
    }
}

impl EngineMetrics {
    pub fn new() -> EngineMetrics {
        EngineMetrics {
            accounts: HashMap::new(),
            queue_messages: metrics::gauge!(QUEUE_MESSAGES),
            queue_recipients: metrics::gauge!(QUEUE_RECIPIENTS),
            latency: metrics::histogram!(DELIVERY_LATENCY),
            pending: 0,
            size: Arc::default(),
        }
    }

    /// The queue's size, shared with the engine's handle.
    pub fn size(&self) -> Arc<QueueSize> {
        Arc::clone(&self.size)
    }

    /// Counts the pending recipients of a message entering the queue.
    pub fn queued(&mut self, message: &QueuedMessage) {
        self.pending += pending_of(message, None);
    }

    /// Uncounts `n` recipients that left the pending state.
    pub fn settled(&mut self, n: u64) {
        self.pending = self.pending.saturating_sub(n);
    }

    /// Sets the queue gauges (two atomic stores).
    pub fn update_queue(&self, messages: usize) {
        self.queue_messages.set(messages as f64);
        self.queue_recipients.set(self.pending as f64);
        self.size.messages.store(messages as u64, Ordering::Relaxed);
        self.size.recipients.store(self.pending, Ordering::Relaxed);
    }

    /// Counts an outcome reported for a message of `account`, and the
    /// latency of a delivery (`received_at` and `now` in ms).
    pub fn outcome(&mut self, account: &str, event: &DeliveryEvent, received_at: u64, now: u64) {
        let series = self
            .accounts
            .entry(event.account_id)
            .or_insert_with(|| AccountSeries::new(account));
        match event.kind {
            DeliveryEventKind::Delivered => {
                series.delivered.increment(1);
                self.latency
                    .record(now.saturating_sub(received_at) as f64 / 1000.0);
            }
            DeliveryEventKind::Deferred => series.deferred.increment(1),
            DeliveryEventKind::Bounced => series.bounced.increment(1),
            DeliveryEventKind::Expired => series.expired.increment(1),
            DeliveryEventKind::Deleted => {}
        }
    }
}

/// Pending recipients of a message, among `only` when given.
pub(crate) fn pending_of(message: &QueuedMessage, only: Option<&[usize]>) -> u64 {
    let pending = |r: &&carteiro_queue::RcptState| r.status == RcptStatus::Pending;
    match only {
        None => message.rcpts.iter().filter(pending).count() as u64,
        Some(indices) => indices
            .iter()
            .filter_map(|&i| message.rcpts.get(i))
            .filter(|r| r.status == RcptStatus::Pending)
            .count() as u64,
    }
}
