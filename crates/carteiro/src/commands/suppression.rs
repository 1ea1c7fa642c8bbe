//! `carteiro suppression list|add|remove|history`: an account's suppression
//! list, read and changed in the store beside a running server (which
//! follows the store's audit log to keep its in-memory copy current). Every
//! change is audited with the actor "cli".
//!
//! This command does not check sends or look at bounces; it edits the list.

use crate::cli::{ListReason, ManualReason, SuppressionCommand};
use anyhow::bail;
use carteiro_config::Config;
use carteiro_http::{ApiSuppression, format_timestamp};
use carteiro_store::{
    Account, MAX_SUPPRESSIONS_PAGE, Store, StoreError, SuppressionChange, SuppressionReason,
};

/// Who the audit log names for changes made here.
const ACTOR: &str = "cli";

pub async fn run(cmd: SuppressionCommand, config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let result = execute(cmd, &store).await;
    store.close().await;
    result
}

async fn execute(cmd: SuppressionCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        SuppressionCommand::List {
            account,
            json,
            reason,
        } => {
            let account = find_account(store, &account).await?;
            let entries = list(store, &account, reason.map(list_reason)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                for entry in entries {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        entry.address,
                        entry.reason,
                        entry.created_at,
                        entry.source_message_id.as_deref().unwrap_or("-"),
                        entry.detail.as_deref().unwrap_or("-"),
                    );
                }
            }
        }
        SuppressionCommand::Add {
            account,
            address,
            reason,
            detail,
        } => {
            let account = find_account(store, &account).await?;
            let reason = match reason {
                ManualReason::Manual => SuppressionReason::Manual,
                ManualReason::Unsubscribe => SuppressionReason::Unsubscribe,
            };
            let added = store
                .add_suppression(account.id, &address, reason, None, detail.as_deref(), ACTOR)
                .await?;
            let entry = store.suppression(account.id, &address).await?;
            match entry {
                Some(entry) if added => println!(
                    "{} added to the suppression list of account {} ({})",
                    entry.address, account.name, entry.reason
                ),
                Some(entry) => println!(
                    "{} is already on the suppression list of account {} ({} since {}); unchanged",
                    entry.address,
                    account.name,
                    entry.reason,
                    format_timestamp(entry.created_at_ms)
                ),
                // Removed by someone else the moment after it was added.
                None => bail!("{address} was removed from the list while being added"),
            }
        }
        SuppressionCommand::Remove { account, address } => {
            let account = find_account(store, &account).await?;
            if !store
                .remove_suppression(account.id, &address, ACTOR)
                .await?
            {
                bail!(
                    "{address} is not on the suppression list of account {}",
                    account.name
                );
            }
            println!(
                "{} removed from the suppression list of account {}",
                carteiro_store::suppression_address(&address),
                account.name
            );
        }
        SuppressionCommand::History {
            account,
            address,
            json,
        } => {
            let account = find_account(store, &account).await?;
            let changes = history(store, &account, address.as_deref()).await?;
            if json {
                let rows: Vec<serde_json::Value> = changes.iter().map(change_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for change in changes {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        format_timestamp(change.at_ms),
                        if change.added { "added" } else { "removed" },
                        change.address,
                        change.reason.map_or("-", SuppressionReason::as_str),
                        change.actor,
                    );
                }
            }
        }
    }
    Ok(())
}

/// The account with this name, or the store's "no such account" error.
async fn find_account(store: &Store, name: &str) -> anyhow::Result<Account> {
    match store.account(name).await? {
        Some(account) => Ok(account),
        None => Err(StoreError::NoSuchAccount(name.to_owned()).into()),
    }
}

fn list_reason(reason: ListReason) -> SuppressionReason {
    match reason {
        ListReason::HardBounce => SuppressionReason::HardBounce,
        ListReason::Complaint => SuppressionReason::Complaint,
        ListReason::Unsubscribe => SuppressionReason::Unsubscribe,
        ListReason::Manual => SuppressionReason::Manual,
    }
}

/// The whole list (one reason's entries when given), by address, in the
/// API's shape.
async fn list(
    store: &Store,
    account: &Account,
    reason: Option<SuppressionReason>,
) -> anyhow::Result<Vec<ApiSuppression>> {
    let mut entries: Vec<ApiSuppression> = Vec::new();
    loop {
        let after = entries.last().map(|e| e.address.clone());
        let page = store
            .list_suppressions(account.id, reason, after.as_deref(), MAX_SUPPRESSIONS_PAGE)
            .await?;
        let done = page.len() < MAX_SUPPRESSIONS_PAGE as usize;
        entries.extend(page.iter().map(ApiSuppression::from));
        if done {
            return Ok(entries);
        }
    }
}

/// Every audit row of the account (of one address when given), oldest first.
async fn history(
    store: &Store,
    account: &Account,
    address: Option<&str>,
) -> anyhow::Result<Vec<SuppressionChange>> {
    let mut changes: Vec<SuppressionChange> = Vec::new();
    loop {
        let after = changes.last().map_or(0, |c| c.id);
        let page = store
            .suppression_history(account.id, address, after, MAX_SUPPRESSIONS_PAGE)
            .await?;
        let done = page.len() < MAX_SUPPRESSIONS_PAGE as usize;
        changes.extend(page);
        if done {
            return Ok(changes);
        }
    }
}

/// An audit row as `history --json` prints it.
fn change_json(change: &SuppressionChange) -> serde_json::Value {
    serde_json::json!({
        "id": change.id.to_string(),
        "at": format_timestamp(change.at_ms),
        "action": if change.added { "added" } else { "removed" },
        "address": change.address,
        "reason": change.reason,
        "actor": change.actor,
    })
}
