//! Message records: one per accepted message (SMTP or HTTP API), with a state
//! per recipient that the event writer keeps current, read back per account.
//!
//! Records are written only by [`EventWriter`](crate::EventWriter) through
//! [`Store::record_batch`]; this module defines them and answers lookups and
//! searches. Every read is scoped to an account: another account's message
//! looks exactly like a missing one. Of a message's content it keeps only
//! the header section (its first [`MAX_STORED_HEADERS`] bytes), never the
//! body.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::backend::Sql;
use crate::error::{StoreError, UnknownValue};
use crate::events::{EventRecord, account_name, parse_json};
use crate::store::Store;

/// How the message came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageSource {
    /// Over SMTP (relay, submission).
    Smtp,
    /// Through the HTTP API.
    Api,
}

impl MessageSource {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageSource::Smtp => "smtp",
            MessageSource::Api => "api",
        }
    }
}

impl fmt::Display for MessageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageSource {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<MessageSource, UnknownValue> {
        match s {
            "smtp" => Ok(MessageSource::Smtp),
            "api" => Ok(MessageSource::Api),
            other => Err(UnknownValue {
                what: "message source",
                value: other.to_owned(),
            }),
        }
    }
}

/// A message to record, when it is accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// Its `MessageId` text: 26 characters that sort by creation time. Time
    /// filters and pages rely on that order, so the id's time should be the
    /// acceptance time (within a minute).
    pub id: String,
    /// The owning account.
    pub account_id: i64,
    /// The envelope sender (empty for the null sender).
    pub sender: String,
    /// The envelope recipients, in order: each starts `queued`.
    pub recipients: Vec<String>,
    /// The Subject header, decoded, if any.
    pub subject: Option<String>,
    /// The Message-ID header, if any.
    pub header_message_id: Option<String>,
    /// Tags given at submission.
    pub tags: Vec<String>,
    /// The sending domain statistics count it under: the DKIM domain when
    /// signed, else the `From:` domain. `None`: the envelope sender's domain.
    pub sending_domain: Option<String>,
    /// Metadata given at submission: an object, or `Null` for none.
    pub metadata: serde_json::Value,
    /// How it came in.
    pub source: MessageSource,
    /// Size in bytes as spooled.
    pub size: u64,
    /// When it was accepted, unix milliseconds.
    pub received_at_ms: i64,
    /// Its header section as queued; `None` when not known (a record
    /// rebuilt without the message at hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<MessageHeaders>,
}

/// How much of a message's header section is kept: enough for every field a
/// person looks at (a section this long is rare; `Received:` chains and DKIM
/// signatures take a few KiB).
pub const MAX_STORED_HEADERS: usize = 16 * 1024;

/// A message's header section as it was queued (with Carteiro's own fields
/// and its DKIM signature), as much of it as is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageHeaders {
    /// The section's lines (CRLF as received) without the empty line ending
    /// it, cut after the last whole line within [`MAX_STORED_HEADERS`]
    /// bytes. Bytes that are not UTF-8, and NULs, read as U+FFFD.
    pub text: String,
    /// The whole section's length in bytes (without its empty line).
    pub size: u64,
}

impl MessageHeaders {
    /// What is kept of `section`, a message's header section (up to and
    /// including the empty line that ends it, if any).
    pub fn from_section(section: &[u8]) -> MessageHeaders {
        let section = section
            .strip_suffix(b"\r\n\r\n")
            .map(|s| &section[..s.len() + 2])
            .or_else(|| {
                section
                    .strip_suffix(b"\n\n")
                    .map(|s| &section[..s.len() + 1])
            })
            .unwrap_or(section);
        let kept = if section.len() > MAX_STORED_HEADERS {
            let head = &section[..MAX_STORED_HEADERS];
            head.iter()
                .rposition(|&b| b == b'\n')
                .map_or(head, |end| &head[..=end])
        } else {
            section
        };
        let text = String::from_utf8_lossy(kept);
        let text = if text.contains('\0') {
            text.replace('\0', "\u{fffd}")
        } else {
            text.into_owned()
        };
        MessageHeaders {
            text,
            size: section.len() as u64,
        }
    }

    /// Whether the section was longer than what is kept.
    pub fn truncated(&self) -> bool {
        self.size > MAX_STORED_HEADERS as u64
    }
}

