//! Webhook endpoints of an account, and the bookkeeping of their delivery.
//!
//! The event log is the webhooks' outbox: an endpoint row keeps a cursor, the
//! id of the last event it is done with (delivered, or not of a type it
//! wants), and its pending events are the account's events after that id.
//! Event ids grow in commit order, so a reader that moves the cursor only up
//! to ids it has seen committed misses nothing, and a restart loses nothing.
//! A new endpoint's cursor starts at the newest event: it gets the events
//! that happen after it was made.
//!
//! This module stores endpoints and answers the dispatcher's questions; it
//! does not send anything, nor decide when to retry or give up (the binary's
//! dispatcher does). The signing secret is stored as it is (`whsec_` and 64
//! hex digits), because every POST is signed with it; the database file is
//! private to its owner, as for the DKIM keys.

use std::sync::Arc;

use rand::TryRngCore;
use rand::rngs::OsRng;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{StoreError, is_foreign_key_violation};
use crate::events::{EVENT_COLUMNS, EVENT_IDS_PER_MS, EventKind, account_name, kind_filter};
use crate::store::{Store, now_unix_ms};

/// What every signing secret starts with.
const SECRET_PREFIX: &str = "whsec_";

/// Random bytes of a signing secret (written as hex): 256 bits.
const SECRET_BYTES: usize = 32;

/// Longest `last_error` kept, in characters.
const MAX_ERROR_CHARS: usize = 500;

/// Failed attempts in a row after which an endpoint is shown as `failing`.
pub const WEBHOOK_FAILING_AFTER: u32 = 5;

/// An event as the webhook dispatcher reads it: like
/// [`EventRecord`](crate::EventRecord), but with the details as the JSON
/// text the database holds, which goes into the POST body as it is (no
/// parse into a `Value` and back for every event of every batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: i64,
    pub kind: EventKind,
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// The owning account's name (one copy per batch).
    pub account: Arc<str>,
    pub message_id: String,
    pub recipient: Option<String>,
    /// The details column: a JSON object, or `null` for none.
    pub details_json: String,
}

impl WebhookEvent {
    fn from_row(row: &AnyRow, account: &Arc<str>) -> Result<WebhookEvent, StoreError> {
        Ok(WebhookEvent {
            id: row.try_get("id")?,
            kind: row.try_get::<&str, _>("kind")?.parse()?,
            timestamp_ms: row.try_get("timestamp_ms")?,
            account: Arc::clone(account),
            message_id: row.try_get("message_id")?,
            recipient: row.try_get("recipient")?,
            details_json: row.try_get("details")?,
        })
    }
}

/// Most events one call of [`Store::webhook_events`] returns.
pub const MAX_WEBHOOK_BATCH: u32 = 1000;

/// An endpoint's health as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookStatus {
    /// The last attempt succeeded, or fewer than [`WEBHOOK_FAILING_AFTER`]
    /// failed in a row.
    Active,
    /// At least [`WEBHOOK_FAILING_AFTER`] attempts failed in a row; it is
    /// still retried.
    Failing,
}

impl WebhookStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Active => "active",
            WebhookStatus::Failing => "failing",
        }
    }
}

/// A webhook endpoint with its delivery state.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    /// Database id; what the API names it by.
    pub id: i64,
    /// The owning account.
    pub account_id: i64,
    /// Where events are POSTed (an absolute http or https URL).
    pub url: String,
    /// The event types it wants; empty for every type.
    pub events: Vec<EventKind>,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// When it was made, unix milliseconds.
    pub created_at_ms: i64,
    /// The cursor: the last event id it is done with.
    pub last_event_id: i64,
    /// Attempts failed in a row (0 after a success).
    pub failures: u32,
    /// When the current run of failures began; `None` while healthy.
    pub failing_since_ms: Option<i64>,
    /// What the last failed attempt met.
    pub last_error: Option<String>,
    /// When the last attempt failed.
    pub last_error_at_ms: Option<i64>,
    /// When an attempt last succeeded.
    pub last_success_at_ms: Option<i64>,
    /// Events given up on (the endpoint kept failing for days).
    pub skipped_events: u64,
}

