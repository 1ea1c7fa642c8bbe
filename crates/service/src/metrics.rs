//! The Prometheus series this crate counts (through the `metrics` facade;
//! the binary installs the recorder and serves the text).

use metrics::Counter;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Messages accepted, per account (a bulk message split per recipient
/// counts each copy).
pub const RECEIVED: &str = "carteiro_messages_received_total";
/// Webhook events waiting to be POSTed.
pub const WEBHOOK_BACKLOG: &str = "carteiro_webhook_backlog";

/// Describes this crate's series; call once after the recorder is installed.
pub fn describe() {
    metrics::describe_counter!(RECEIVED, "Messages accepted (SMTP and API), per account");
    metrics::describe_gauge!(WEBHOOK_BACKLOG, "Webhook events waiting to be delivered");
    metrics::describe_gauge!(
        crate::queue::UNDECODABLE,
        "Spool entries that could not be decoded at the last start (left in the spool)"
    );
    // Present from the start, before any webhook code sets it.
    metrics::gauge!(WEBHOOK_BACKLOG).set(0.0);
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