/// One recipient of a recorded message, with its current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientRecord {
    /// `<message id>-<index>`, the index counting envelope recipients from 0.
    pub id: String,
    /// The address as given in the envelope.
    pub address: String,
    /// One of [`RECIPIENT_STATES`](crate::RECIPIENT_STATES).
    pub state: String,
    /// When the state last changed (the event's time), unix milliseconds.
    pub updated_at_ms: i64,
}

/// One recipient of a message found by its id alone
/// ([`Store::message_recipient`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecipient {
    /// The account owning the message.
    pub account_id: i64,
    /// The address as given in the envelope.
    pub address: String,
    /// When it was delivered, unix milliseconds: the time of its `delivered`
    /// event while that is its state; `None` before delivery or after a
    /// later state (an asynchronous bounce).
    pub delivered_at_ms: Option<i64>,
}

/// A recorded message.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    /// The message id.
    pub id: String,
    /// The owning account's name.
    pub account: String,
    /// The envelope sender.
    pub sender: String,
    /// Recipients in envelope order.
    pub recipients: Vec<RecipientRecord>,
    /// The Subject header, if any.
    pub subject: Option<String>,
    /// The Message-ID header, if any.
    pub header_message_id: Option<String>,
    /// Tags given at submission.
    pub tags: Vec<String>,
    /// Metadata given at submission, `Null` for none.
    pub metadata: serde_json::Value,
    /// How it came in.
    pub source: MessageSource,
    /// Size in bytes.
    pub size: u64,
    /// When it was accepted, unix milliseconds.
    pub received_at_ms: i64,
    /// Its events in order ([`Store::message`]); empty in search results.
    pub events: Vec<EventRecord>,
    /// Its header section ([`Store::message`], when kept); `None` in search
    /// results.
    pub headers: Option<MessageHeaders>,
}

/// What [`Store::search_messages`] looks for; every given field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// A recipient address (whole address, ASCII case-insensitive).
    pub recipient: Option<String>,
    /// The envelope sender (whole address, ASCII case-insensitive).
    pub sender: Option<String>,
    /// A recipient state: matches messages with any recipient in it.
    pub status: Option<String>,
    /// A tag (exact).
    pub tag: Option<String>,
    /// Text the Subject holds (case-insensitive for ASCII). Not indexed: the
    /// scan runs newest first through the account's messages (narrowed by the
    /// other filters) until a page is full.
    pub subject: Option<String>,
    /// The Message-ID header, with or without its angle brackets.
    pub header_message_id: Option<String>,
    /// Accepted at or after this time, unix milliseconds.
    pub since_ms: Option<i64>,
    /// Accepted before this time, unix milliseconds.
    pub until_ms: Option<i64>,
}

/// Most messages one search returns.
pub const MAX_MESSAGES_PAGE: u32 = 1000;

/// How far a message's `received_at_ms` may lie from its id's time and still
/// be found by a time filter (the id range narrows the scan; the exact filter
/// is on `received_at_ms`).
const ID_TIME_SLACK_MS: i64 = 60 * 1000;

/// The columns [`MessageRecord::from_row`] reads, on a table aliased `m`.
const MESSAGE_COLUMNS: &str = "m.id, m.sender, m.subject, m.header_message_id, m.tags, \
                               m.metadata, m.source, m.size, m.received_at_ms";

/// A message's events in order. The ids come from a subquery so that SQLite
/// finds them with the `events_message` index: asked directly, its planner
/// (without statistics, which think an account has ten events) prefers
/// walking the whole account in id order to avoid a sort.
const MESSAGE_EVENTS_SQL: &str = "SELECT e.id, e.kind, e.timestamp_ms, e.message_id, e.recipient, \
     e.details FROM events e WHERE e.account_id = $1 AND e.id IN \
     (SELECT x.id FROM events x WHERE x.account_id = $1 AND x.message_id = $2) ORDER BY e.id";