// Not derived: the secret stays out of logs.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("last_event_id", &self.last_event_id)
            .field("failures", &self.failures)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// `failing` after [`WEBHOOK_FAILING_AFTER`] failures in a row.
    pub fn status(&self) -> WebhookStatus {
        if self.failures >= WEBHOOK_FAILING_AFTER {
            WebhookStatus::Failing
        } else {
            WebhookStatus::Active
        }
    }

    /// Whether it wants events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }

    fn from_row(row: &AnyRow) -> Result<Webhook, StoreError> {
        let events: String = row.try_get("events")?;
        let events: Vec<EventKind> = serde_json::from_str(&events)
            .map_err(|error| StoreError::Corrupt(format!("bad webhook event types: {error}")))?;
        Ok(Webhook {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            url: row.try_get("url")?,
            events,
            secret: row.try_get("secret")?,
            created_at_ms: row.try_get("created_at_ms")?,
            last_event_id: row.try_get("last_event_id")?,
            failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
            failing_since_ms: row.try_get("failing_since_ms")?,
            last_error: row.try_get("last_error")?,
            last_error_at_ms: row.try_get("last_error_at_ms")?,
            last_success_at_ms: row.try_get("last_success_at_ms")?,
            skipped_events: u64::try_from(row.try_get::<i64, _>("skipped_events")?).unwrap_or(0),
        })
    }
}

/// An event id below which every event was committed before `ms` (unix
/// milliseconds): ids are more than 1024 times their commit time. Events
/// committed earlier may have higher ids, never the reverse, so skipping the
/// ids below it skips only older events.
pub fn event_id_floor(ms: i64) -> i64 {
    ms.saturating_mul(EVENT_IDS_PER_MS)
}

/// The columns [`Webhook::from_row`] reads.
const WEBHOOK_COLUMNS: &str = "id, account_id, url, events, secret, created_at_ms, last_event_id, \
     failures, failing_since_ms, last_error, last_error_at_ms, last_success_at_ms, skipped_events";

/// A new signing secret from the operating system's random number generator.
fn generate_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| StoreError::Random(error.to_string()))?;
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + 2 * SECRET_BYTES);
    secret.push_str(SECRET_PREFIX);
    for b in bytes {
        secret.push_str(&format!("{b:02x}"));
    }
    Ok(secret)
}

