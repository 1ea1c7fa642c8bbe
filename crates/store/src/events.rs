//! The event log: every state change of a message's recipient (and every
//! engagement event after delivery) as one row, readable per account in the
//! order it was committed.
//!
//! Events are written only by [`EventWriter`](crate::EventWriter) through
//! [`Store::record_batch`]; this module defines them and reads them back. It
//! does not know the HTTP or webhook wire shapes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{StoreError, UnknownValue};
use crate::event_details::EventDetails;
use crate::store::Store;

/// Event ids are at least this many times the commit time in milliseconds
/// (see migration 0004), which turns a time filter into an id range.
pub(crate) const EVENT_IDS_PER_MS: i64 = 1024;

/// How far an event's timestamp may lie after the moment it was committed (a
/// clock read a little late, or a clock step) and still be found by a time
/// filter.
const TIMESTAMP_SLACK_MS: i64 = 10 * 60 * 1000;

/// Most events one call returns.
pub const MAX_EVENTS_PAGE: u32 = 1000;

/// What happened. The names are the wire names of the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The message was accepted and queued.
    Received,
    /// A delivery attempt failed temporarily; it will be retried.
    Deferred,
    /// The remote server accepted the message.
    Delivered,
    /// Delivery failed permanently.
    Bounced,
    /// Delivery kept failing until the message's maximum age.
    Expired,
    /// The recipient is on the account's suppression list; nothing was sent.
    Suppressed,
    /// The recipient reported the message as spam.
    Complained,
    /// The recipient opened the message (tracking pixel).
    Opened,
    /// The recipient followed a tracked link.
    Clicked,
    /// The recipient unsubscribed.
    Unsubscribed,
    /// An operator deleted the message from the queue.
    Deleted,
    /// The message was held back (quarantine) instead of being delivered.
    Held,
    /// The message was refused at submission.
    Rejected,
    /// Something about the server as a whole that needs an operator (the
    /// spool's disk is full, or has room again): recorded for every
    /// account, about no message.
    Alert,
}

impl EventKind {
    /// Every kind, in the order of the wire documentation.
    pub const ALL: [EventKind; 14] = [
        EventKind::Received,
        EventKind::Deferred,
        EventKind::Delivered,
        EventKind::Bounced,
        EventKind::Expired,
        EventKind::Suppressed,
        EventKind::Complained,
        EventKind::Opened,
        EventKind::Clicked,
        EventKind::Unsubscribed,
        EventKind::Deleted,
        EventKind::Held,
        EventKind::Rejected,
        EventKind::Alert,
    ];

    /// The wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Received => "received",
            EventKind::Deferred => "deferred",
            EventKind::Delivered => "delivered",
            EventKind::Bounced => "bounced",
            EventKind::Expired => "expired",
            EventKind::Suppressed => "suppressed",
            EventKind::Complained => "complained",
            EventKind::Opened => "opened",
            EventKind::Clicked => "clicked",
            EventKind::Unsubscribed => "unsubscribed",
            EventKind::Deleted => "deleted",
            EventKind::Held => "held",
            EventKind::Rejected => "rejected",
            EventKind::Alert => "alert",
        }
    }

    /// The recipient state this event puts its recipient in (all recipients of
    /// the message when the event names none), or `None` for events that do
    /// not change it: engagement after delivery (opened, clicked, complained,
    /// unsubscribed) and message-level verdicts (held, rejected).
    pub fn recipient_state(self) -> Option<&'static str> {
        match self {
            EventKind::Received => Some(RECIPIENT_STATES[0]),
            EventKind::Deferred => Some("deferred"),
            EventKind::Delivered => Some("delivered"),
            EventKind::Bounced => Some("bounced"),
            EventKind::Expired => Some("expired"),
            EventKind::Deleted => Some("deleted"),
            EventKind::Suppressed => Some("suppressed"),
            EventKind::Complained
            | EventKind::Opened
            | EventKind::Clicked
            | EventKind::Unsubscribed
            | EventKind::Held
            | EventKind::Rejected
            | EventKind::Alert => None,
        }
    }
}

/// Every recipient state, the first being a new recipient's.
pub const RECIPIENT_STATES: [&str; 7] = [
    "queued",
    "deferred",
    "delivered",
    "bounced",
    "expired",
    "deleted",
    "suppressed",
];

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<EventKind, UnknownValue> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "event type",
                value: s.to_owned(),
            })
    }
}

/// An event to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The account that owns the message.
    pub account_id: i64,
    /// The message's id (its `MessageId` text).
    pub message_id: String,
    /// The recipient it concerns; `None` for the whole message.
    pub recipient: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// When it happened, unix milliseconds.
    pub timestamp_ms: i64,
    /// Kind-specific details (remote host and reply, attempt, bounce class,
    /// URL, ...).
    pub details: EventDetails,
}

