//! Writing one batch of message records and events in one transaction, the
//! unit of work of the [`EventWriter`](crate::EventWriter).
//!
//! Each table's rows go in as one JSON array bound to one statement that
//! unpacks it (`jsonb_each` on SQLite, `json_array_elements` on PostgreSQL,
//! built by [`Backend`]): a fixed handful of statements per batch,
//! whatever its size, each prepared once per connection. One statement per
//! row cost several times more (every statement is a round trip to sqlx's
//! SQLite thread, about 30 µs of CPU on the 2-core test machine); multi-row
//! VALUES lists cost about the same as this but need a statement text per
//! chunk size, and `$N` parameters by the thousand bind in quadratic time
//! (sqlx looks each name up, a linear search in SQLite).
//!
//! Recipient states are applied here: an event for a message of the same batch
//! changes the recipient row before it is inserted (a message delivered at
//! once costs no UPDATE); the others become one UPDATE. An older event never
//! overwrites a newer state. The statistics rollups are updated in the same
//! transaction (`stats/rollup.rs`). This module does not batch or retry; the
//! writer does.

use std::collections::HashMap;

use std::sync::LazyLock;

use serde::Serialize;
use sqlx::AnyConnection;

use crate::backend::{Backend, Sql};
use crate::error::StoreError;
use crate::events::{EVENT_IDS_PER_MS, NewEvent, RECIPIENT_STATES};
use crate::messages::NewMessage;
use crate::stats::{self, StatsMemory};
use crate::store::{Store, now_unix_ms};

/// Sets the state of every recipient of a message, except those a newer
/// event set already. For events naming no recipient, which are rare.
pub(crate) const WHOLE_MESSAGE_STATE_SQL: &str = "UPDATE message_recipients \
     SET state = $3, updated_at_ms = $4 \
     WHERE account_id = $1 AND message_id = $2 AND updated_at_ms <= $4";

/// A recipient's state and when it was set, before insertion.
type Staged = (&'static str, i64);

/// A state change for a recipient recorded in an earlier batch.
struct StateChange<'a> {
    event: &'a NewEvent,
    state: &'static str,
}

impl Store {
    /// Writes messages and events in one transaction, in order. A message
    /// already recorded (same account and id) is left as it is.
    ///
    /// Events should come after their message's record (in this batch or an
    /// earlier one): a state change for a message not recorded yet is logged in
    /// the event log but changes no recipient state.
    pub async fn record_batch(
        &self,
        messages: &[NewMessage],
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await?;
        // No memory of earlier batches: the rollups look messages up.
        let mut memory = StatsMemory::default();
        write_batch(&mut connection, &mut memory, messages, events).await
    }
}

/// [`Store::record_batch`] on a given connection (the writer keeps its own,
/// and its memory of recent messages for the statistics).
pub(crate) async fn write_batch(
    connection: &mut AnyConnection,
    memory: &mut StatsMemory,
    messages: &[NewMessage],
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if messages.is_empty() && events.is_empty() {
        return Ok(());
    }
    let (staged, updates) = stage_states(messages, events);
    let mut tx = match Backend::of(connection) {
        // IMMEDIATE: take the write lock now (waiting up to the busy timeout)
        // rather than at the first write.
        Backend::Sqlite => sqlx::Connection::begin_with(connection, "BEGIN IMMEDIATE").await?,
        Backend::Postgres => {
            let mut tx = sqlx::Connection::begin(connection).await?;
            sqlx::query(LOCK_EVENT_IDS_SQL).execute(&mut *tx).await?;
            tx
        }
    };
    insert_messages(&mut tx, messages, &staged).await?;
    insert_events(&mut tx, events).await?;
    update_states(&mut tx, &updates).await?;
    stats::record(&mut tx, memory, messages, events).await?;
    tx.commit().await?;
    Ok(())
}

/// Works out the initial recipient states of the batch's messages, applying
/// the batch's events for them; returns those and the state changes left for
/// messages recorded earlier, at most one per recipient (the newest).
fn stage_states<'a>(
    messages: &[NewMessage],
    events: &'a [NewEvent],
) -> (Vec<Vec<Staged>>, Vec<StateChange<'a>>) {
    let mut staged: Vec<Vec<Staged>> = messages
        .iter()
        .map(|m| vec![(RECIPIENT_STATES[0], m.received_at_ms); m.recipients.len()])
        .collect();
    let position: HashMap<(i64, &str), usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.account_id, m.id.as_str()), i))
        .collect();
    let mut updates: Vec<StateChange<'a>> = Vec::new();
    // Where the newest change of (account, message, recipient) sits in
    // `updates`: one UPDATE ... FROM must not name a row twice.
    let mut latest: HashMap<(i64, &str, Option<String>), usize> = HashMap::new();
    for event in events {
        let Some(state) = event.kind.recipient_state() else {
            continue;
        };
        let Some(&i) = position.get(&(event.account_id, event.message_id.as_str())) else {
            let recipient = event.recipient.as_ref().map(|r| r.to_ascii_lowercase());
            let key = (event.account_id, event.message_id.as_str(), recipient);
            let change = StateChange { event, state };
            match latest.get(&key) {
                Some(&at) if updates[at].event.timestamp_ms > event.timestamp_ms => {}
                Some(&at) => updates[at] = change,
                None => {
                    latest.insert(key, updates.len());
                    updates.push(change);
                }
            }
            continue;
        };
        for (address, slot) in messages[i].recipients.iter().zip(&mut staged[i]) {
            let concerned = event
                .recipient
                .as_ref()
                .is_none_or(|r| r.eq_ignore_ascii_case(address));
            if concerned && slot.1 <= event.timestamp_ms {
                *slot = (state, event.timestamp_ms);
            }
        }
    }
    (staged, updates)
}