/// At most `max` characters of `text`.
fn clip(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl Store {
    /// Makes a webhook endpoint for an account, with a new signing secret and
    /// its cursor at the newest event. `url` is stored as given (the caller
    /// checks it); `events` empty means every type.
    ///
    /// Fails with [`StoreError::NoSuchAccount`] for an unknown account.
    pub async fn create_webhook(
        &self,
        account_id: i64,
        url: &str,
        events: &[EventKind],
    ) -> Result<Webhook, StoreError> {
        let secret = generate_secret()?;
        let events = serde_json::to_string(events)
            .map_err(|error| StoreError::Corrupt(format!("webhook event types: {error}")))?;
        // The cursor is read in the same statement as the insert: an event
        // committed before it is not sent, one committed after it is.
        let sql = format!(
            "INSERT INTO webhooks (account_id, url, events, secret, created_at_ms, last_event_id) \
             VALUES ($1, $2, $3, $4, $5, \
                 (SELECT value FROM counters WHERE name = 'event_id')) \
             RETURNING {WEBHOOK_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(url)
            .bind(&events)
            .bind(&secret)
            .bind(now_unix_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(|error| {
                if is_foreign_key_violation(&error) {
                    StoreError::NoSuchAccount(account_id.to_string())
                } else {
                    error.into()
                }
            })?;
        Webhook::from_row(&row)
    }

    /// An account's endpoints, oldest first.
    pub async fn webhooks(&self, account_id: i64) -> Result<Vec<Webhook>, StoreError> {
        let sql =
            format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE account_id = $1 ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Webhook::from_row)
            .collect()
    }

    /// One of an account's endpoints; `None` for a missing one or another
    /// account's.
    pub async fn webhook(&self, account_id: i64, id: i64) -> Result<Option<Webhook>, StoreError> {
        let sql =
            format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE account_id = $1 AND id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(Webhook::from_row)
            .transpose()
    }

    /// Removes one of an account's endpoints; `false` when it had none with
    /// that id. Its pending events are simply not sent.
    pub async fn delete_webhook(&self, account_id: i64, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every account's endpoints, by id: what the dispatcher serves.
    pub async fn all_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Webhook::from_row)
            .collect()
    }

    /// The id of the newest committed event (0 before the first). Every
    /// event with an id up to it is committed and readable: ids come from a
    /// counter moved in the transaction that writes the events.
    pub async fn newest_event_id(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'event_id'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// An account's events with ids in `(after_id, up_to_id]` and of one of
    /// `kinds` (every kind when empty), oldest first, at most `limit` (capped
    /// at [`MAX_WEBHOOK_BATCH`]). A range of the `(account_id, id)` key.
    pub async fn webhook_events(
        &self,
        account_id: i64,
        kinds: &[EventKind],
        after_id: i64,
        up_to_id: i64,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        let Some(account) = account_name(self, account_id).await? else {
            return Ok(Vec::new());
        };
        let account: Arc<str> = account.into();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e \
             WHERE e.account_id = $1 AND e.id > $2 AND e.id <= $3{} \
             ORDER BY e.id LIMIT $4",
            kind_filter(kinds, 5)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(after_id)
            .bind(up_to_id)
            .bind(i64::from(limit.min(MAX_WEBHOOK_BATCH)));
        for kind in kinds {
            query = query.bind(kind.as_str());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| WebhookEvent::from_row(row, &account))
            .collect()
    }

    /// How many of an account's events with ids in `(after_id, up_to_id]`
    /// are of one of `kinds` (every kind when empty), counting no further
    /// than `cap`: an endpoint's backlog, cheap however long it is.
    pub async fn count_webhook_events(
        &self,
        account_id: i64,
        kinds: &[EventKind],
        after_id: i64,
        up_to_id: i64,
        cap: u32,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events e \
             WHERE e.account_id = $1 AND e.id > $2 AND e.id <= $3{} LIMIT $4) AS backlog",
            kind_filter(kinds, 5)
        );
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(after_id)
            .bind(up_to_id)
            .bind(i64::from(cap));
        for kind in kinds {
            query = query.bind(kind.as_str());
        }
        Ok(u64::try_from(query.fetch_one(&self.pool).await?).unwrap_or(0))
    }

    /// Moves an endpoint's cursor forward to `cursor` (never back): the
    /// events up to it need nothing more (none it wants were among them).
    pub async fn advance_webhook(&self, id: i64, cursor: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhooks SET last_event_id = CASE WHEN last_event_id > $2 THEN last_event_id ELSE $2 END WHERE id = $1")
            .bind(id)
            .bind(cursor)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a successful POST: the cursor moves to `cursor`, the run of
    /// failures ends.
    pub async fn webhook_delivered(
        &self,
        id: i64,
        cursor: i64,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhooks SET last_event_id = CASE WHEN last_event_id > $2 THEN last_event_id ELSE $2 END, failures = 0, \
             failing_since_ms = NULL, last_success_at_ms = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(cursor)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt; returns the failures in a row and when
    /// they began, or `None` when the endpoint is gone.
    pub async fn webhook_failed(
        &self,
        id: i64,
        error: &str,
        at_ms: i64,
    ) -> Result<Option<(u32, i64)>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE webhooks SET failures = failures + 1, \
             failing_since_ms = coalesce(failing_since_ms, $3), \
             last_error = $2, last_error_at_ms = $3 WHERE id = $1 \
             RETURNING failures, failing_since_ms",
        )
        .bind(id)
        .bind(clip(error, MAX_ERROR_CHARS))
        .bind(at_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(failures, since)| (u32::try_from(failures).unwrap_or(u32::MAX), since)))
    }

    /// Gives up on an endpoint's events up to `cursor` (it kept failing too
    /// long): the cursor moves there and `skipped` is added to its count.
    pub async fn skip_webhook_events(
        &self,
        id: i64,
        cursor: i64,
        skipped: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhooks SET last_event_id = CASE WHEN last_event_id > $2 THEN last_event_id ELSE $2 END, \
             skipped_events = skipped_events + $3 WHERE id = $1",
        )
        .bind(id)
        .bind(cursor)
        .bind(i64::try_from(skipped).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
