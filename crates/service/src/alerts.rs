//! Alerts: conditions of the server as a whole that an operator should
//! hear about through the API and webhooks, not only the log. Each is
//! recorded as an `alert` event for every account (events belong to
//! accounts), about no message.
//!
//! Today there is one: the spool's disk is full (new mail is refused), and
//! later has room again.

use carteiro_mail::clock::now_millis;
use carteiro_spool::Spool;
use carteiro_store::{AlertDetails, EventDetails, EventKind, EventWriter, NewEvent, Store};
use tokio::sync::watch;

/// The `alert` of a full spool disk.
pub const SPOOL_FULL: &str = "spool_full";

/// Follows the spool's health and records an `alert` when its disk becomes
/// full and when it has room again, until `stop`.
pub fn spawn_spool_alerts(
    spool: &Spool,
    store: Store,
    events: EventWriter,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut health = spool.watch_health();
    tokio::spawn(async move {
        let mut full = false;
        loop {
            let now_full = health.borrow_and_update().full;
            if now_full != full {
                full = now_full;
                record(&store, &events, full).await;
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                changed = health.changed() => if changed.is_err() { return },
            }
        }
    })
}

async fn record(store: &Store, events: &EventWriter, full: bool) {
    let (state, text) = if full {
        (
            "started",
            "the spool's disk is full: new mail is refused (452 4.3.1) until there is room",
        )
    } else {
        (
            "ended",
            "the spool's disk has room again: new mail is accepted",
        )
    };
    // Reading needs no free space; the events are held until the store can
    // write them.
    let accounts = match store.list_accounts().await {
        Ok(accounts) => accounts,
        Err(err) => {
            tracing::warn!(error = %err, alert = SPOOL_FULL, state, "cannot list accounts for an alert");
            return;
        }
    };
    let timestamp_ms = now_millis() as i64;
    for account in accounts {
        events.event(NewEvent {
            account_id: account.id,
            message_id: String::new(),
            recipient: None,
            kind: EventKind::Alert,
            timestamp_ms,
            details: EventDetails::Alert(AlertDetails {
                alert: SPOOL_FULL.to_owned(),
                state: state.to_owned(),
                text: text.to_owned(),
            }),
        });
    }
}
