//! Suppression lists: per account, the addresses nothing may be sent to any
//! more (hard bounces, complaints, unsubscribes, operator entries), and the
//! audit log of every change to them.
//!
//! Addresses are stored and compared in one form, the whole address (local
//! part too) with ASCII letters lowercased: see [`suppression_address`].
//! Local parts are case-sensitive in principle, but receivers treat them
//! alike, and a list that `Bob@` slips past because `bob@` bounced would not
//! protect anyone. Non-ASCII letters are left as they are, as everywhere else
//! in Carteiro (domains, SQLite's `lower()`): no standard says how a UTF-8
//! local part folds.
//!
//! This module keeps the list; it does not decide what gets suppressed (which
//! bounce classes count) nor check sends against it: the binary does both,
//! from an in-memory copy it loads with [`Store::suppression_snapshot`] and
//! keeps current with [`Store::suppression_changes`]. Changes here never move
//! the `generation` counter (that one reloads DKIM signers).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::backend::Backend;
use crate::error::{StoreError, UnknownValue, is_foreign_key_violation};
use crate::store::{Store, now_unix_ms};

/// Longest address accepted on a list, in bytes: RFC 5321's 256-octet path
/// less its angle brackets.
const MAX_ADDRESS_BYTES: usize = 254;

/// Most rows one call of the listing and change-feed functions returns.
pub const MAX_SUPPRESSIONS_PAGE: u32 = 1000;

/// Why an address is on a suppression list. The names are the stored and
/// wire names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// A permanent failure that concerns the address itself (no such user,
    /// mailbox disabled), not the message or the sending server.
    HardBounce,
    /// The recipient reported a message as spam (a feedback report).
    Complaint,
    /// The recipient unsubscribed.
    Unsubscribe,
    /// An operator or API user put it there.
    Manual,
}

impl SuppressionReason {
    /// Every reason.
    pub const ALL: [SuppressionReason; 4] = [
        SuppressionReason::HardBounce,
        SuppressionReason::Complaint,
        SuppressionReason::Unsubscribe,
        SuppressionReason::Manual,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Unsubscribe => "unsubscribe",
            SuppressionReason::Manual => "manual",
        }
    }
}

impl fmt::Display for SuppressionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SuppressionReason {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<SuppressionReason, UnknownValue> {
        SuppressionReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "suppression reason",
                value: s.to_owned(),
            })
    }
}

/// An address on an account's suppression list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// The account whose list it is on.
    pub account_id: i64,
    /// The address, ASCII-lowercased ([`suppression_address`]).
    pub address: String,
    /// Why it was added (the first reason, when it was added again since).
    pub reason: SuppressionReason,
    /// The message whose bounce, complaint or unsubscribe added it.
    pub source_message_id: Option<String>,
    /// Free text: the remote reply of a bounce, the feedback type of a
    /// complaint, an operator's note.
    pub detail: Option<String>,
    /// When it was added, unix milliseconds.
    pub created_at_ms: i64,
}