/// A recorded event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    /// The event's id: increasing in the order events were committed.
    pub id: i64,
    /// What happened.
    pub kind: EventKind,
    /// When it happened, unix milliseconds.
    pub timestamp_ms: i64,
    /// The owning account's name.
    pub account: String,
    /// The message's id.
    pub message_id: String,
    /// The recipient it concerns, if one.
    pub recipient: Option<String>,
    /// Kind-specific details.
    pub details: serde_json::Value,
}

/// The columns [`EventRecord::from_row`] reads, on a table aliased `e`.
pub(crate) const EVENT_COLUMNS: &str =
    "e.id, e.kind, e.timestamp_ms, e.message_id, e.recipient, e.details";

impl EventRecord {
    pub(crate) fn from_row(row: &AnyRow, account: &str) -> Result<EventRecord, StoreError> {
        let details: String = row.try_get("details")?;
        Ok(EventRecord {
            id: row.try_get("id")?,
            kind: row.try_get::<String, _>("kind")?.parse()?,
            timestamp_ms: row.try_get("timestamp_ms")?,
            account: account.to_owned(),
            message_id: row.try_get("message_id")?,
            recipient: row.try_get("recipient")?,
            details: parse_json(&details)?,
        })
    }
}

/// `AND e.kind IN ($first, …)` for `kinds` (nothing when empty: every
/// kind), to bind the kinds' names after the query's other parameters.
pub(crate) fn kind_filter(kinds: &[EventKind], first: usize) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let placeholders: Vec<String> = (0..kinds.len())
        .map(|i| format!("${}", first + i))
        .collect();
    format!(" AND e.kind IN ({})", placeholders.join(", "))
}

/// Reads back a JSON column.
pub(crate) fn parse_json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("bad json in the database: {error}")))
}

/// The name of the account with this id, or `None` when there is none: every
/// account-scoped read starts here, and an unknown account sees nothing.
pub(crate) async fn account_name(
    store: &Store,
    account_id: i64,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT name FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(&store.pool)
            .await?,
    )
}

/// The smallest id an event with a timestamp at or after `since_ms` can
/// have: an event is committed after (or, by the slack, a little before)
/// its timestamp, and its id is at least 1024 times its commit time.
fn first_id_at(since_ms: i64) -> i64 {
    since_ms
        .saturating_sub(TIMESTAMP_SLACK_MS)
        .saturating_mul(EVENT_IDS_PER_MS)
}

impl Store {
    /// An account's events, oldest first (by id): those after `after_id` (the
    /// last id of the previous page), at or after `since_ms` and of one of
    /// `kinds` (any kind when empty). At most `limit` (capped at
    /// [`MAX_EVENTS_PAGE`]) are returned; fewer means the end for now.
    pub async fn events(
        &self,
        account_id: i64,
        since_ms: Option<i64>,
        kinds: &[EventKind],
        after_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let Some(account) = account_name(self, account_id).await? else {
            return Ok(Vec::new());
        };
        let since_id = since_ms.map_or(i64::MIN, first_id_at);
        let min_id = after_id
            .map_or(i64::MIN, |id| id.saturating_add(1))
            .max(since_id);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e \
             WHERE e.account_id = $1 AND e.id >= $2 AND e.timestamp_ms >= $3{} \
             ORDER BY e.id LIMIT $4",
            kind_filter(kinds, 5)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(min_id)
            .bind(since_ms.unwrap_or(i64::MIN))
            .bind(i64::from(limit.min(MAX_EVENTS_PAGE)));
        for kind in kinds {
            query = query.bind(kind.as_str());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| EventRecord::from_row(row, &account))
            .collect()
    }

