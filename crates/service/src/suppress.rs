//! The suppression lists in memory: every send checks its recipients here
//! (no SQL per message), changes made in this process are applied at once,
//! and changes made by other processes (the CLI beside the server) arrive
//! through the store's audit log, polled every few seconds.

use carteiro_mail::LogSafe;
use carteiro_store::{Store, StoreError, SuppressionReason, suppression_address};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

const POLL_INTERVAL: Duration = Duration::from_secs(2);
const CHANGES_PAGE: u32 = 1000;

pub struct Suppressions {
    store: Store,
    set: RwLock<HashSet<(i64, String)>>,
    /// The last audit row applied.
    applied: Mutex<i64>,
    /// Held while catching up, so two catch-ups (the poll and a change
    /// made through the API or the dashboard) apply rows in order.
    catching_up: tokio::sync::Mutex<()>,
}

impl Suppressions {
    pub async fn load(store: Store) -> Result<Arc<Suppressions>, StoreError> {
        let applied = store.last_suppression_change().await?;
        let set: HashSet<(i64, String)> = store.all_suppressions().await?.into_iter().collect();
        tracing::info!(entries = set.len(), "suppression lists loaded");
        Ok(Arc::new(Suppressions {
            store,
            set: RwLock::new(set),
            applied: Mutex::new(applied),
            catching_up: tokio::sync::Mutex::new(()),
        }))
    }

    /// Whether `address` is on `account_id`'s list (whole address, ASCII
    /// case ignored).
    pub fn is_suppressed(&self, account_id: i64, address: &str) -> bool {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        if set.is_empty() {
            return false;
        }
        set.contains(&(account_id, suppression_address(address)))
    }

    /// Adds an address (store first, with a synced commit, then memory).
    /// A failure is logged and returned: callers that answer a person (an
    /// unsubscribe page) must not say "done"; automatic ones go on.
    pub async fn add(
        &self,
        account_id: i64,
        address: &str,
        reason: SuppressionReason,
        source_message_id: Option<&str>,
        detail: Option<&str>,
        actor: &str,
    ) -> Result<(), StoreError> {
        match self
            .store
            .add_suppression(
                account_id,
                address,
                reason,
                source_message_id,
                detail,
                actor,
            )
            .await
        {
            Ok(_) => {
                self.set
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((account_id, suppression_address(address)));
                Ok(())
            }
            Err(err) => {
                tracing::error!(address = %LogSafe(address), error = %err, "cannot add to the suppression list");
                Err(err)
            }
        }
    }

    /// Applies the audit rows written since the last look: called every
    /// few seconds, and at once after a change this process wrote to the
    /// store itself (the API, the dashboard), so a send right after it sees
    /// it.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.catching_up.lock().await;
        loop {
            let after = *self.applied.lock().unwrap_or_else(|e| e.into_inner());
            let changes = self.store.suppression_changes(after, CHANGES_PAGE).await?;
            let Some(last) = changes.last().map(|c| c.id) else {
                return Ok(());
            };
            {
                let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
                for change in &changes {
                    let key = (change.account_id, suppression_address(&change.address));
                    if change.added {
                        set.insert(key);
                    } else {
                        set.remove(&key);
                    }
                }
            }
            *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = last;
            if changes.len() < CHANGES_PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Keeps the lists current until `stop` turns true.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if let Err(err) = this.catch_up().await {
                    tracing::warn!(error = %err, "cannot read suppression changes");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