/// Inserts messages from a JSON array of `[account_id, id, sender, subject,
/// header_message_id, tags, metadata, source, size, received_at_ms,
/// sending_domain]`. A
/// message recorded already (a replay after a crash) keeps its row: one
/// duplicate must not fail the whole batch. (`WHERE true` keeps SQLite from
/// reading ON CONFLICT as a join constraint.)
static INSERT_MESSAGES_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "INSERT INTO messages (account_id, id, sender, subject, \
             header_message_id, tags, metadata, source, size, received_at_ms, sending_domain) \
             SELECT {}, {}, {}, {}, {}, {}, nullif({}, 'null'), {}, {}, {}, {} \
             FROM {} WHERE true ON CONFLICT DO NOTHING",
            b.int(0),
            b.text(1),
            b.text(2),
            b.text(3),
            b.text(4),
            b.json(5),
            b.json(6),
            b.text(7),
            b.int(8),
            b.int(9),
            b.text(10),
            b.json_rows(1)
        )
    })
});

/// Inserts recipients from `[account_id, message_id, idx, address, state,
/// updated_at_ms]` rows.
static INSERT_RECIPIENTS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "INSERT INTO message_recipients \
             (account_id, message_id, idx, address, state, updated_at_ms) \
             SELECT {}, {}, {}, {}, {}, {} FROM {} WHERE true ON CONFLICT DO NOTHING",
            b.int(0),
            b.text(1),
            b.int(2),
            b.text(3),
            b.text(4),
            b.int(5),
            b.json_rows(1)
        )
    })
});

/// Inserts header sections from `[account_id, message_id, headers, size]`
/// rows.
static INSERT_HEADERS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "INSERT INTO message_headers (account_id, message_id, headers, size) \
             SELECT {}, {}, {}, {} FROM {} WHERE true ON CONFLICT DO NOTHING",
            b.int(0),
            b.text(1),
            b.text(2),
            b.int(3),
            b.json_rows(1)
        )
    })
});

/// Inserts tags from `[account_id, tag, message_id]` rows.
static INSERT_TAGS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "INSERT INTO message_tags (account_id, tag, message_id) \
             SELECT {}, {}, {} FROM {} WHERE true ON CONFLICT DO NOTHING",
            b.int(0),
            b.text(1),
            b.text(2),
            b.json_rows(1)
        )
    })
});

/// Reserves `$2` event ids, at least 1024 times now (`$1`) in milliseconds;
/// returns the last one.
const RESERVE_EVENT_IDS_SQL: &str = "UPDATE counters \
     SET value = CASE WHEN value > $1 THEN value ELSE $1 END + $2 \
     WHERE name = 'event_id' RETURNING value";

/// Takes the `event_id` counter's row lock on PostgreSQL, first thing in a
/// batch: batches of several nodes then commit one after another, in the
/// order of their event ids (a webhook cursor never passes an id that
/// commits later), and their statistics upserts cannot deadlock.
const LOCK_EVENT_IDS_SQL: &str = "SELECT value FROM counters WHERE name = 'event_id' FOR UPDATE";

/// Inserts events from `[account_id, message_id, recipient, kind,
/// timestamp_ms, details]` rows, numbered from `$2` in array order.
static INSERT_EVENTS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "INSERT INTO events \
             (account_id, id, message_id, recipient, kind, timestamp_ms, details) \
             SELECT {}, $2 + v.key, {}, {}, {}, {}, {} FROM {}",
            b.int(0),
            b.text(1),
            b.text(2),
            b.text(3),
            b.int(4),
            b.json(5),
            b.json_rows_numbered(1)
        )
    })
});