    /// How many of an account's events of each of `kinds` happened at or
    /// after `since_ms` (kinds with none are absent). A range scan of the
    /// account's events on the id key: for checks and reports, not for the
    /// hot path.
    pub async fn count_events_since(
        &self,
        account_id: i64,
        since_ms: i64,
        kinds: &[EventKind],
    ) -> Result<Vec<(EventKind, u64)>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let since_id = first_id_at(since_ms);
        let placeholders: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT kind, COUNT(*) AS n FROM events \
             WHERE account_id = $1 AND id >= $2 AND timestamp_ms >= $3 AND kind IN ({}) \
             GROUP BY kind",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(since_id)
            .bind(since_ms);
        for kind in kinds {
            query = query.bind(kind.as_str());
        }
        let mut counts = Vec::new();
        for row in query.fetch_all(&self.pool).await? {
            let kind: String = row.try_get("kind")?;
            let n: i64 = row.try_get("n")?;
            if let Ok(kind) = kind.parse::<EventKind>() {
                counts.push((kind, u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{T0, message_id, new_event, new_message, record, temp_store};

    #[test]
    fn kinds_round_trip_through_names_and_serde() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(
                serde_json::from_str::<EventKind>(&json).expect("back"),
                kind
            );
        }
        let error = "Delivered".parse::<EventKind>().expect_err("case matters");
        assert_eq!(error.to_string(), "unknown event type \"Delivered\"");
    }

    #[test]
    fn state_changing_kinds_map_to_known_states() {
        for kind in EventKind::ALL {
            if let Some(state) = kind.recipient_state() {
                assert!(RECIPIENT_STATES.contains(&state), "{kind}: {state}");
            }
        }
        assert_eq!(EventKind::Received.recipient_state(), Some("queued"));
        assert_eq!(EventKind::Opened.recipient_state(), None);
    }

    #[tokio::test]
    async fn counts_since_a_time_per_kind_for_one_account() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let other = store.create_account("other").await.expect("account");
        let id = message_id(T0, 1);
        let day = 24 * 3600 * 1000;
        let events = [
            new_event(
                acme.id,
                &id,
                Some("a@x.test"),
                EventKind::Delivered,
                T0 - 2 * day,
            ),
            new_event(acme.id, &id, Some("a@x.test"), EventKind::Delivered, T0),
            new_event(acme.id, &id, Some("b@x.test"), EventKind::Delivered, T0 + 1),
            new_event(acme.id, &id, Some("c@x.test"), EventKind::Delivered, T0 + 2),
            new_event(
                acme.id,
                &id,
                Some("c@x.test"),
                EventKind::Complained,
                T0 + 3,
            ),
            new_event(acme.id, &id, Some("c@x.test"), EventKind::Opened, T0 + 4),
            new_event(
                other.id,
                &id,
                Some("d@x.test"),
                EventKind::Complained,
                T0 + 5,
            ),
        ];
        record(&store, &[], &events).await;
        let mut counts = store
            .count_events_since(acme.id, T0, &[EventKind::Delivered, EventKind::Complained])
            .await
            .expect("counts");
        counts.sort_by_key(|(kind, _)| kind.as_str());
        assert_eq!(
            counts,
            [(EventKind::Complained, 1), (EventKind::Delivered, 3)]
        );
        assert!(
            store
                .count_events_since(acme.id, T0, &[])
                .await
                .expect("none asked")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn events_page_by_id_and_filter_by_time_and_kind() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let id = message_id(T0, 1);
        record(
            &store,
            &[new_message(acme.id, &id, T0, &["r@x.test"], &[])],
            &[],
        )
        .await;
        let kinds = [
            EventKind::Received,
            EventKind::Deferred,
            EventKind::Deferred,
            EventKind::Delivered,
        ];
        for (i, kind) in (0i64..).zip(kinds) {
            // One batch each: ids grow with commits.
            record(
                &store,
                &[],
                &[new_event(
                    acme.id,
                    &id,
                    Some("r@x.test"),
                    kind,
                    T0 + i * 1000,
                )],
            )
            .await;
        }
        let all = store
            .events(acme.id, None, &[], None, 100)
            .await
            .expect("events");
        assert_eq!(all.iter().map(|e| e.kind).collect::<Vec<_>>(), kinds);
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .events(acme.id, None, &[], after, 3)
                .await
                .expect("page");
            after = page.last().map(|e| e.id).or(after);
            let done = page.len() < 3;
            paged.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(paged, all);
        let since = store
            .events(acme.id, Some(T0 + 1000), &[], None, 100)
            .await
            .expect("since");
        assert_eq!(since, all[1..]);
        let deferred = store
            .events(
                acme.id,
                None,
                &[EventKind::Deferred, EventKind::Bounced],
                None,
                100,
            )
            .await
            .expect("kinds");
        assert_eq!(deferred, all[1..3]);
        let later = store
            .events(
                acme.id,
                Some(T0 + 2000),
                &[EventKind::Deferred],
                Some(all[0].id),
                100,
            )
            .await
            .expect("combined");
        assert_eq!(later, all[2..3]);
        // A timestamp long before the commit (a backlog) is still found by time.
        let old = new_event(acme.id, &id, None, EventKind::Opened, T0 - 86_400_000);
        record(&store, &[], &[old]).await;
        let found = store
            .events(
                acme.id,
                Some(T0 - 86_400_000),
                &[EventKind::Opened],
                None,
                10,
            )
            .await;
        assert_eq!(found.expect("old").len(), 1);
    }
}