impl MessageRecord {
    /// Reads a `messages` row; recipients and events are added by the caller.
    fn from_row(row: &AnyRow, account: &str) -> Result<MessageRecord, StoreError> {
        let tags: String = row.try_get("tags")?;
        let metadata: Option<String> = row.try_get("metadata")?;
        let tags = serde_json::from_str(&tags)
            .map_err(|error| StoreError::Corrupt(format!("bad tags in the database: {error}")))?;
        Ok(MessageRecord {
            id: row.try_get("id")?,
            account: account.to_owned(),
            sender: row.try_get("sender")?,
            recipients: Vec::new(),
            subject: row.try_get("subject")?,
            header_message_id: row.try_get("header_message_id")?,
            tags,
            metadata: metadata
                .as_deref()
                .map_or(Ok(serde_json::Value::Null), parse_json)?,
            source: row.try_get::<String, _>("source")?.parse()?,
            size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
            received_at_ms: row.try_get("received_at_ms")?,
            events: Vec::new(),
            headers: None,
        })
    }
}

/// Reads a `message_recipients` row of `message_id`.
fn recipient_from_row(row: &AnyRow, message_id: &str) -> Result<RecipientRecord, StoreError> {
    let idx: i64 = row.try_get("idx")?;
    Ok(RecipientRecord {
        id: format!("{message_id}-{idx}"),
        address: row.try_get("address")?,
        state: row.try_get("state")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// The smallest id a message created at `ms` can have: ids start with 48 bits
/// of milliseconds, so this bounds a time range on the `(account_id, id)` key.
fn id_bound(ms: i64) -> String {
    let ms = u128::try_from(ms.max(0)).unwrap_or(0).min((1 << 48) - 1);
    carteiro_mail::MessageId(ms << 80).to_string()
}

impl Store {
    /// One of the account's messages, with its recipients and its events in
    /// order; `None` when the account has no message with this id.
    pub async fn message(
        &self,
        account_id: i64,
        id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let Some(account) = account_name(self, account_id).await? else {
            return Ok(None);
        };
        // One read transaction: the record, its recipients' states and its
        // events from the same snapshot, so a state never lags an event
        // committed between two of the reads.
        let mut read = self.begin_snapshot().await?;
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.account_id = $1 AND m.id = $2"
        )))
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *read)
        .await?
        else {
            return Ok(None);
        };
        let mut message = MessageRecord::from_row(&row, &account)?;
        message.recipients = sqlx::query(
            "SELECT idx, address, state, updated_at_ms FROM message_recipients \
             WHERE account_id = $1 AND message_id = $2 ORDER BY idx",
        )
        .bind(account_id)
        .bind(id)
        .fetch_all(&mut *read)
        .await?
        .iter()
        .map(|row| recipient_from_row(row, id))
        .collect::<Result<_, _>>()?;
        message.events = sqlx::query(sqlx::AssertSqlSafe(MESSAGE_EVENTS_SQL.to_owned()))
            .bind(account_id)
            .bind(id)
            .fetch_all(&mut *read)
            .await?
            .iter()
            .map(|row| EventRecord::from_row(row, &account))
            .collect::<Result<_, _>>()?;
        message.headers = sqlx::query(
            "SELECT headers, size FROM message_headers WHERE account_id = $1 AND message_id = $2",
        )
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *read)
        .await?
        .map(|row| -> Result<MessageHeaders, StoreError> {
            Ok(MessageHeaders {
                text: row.try_get("headers")?,
                size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
            })
        })
        .transpose()?;
        read.commit().await?;
        Ok(Some(message))
    }

    /// The account's messages matching `filter`, newest first (by id), at
    /// most `limit` (capped at [`MAX_MESSAGES_PAGE`]). `before` is the cursor:
    /// the last id of the previous page. Results carry recipients but no
    /// events.
    ///
    /// The scan follows an index chosen by the filter: the recipient's if one
    /// is given, else the tag's, else the account's messages by id (which a
    /// time range narrows).
    pub async fn search_messages(
        &self,
        account_id: i64,
        filter: &MessageFilter,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let Some(account) = account_name(self, account_id).await? else {
            return Ok(Vec::new());
        };
        let search = build_search(account_id, filter, before, limit);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(search.sql));
        for value in search.binds {
            query = match value {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        let mut messages = query
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| MessageRecord::from_row(row, &account))
            .collect::<Result<Vec<_>, _>>()?;
        self.attach_recipients(account_id, &mut messages).await?;
        Ok(messages)
    }

    /// Fills in the recipients of a page of messages with one query.
    async fn attach_recipients(
        &self,
        account_id: i64,
        messages: &mut [MessageRecord],
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> =
            (0..messages.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT message_id, idx, address, state, updated_at_ms FROM message_recipients \
             WHERE account_id = $1 AND message_id IN ({}) ORDER BY message_id, idx",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id);
        for message in messages.iter() {
            query = query.bind(message.id.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let position: std::collections::HashMap<String, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        for row in &rows {
            let message_id: String = row.try_get("message_id")?;
            if let Some(&i) = position.get(&message_id) {
                messages[i]
                    .recipients
                    .push(recipient_from_row(row, &message_id)?);
            }
        }
        Ok(())
    }

    /// The account owning message `id` and its recipient at envelope
    /// position `idx`, whatever the account: for reports (bounces,
    /// unsubscribes, opens, clicks) that name a message by a token carrying
    /// only its id. One keyed read, which also tells when the recipient was
    /// delivered (its state row has the time).
    pub async fn message_recipient(
        &self,
        id: &str,
        idx: u16,
    ) -> Result<Option<MessageRecipient>, StoreError> {
        let row = sqlx::query(
            "SELECT r.account_id, r.address, \
             CASE WHEN r.state = 'delivered' THEN r.updated_at_ms END AS delivered_at_ms \
             FROM messages m \
             JOIN message_recipients r ON r.account_id = m.account_id AND r.message_id = m.id \
             WHERE m.id = $1 AND r.idx = $2",
        )
        .bind(id)
        .bind(i64::from(idx))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(MessageRecipient {
                account_id: row.try_get("account_id")?,
                address: row.try_get("address")?,
                delivered_at_ms: row.try_get("delivered_at_ms")?,
            })
        })
        .transpose()
    }

    /// The account owning message `id` and all its recipients in envelope
    /// order, whatever the account; `None` when no message has this id.
    pub async fn message_recipients(
        &self,
        id: &str,
    ) -> Result<Option<(i64, Vec<String>)>, StoreError> {
        let Some(account_id) =
            sqlx::query_scalar::<_, i64>("SELECT account_id FROM messages WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let recipients = sqlx::query_scalar::<_, String>(
            "SELECT address FROM message_recipients \
             WHERE account_id = $1 AND message_id = $2 ORDER BY idx",
        )
        .bind(account_id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((account_id, recipients)))
    }

    /// When the newest message record (by id, which sorts by creation
    /// time) was accepted, unix milliseconds; `None` without records.
    pub async fn newest_message_received_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT received_at_ms FROM messages ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Those of `ids` (messages of `account_id`) whose `received` event is
    /// recorded: the others were lost before the event writer committed
    /// them, and are rebuilt from the spool at start.
    pub async fn received_recorded(
        &self,
        account_id: i64,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let ids = serde_json::to_string(ids).expect("strings serialize");
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(|b| {
                format!(
                    "SELECT DISTINCT message_id FROM events \
                     WHERE account_id = $1 AND kind = 'received' \
                     AND message_id IN (SELECT v.value FROM {})",
                    b.json_strings(2)
                )
            })
        });
        let found = sqlx::query_scalar::<_, String>(SQL.get(self.backend))
            .bind(account_id)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(found.into_iter().collect())
    }
}