impl Suppression {
    fn from_row(row: &AnyRow) -> Result<Suppression, StoreError> {
        Ok(Suppression {
            account_id: row.try_get("account_id")?,
            address: row.try_get("address")?,
            reason: row.try_get::<String, _>("reason")?.parse()?,
            source_message_id: row.try_get("source_message_id")?,
            detail: row.try_get("detail")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

/// One row of the audit log: an address added to or removed from a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuppressionChange {
    /// Increasing in commit order; the cursor of
    /// [`Store::suppression_changes`].
    pub id: i64,
    /// The account whose list changed.
    pub account_id: i64,
    /// The address, ASCII-lowercased.
    pub address: String,
    /// `true` for an addition, `false` for a removal.
    pub added: bool,
    /// The reason of the entry added or removed (`None` only in rows this
    /// version did not write).
    pub reason: Option<SuppressionReason>,
    /// Who made the change: "cli", "api", "bounce", "complaint",
    /// "unsubscribe", ...
    pub actor: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

impl SuppressionChange {
    fn from_row(row: &AnyRow) -> Result<SuppressionChange, StoreError> {
        Ok(SuppressionChange {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            address: row.try_get("address")?,
            added: row.try_get::<i64, _>("added")? != 0,
            reason: row
                .try_get::<Option<String>, _>("reason")?
                .map(|reason| reason.parse())
                .transpose()?,
            actor: row.try_get("actor")?,
            at_ms: row.try_get("at_ms")?,
        })
    }
}

/// The form an address is stored and compared in: the whole address with
/// its ASCII letters lowercased. The binary's in-memory copy of the lists
/// must use this same function.
pub fn suppression_address(address: &str) -> String {
    address.to_ascii_lowercase()
}

/// Checks an address to add and returns its stored form. Minimal on purpose:
/// `local@domain` with a valid domain (the rightmost `@` splits), no control
/// characters or surrounding spaces, at most 254 bytes.
fn check_address(address: &str) -> Result<String, StoreError> {
    let valid = address.len() <= MAX_ADDRESS_BYTES
        && address.trim() == address
        && !address.chars().any(char::is_control)
        && carteiro_mail::split_address(address)
            .is_some_and(|(_, domain)| carteiro_mail::address::is_valid_domain(domain));
    if valid {
        Ok(suppression_address(address))
    } else {
        Err(StoreError::InvalidAddress(address.to_owned()))
    }
}

const SUPPRESSION_COLUMNS: &str =
    "account_id, address, reason, source_message_id, detail, created_at_ms";
/// `added` is an INTEGER in SQLite and a BOOLEAN in PostgreSQL: read as a
/// number from both.
const CHANGE_COLUMNS: &str =
    "id, account_id, address, CASE WHEN added THEN 1 ELSE 0 END AS added, reason, actor, at_ms";

/// The PostgreSQL advisory lock that orders audit rows (any number unique to
/// this use: "supp" in ASCII).
const SUPPRESSION_CHANGES_LOCK: i64 = 0x7375_7070;

/// Writes an audit row, inside the transaction that made the change.
async fn record_change(
    connection: &mut AnyConnection,
    account_id: i64,
    address: &str,
    added: bool,
    reason: SuppressionReason,
    actor: &str,
) -> Result<(), StoreError> {
    if Backend::of(connection) == Backend::Postgres {
        // Identity ids are handed out at insert, not at commit: without
        // this lock (held to the end of the transaction) a poller reading
        // `id > last seen` could pass an id that commits later and never
        // see that change.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SUPPRESSION_CHANGES_LOCK)
            .execute(&mut *connection)
            .await?;
    }
    sqlx::query(
        "INSERT INTO suppression_changes (account_id, address, added, reason, actor, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(account_id)
    .bind(address)
    .bind(added)
    .bind(reason.as_str())
    .bind(actor)
    .bind(now_unix_ms())
    .execute(connection)
    .await?;
    Ok(())
}

impl Store {
    /// Puts an address on an account's list. An address already there keeps
    /// its entry (the first reason, source and time stay) and that is not an
    /// error. An audit row naming `actor` is written only when the address
    /// was not there, in the same transaction. Returns whether it was new.
    ///
    /// Fails with [`StoreError::InvalidAddress`], or
    /// [`StoreError::NoSuchAccount`] for an unknown account id.
    pub async fn add_suppression(
        &self,
        account_id: i64,
        address: &str,
        reason: SuppressionReason,
        source_message_id: Option<&str>,
        detail: Option<&str>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let address = check_address(address)?;
        // A write first: the transaction takes the write lock at once.
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO suppressions \
             (account_id, address, reason, source_message_id, detail, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, address) DO NOTHING",
        )
        .bind(account_id)
        .bind(&address)
        .bind(reason.as_str())
        .bind(source_message_id)
        .bind(detail)
        .bind(now_unix_ms())
        .execute(&mut *tx)
        .await
        .map_err(|error| {
            if is_foreign_key_violation(&error) {
                StoreError::NoSuchAccount(format!("with id {account_id}"))
            } else {
                error.into()
            }
        })?
        .rows_affected()
            > 0;
        if added {
            record_change(&mut tx, account_id, &address, true, reason, actor).await?;
        }
        tx.commit().await?;
        if added {
            tracing::info!(account_id, %address, %reason, %actor, "address suppressed");
        }
        Ok(added)
    }

    /// Takes an address off an account's list, writing an audit row naming
    /// `actor` in the same transaction. Returns whether it was there.
    pub async fn remove_suppression(
        &self,
        account_id: i64,
        address: &str,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let address = suppression_address(address);
        let mut tx = self.pool.begin().await?;
        let removed: Option<String> = sqlx::query_scalar(
            "DELETE FROM suppressions WHERE account_id = $1 AND address = $2 RETURNING reason",
        )
        .bind(account_id)
        .bind(&address)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(reason) = removed else {
            return Ok(false);
        };
        let reason: SuppressionReason = reason.parse()?;
        record_change(&mut tx, account_id, &address, false, reason, actor).await?;
        tx.commit().await?;
        tracing::info!(account_id, %address, %actor, "address no longer suppressed");
        Ok(true)
    }

    /// The entry for an address on an account's list, if it is there.
    pub async fn suppression(
        &self,
        account_id: i64,
        address: &str,
    ) -> Result<Option<Suppression>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUPPRESSION_COLUMNS} FROM suppressions \
             WHERE account_id = $1 AND address = $2"
        )))
        .bind(account_id)
        .bind(suppression_address(address))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(Suppression::from_row)
        .transpose()
    }

    /// An account's list by address, only `reason`'s entries when given: the
    /// entries after `after_address` (the last address of the previous page),
    /// at most `limit` (capped at [`MAX_SUPPRESSIONS_PAGE`]); fewer means the
    /// end.
    pub async fn list_suppressions(
        &self,
        account_id: i64,
        reason: Option<SuppressionReason>,
        after_address: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Suppression>, StoreError> {
        let filter = if reason.is_some() {
            "AND reason = $4"
        } else {
            ""
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUPPRESSION_COLUMNS} FROM suppressions \
             WHERE account_id = $1 AND address > $2 {filter} ORDER BY address LIMIT $3"
        )))
        .bind(account_id)
        .bind(after_address.map(suppression_address).unwrap_or_default())
        .bind(i64::from(limit.min(MAX_SUPPRESSIONS_PAGE)));
        if let Some(reason) = reason {
            query = query.bind(reason.as_str());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Suppression::from_row)
            .collect()
    }

    /// Every suppressed address of every account, as `(account id, address)`
    /// pairs. To follow changes from there without missing one, read
    /// [`last_suppression_change`](Self::last_suppression_change) *before*
    /// this (replaying a change already seen is harmless), or use
    /// [`suppression_snapshot`](Self::suppression_snapshot).
    pub async fn all_suppressions(&self) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT account_id, address FROM suppressions ORDER BY account_id, address",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// [`all_suppressions`](Self::all_suppressions) and the id of the last
    /// change it includes, read in one snapshot: applying
    /// [`suppression_changes`](Self::suppression_changes) after that id keeps
    /// a copy exact.
    pub async fn suppression_snapshot(&self) -> Result<(i64, Vec<(i64, String)>), StoreError> {
        let mut tx = self.begin_snapshot().await?;
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM suppression_changes")
            .fetch_one(&mut *tx)
            .await?;
        let all = sqlx::query_as(
            "SELECT account_id, address FROM suppressions ORDER BY account_id, address",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((last, all))
    }

    /// Audit rows of every account with an id above `after_id`, oldest first,
    /// at most `limit` (capped at [`MAX_SUPPRESSIONS_PAGE`]): what a server
    /// polls to see changes other processes made. Ids grow in commit order,
    /// so nothing committed later can appear below the last id seen.
    pub async fn suppression_changes(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SuppressionChange>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM suppression_changes \
             WHERE id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after_id)
        .bind(i64::from(limit.min(MAX_SUPPRESSIONS_PAGE)))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(SuppressionChange::from_row)
        .collect()
    }

    /// The highest audit row id, 0 when there is none.
    pub async fn last_suppression_change(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM suppression_changes")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// One account's audit rows (only `address`'s when given), oldest first:
    /// those with an id above `after_id`, at most `limit` (capped at
    /// [`MAX_SUPPRESSIONS_PAGE`]).
    pub async fn suppression_history(
        &self,
        account_id: i64,
        address: Option<&str>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SuppressionChange>, StoreError> {
        let filter = if address.is_some() {
            "AND address = $4"
        } else {
            ""
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM suppression_changes \
             WHERE account_id = $1 AND id > $2 {filter} ORDER BY id LIMIT $3"
        )))
        .bind(account_id)
        .bind(after_id)
        .bind(i64::from(limit.min(MAX_SUPPRESSIONS_PAGE)));
        if let Some(address) = address {
            query = query.bind(suppression_address(address));
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(SuppressionChange::from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests;