/// Sets recipient states from `[account_id, message_id, lowercase address,
/// state, updated_at_ms]` rows, each unless a newer event set it already.
/// No two rows may name the same recipient.
///
/// The subquery finds the target rows' full keys with the JSON rows as the
/// outer loop (CROSS JOIN fixes the order in SQLite): written as a plain
/// UPDATE ... FROM, SQLite's planner (without statistics) scans the whole
/// recipients table instead.
pub(crate) static UPDATE_STATES_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "UPDATE message_recipients \
             SET state = x.state, updated_at_ms = x.updated_at_ms \
             FROM (SELECT r.account_id, r.message_id, r.idx, {state} AS state, \
             {at} AS updated_at_ms FROM {rows} CROSS JOIN message_recipients r \
             WHERE r.account_id = {account} AND r.message_id = {message} \
             AND lower(r.address) = {address} AND r.updated_at_ms <= {at}) AS x \
             WHERE message_recipients.account_id = x.account_id \
             AND message_recipients.message_id = x.message_id AND message_recipients.idx = x.idx",
            account = b.int(0),
            message = b.text(1),
            address = b.text(2),
            state = b.text(3),
            at = b.int(4),
            rows = b.json_rows(1)
        )
    })
});

/// Runs `sql` with `rows` as its JSON array parameter; nothing when there are
/// no rows.
async fn execute_json<T: Serialize>(
    connection: &mut AnyConnection,
    sql: &'static LazyLock<Sql>,
    rows: &[T],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = sql.get(Backend::of(connection));
    let json = serde_json::to_string(rows)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a batch: {error}")))?;
    sqlx::query(sql)
        .bind(json)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Inserts the messages, their recipients, their tags and their headers.
async fn insert_messages(
    connection: &mut AnyConnection,
    messages: &[NewMessage],
    staged: &[Vec<Staged>],
) -> Result<(), StoreError> {
    let rows: Vec<_> = messages
        .iter()
        .map(|m| {
            (
                m.account_id,
                &m.id,
                &m.sender,
                &m.subject,
                &m.header_message_id,
                &m.tags,
                &m.metadata,
                m.source.as_str(),
                i64::try_from(m.size).unwrap_or(i64::MAX),
                m.received_at_ms,
                &m.sending_domain,
            )
        })
        .collect();
    execute_json(connection, &INSERT_MESSAGES_SQL, &rows).await?;
    let recipients: Vec<_> = messages
        .iter()
        .zip(staged)
        .flat_map(|(m, states)| {
            (0i64..).zip(m.recipients.iter().zip(states)).map(
                move |(idx, (address, (state, at)))| {
                    (m.account_id, &m.id, idx, address, *state, *at)
                },
            )
        })
        .collect();
    execute_json(connection, &INSERT_RECIPIENTS_SQL, &recipients).await?;
    let tags: Vec<_> = messages
        .iter()
        .flat_map(|m| m.tags.iter().map(move |tag| (m.account_id, tag, &m.id)))
        .collect();
    execute_json(connection, &INSERT_TAGS_SQL, &tags).await?;
    let headers: Vec<_> = messages
        .iter()
        .filter_map(|m| {
            let h = m.headers.as_ref()?;
            Some((
                m.account_id,
                &m.id,
                &h.text,
                i64::try_from(h.size).unwrap_or(i64::MAX),
            ))
        })
        .collect();
    execute_json(connection, &INSERT_HEADERS_SQL, &headers).await
}

/// Inserts the events with ids from the `event_id` counter.
async fn insert_events(
    connection: &mut AnyConnection,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let last: i64 = sqlx::query_scalar(RESERVE_EVENT_IDS_SQL)
        .bind(now_unix_ms().saturating_mul(EVENT_IDS_PER_MS))
        .bind(count)
        .fetch_one(&mut *connection)
        .await?;
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.account_id,
                &e.message_id,
                &e.recipient,
                e.kind.as_str(),
                e.timestamp_ms,
                &e.details,
            )
        })
        .collect();
    let json = serde_json::to_string(&rows)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a batch: {error}")))?;
    sqlx::query(INSERT_EVENTS_SQL.get(Backend::of(connection)))
        .bind(json)
        .bind(last - count + 1)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Applies state changes to recipients recorded in earlier batches: those
/// naming a recipient in one UPDATE, the rare ones for a whole message one by
/// one (they may touch the same rows as the others, which one UPDATE ... FROM
/// must not do).
async fn update_states(
    connection: &mut AnyConnection,
    updates: &[StateChange<'_>],
) -> Result<(), StoreError> {
    let (named, whole): (Vec<&StateChange<'_>>, Vec<&StateChange<'_>>) = updates
        .iter()
        .partition(|change| change.event.recipient.is_some());
    let rows: Vec<_> = named
        .iter()
        .map(|c| {
            (
                c.event.account_id,
                &c.event.message_id,
                c.event.recipient.as_ref().map(|r| r.to_ascii_lowercase()),
                c.state,
                c.event.timestamp_ms,
            )
        })
        .collect();
    execute_json(connection, &UPDATE_STATES_SQL, &rows).await?;
    // Whole-message changes last, in event order: a newer per-recipient change
    // already applied is kept by the timestamp guard.
    for change in whole {
        sqlx::query(WHOLE_MESSAGE_STATE_SQL)
            .bind(change.event.account_id)
            .bind(&change.event.message_id)
            .bind(change.state)
            .bind(change.event.timestamp_ms)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