/// A bound value of a search query.
#[derive(Debug, PartialEq)]
enum Bind {
    Int(i64),
    Text(String),
}

/// A search query: its text and its values, the account id bound last.
#[derive(Debug)]
struct Search {
    sql: String,
    binds: Vec<Bind>,
}

/// Builds the search query. `$1`.. number the values in `binds`; the account
/// id comes after them, and every table of the query is constrained by it.
/// A `LIKE` pattern matching any text that contains `text`, with `%`, `_`
/// and the escape character itself escaped.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The two forms a `Message-ID` header is stored in (with and without its
/// angle brackets), bound; their placeholders.
fn header_binds(header_id: &str, bind: &mut impl FnMut(Bind) -> String) -> (String, String) {
    let bare = header_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    (
        bind(Bind::Text(bare.to_owned())),
        bind(Bind::Text(format!("<{bare}>"))),
    )
}

fn build_search(
    account_id: i64,
    filter: &MessageFilter,
    before: Option<&str>,
    limit: u32,
) -> Search {
    let mut binds: Vec<Bind> = Vec::new();
    let mut bind = |value: Bind| {
        binds.push(value);
        format!("${}", binds.len())
    };
    // The driving table, its alias, and its column that orders it by
    // message id.
    let recipient = filter.recipient.as_ref().map(|r| r.to_ascii_lowercase());
    let (from, alias, mut clauses, key) = if let Some(recipient) = &recipient {
        let p = bind(Bind::Text(recipient.clone()));
        // The NOT EXISTS keeps one row per message when an envelope names the
        // same address twice, without a GROUP BY that would defeat the index
        // order.
        (
            "message_recipients r CROSS JOIN messages m",
            "r",
            vec![
                format!("lower(r.address) = {p}"),
                "m.account_id = r.account_id AND m.id = r.message_id".to_owned(),
                "NOT EXISTS (SELECT 1 FROM message_recipients d \
                 WHERE d.account_id = r.account_id AND d.message_id = r.message_id \
                 AND d.idx < r.idx AND lower(d.address) = lower(r.address))"
                    .to_owned(),
            ],
            "r.message_id",
        )
    } else if let Some(tag) = &filter.tag {
        let p = bind(Bind::Text(tag.clone()));
        (
            "message_tags t CROSS JOIN messages m",
            "t",
            vec![
                format!("t.tag = {p}"),
                "m.account_id = t.account_id AND m.id = t.message_id".to_owned(),
            ],
            "t.message_id",
        )
    } else {
        ("messages m", "m", Vec::new(), "m.id")
    };
    if recipient.is_some()
        && let Some(tag) = &filter.tag
    {
        let p = bind(Bind::Text(tag.clone()));
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM message_tags g \
             WHERE g.account_id = m.account_id AND g.tag = {p} AND g.message_id = m.id)"
        ));
    }
    if let Some(sender) = &filter.sender {
        let p = bind(Bind::Text(sender.to_ascii_lowercase()));
        clauses.push(format!("lower(m.sender) = {p}"));
    }
    if let Some(subject) = &filter.subject {
        let p = bind(Bind::Text(like_pattern(&subject.to_ascii_lowercase())));
        clauses.push(format!("lower(m.subject) LIKE {p} ESCAPE '\\'"));
    }
    if let Some(header_id) = &filter.header_message_id {
        // The ids from the header's index (migration 0013) as a list: with a
        // plain filter on the column, SQLite walked the account's messages
        // in id order testing each one; correlated, PostgreSQL did.
        let (p, q) = header_binds(header_id, &mut bind);
        let a = bind(Bind::Int(account_id));
        clauses.push(format!(
            "m.id IN (SELECT h.id FROM messages h \
             WHERE h.account_id = {a} AND h.header_message_id IN ({p}, {q}))"
        ));
    }
    if let Some(status) = &filter.status {
        let p = bind(Bind::Text(status.clone()));
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM message_recipients s \
             WHERE s.account_id = m.account_id AND s.message_id = m.id AND s.state = {p})"
        ));
    }
    if let Some(since) = filter.since_ms {
        let p = bind(Bind::Text(id_bound(since.saturating_sub(ID_TIME_SLACK_MS))));
        clauses.push(format!("{key} >= {p}"));
        let p = bind(Bind::Int(since));
        clauses.push(format!("m.received_at_ms >= {p}"));
    }
    // The upper bound on the key: the cursor, or the end of the time range
    // (with slack), whichever is lower.
    let until_bound = filter
        .until_ms
        .map(|until| id_bound(until.saturating_add(ID_TIME_SLACK_MS)));
    let upper = match (before, until_bound) {
        (Some(before), Some(until)) => Some(until.min(before.to_owned())),
        (Some(before), None) => Some(before.to_owned()),
        (None, until) => until,
    };
    if let Some(upper) = upper {
        let p = bind(Bind::Text(upper));
        clauses.push(format!("{key} < {p}"));
    }
    if let Some(until) = filter.until_ms {
        let p = bind(Bind::Int(until));
        clauses.push(format!("m.received_at_ms < {p}"));
    }
    let limit = bind(Bind::Int(i64::from(limit.min(MAX_MESSAGES_PAGE))));
    let account = format!("${}", binds.len() + 1);
    let mut sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM {from} WHERE {alias}.account_id = {account}");
    for clause in &clauses {
        sql.push_str(" AND ");
        sql.push_str(clause);
    }
    sql.push_str(&format!(" ORDER BY {key} DESC LIMIT {limit}"));
    Search { sql, binds }
}

#[cfg(test)]
mod tests;
