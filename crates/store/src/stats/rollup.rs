//! Keeping the statistics rollups current as events are written: called by
//! [`write_batch`](crate::event_batch) inside the batch's transaction, it
//! adds up the batch's events in memory per distinct row key and writes one
//! UPSERT per rollup table (a JSON array of the distinct keys), so a batch of
//! a thousand events for one sending domain and hour touches a handful of
//! rows, never one per event.
//!
//! Events carry neither the sending domain nor the tags of their message:
//! [`StatsMemory`] remembers them for the messages the writer saw recently
//! (bounded: the oldest are forgotten first), and the few events of older
//! messages (retries hours later, opens and clicks days later, anything
//! after a restart) cost one indexed query per batch on `messages` by its
//! key. Storing domain and tags on every event row instead would grow the
//! biggest table for the sake of these counts.
//!
//! The provider of an event is the registrable-ish domain of the MX host in
//! its details (`mx`, set by the delivery engine for MX delivery); events
//! without one (received, suppressed, engagement, smarthost routes) use the
//! provider the recipient domain was last delivered to, learned from those
//! MX hosts and kept in `stats_providers`, else the recipient domain itself.
//! So the very first messages to a new domain count their `received` under
//! the domain and their `delivered` under the provider; every later one is
//! consistent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock};

use carteiro_mail::domain_of;
use carteiro_mail::provider::provider_of_host;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{COLUMNS, HOUR_SECONDS, column};
use crate::backend::{Backend, Sql};
use crate::error::StoreError;
use crate::events::{EventKind, NewEvent};
use crate::messages::NewMessage;
use crate::store::now_unix_ms;

/// Messages whose domain and tags the writer keeps in memory: a few seconds
/// of mail at full speed, minutes to hours at ordinary rates (about 150 bytes
/// each).
pub(crate) const MESSAGE_MEMORY: usize = 100_000;

/// Recipient domains whose provider the writer keeps in memory.
pub(crate) const PROVIDER_MEMORY: usize = 100_000;

/// What statistics need to know about a message.
#[derive(Debug, PartialEq)]
struct MessageFacts {
    account_id: i64,
    /// The sending domain, lower case; empty when unknown.
    domain: Arc<str>,
    /// Its distinct, non-empty tags.
    tags: Vec<Arc<str>>,
}

impl MessageFacts {
    fn new(account_id: i64, sending_domain: Option<&str>, sender: &str, tags: &[String]) -> Self {
        let domain = sending_domain
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| domain_of(sender))
            .to_ascii_lowercase();
        let mut distinct: Vec<Arc<str>> = Vec::with_capacity(tags.len());
        for tag in tags {
            if !tag.is_empty() && !distinct.iter().any(|t| **t == **tag) {
                distinct.push(Arc::from(tag.as_str()));
            }
        }
        MessageFacts {
            account_id,
            domain: Arc::from(domain),
            tags: distinct,
        }
    }
}

/// A map that forgets its oldest entries beyond a capacity.
#[derive(Debug)]
struct Bounded<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    capacity: usize,
}

impl<V> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    fn insert(&mut self, key: String, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.map.remove(&oldest);
                }
            }
        }
    }
}

/// What the event writer remembers between batches for the rollups: the
/// facts of recent messages (by message id) and the provider of recipient
/// domains. Only a cache: an empty one gives the same counts, with more
/// queries.
#[derive(Debug)]
pub(crate) struct StatsMemory {
    messages: Bounded<Arc<MessageFacts>>,
    providers: Bounded<Arc<str>>,
}

impl Default for StatsMemory {
    fn default() -> Self {
        StatsMemory::with_capacity(MESSAGE_MEMORY, PROVIDER_MEMORY)
    }
}

impl StatsMemory {
    pub(crate) fn with_capacity(messages: usize, providers: usize) -> Self {
        StatsMemory {
            messages: Bounded::new(messages),
            providers: Bounded::new(providers),
        }
    }

    /// The facts of a message of `account_id`, if remembered. Message ids
    /// are unique, but an event naming another account's message must not
    /// borrow its facts.
    fn message(&self, account_id: i64, id: &str) -> Option<&Arc<MessageFacts>> {
        self.messages
            .get(id)
            .filter(|facts| facts.account_id == account_id)
    }
}

/// The counter columns an event adds one to (positions in [`COLUMNS`]), or
/// none for kinds that are not counted (deleted, held, rejected). A
/// machine's open counts only as one; a person's as an open, and as a
/// unique one when it is the first.
fn columns_of(event: &NewEvent) -> &'static [usize] {
    let unique = event.details.is_unique();
    match event.kind {
        EventKind::Received => &[column::RECEIVED],
        EventKind::Delivered => &[column::DELIVERED],
        EventKind::Deferred => &[column::DEFERRED],
        EventKind::Bounced => &[column::BOUNCED],
        EventKind::Expired => &[column::EXPIRED],
        EventKind::Suppressed => &[column::SUPPRESSED],
        EventKind::Complained => &[column::COMPLAINED],
        EventKind::Opened if event.details.is_machine() => &[column::OPENED_MACHINE],
        EventKind::Opened if unique => &[column::OPENED, column::OPENED_UNIQUE],
        EventKind::Opened => &[column::OPENED],
        EventKind::Clicked if unique => &[column::CLICKED, column::CLICKED_UNIQUE],
        EventKind::Clicked => &[column::CLICKED],
        EventKind::Unsubscribed => &[column::UNSUBSCRIBED],
        EventKind::Deleted | EventKind::Held | EventKind::Rejected | EventKind::Alert => &[],
    }
}

/// The recipient's domain, lower case; empty for an event naming none.
fn recipient_domain(event: &NewEvent) -> String {
    event
        .recipient
        .as_deref()
        .map(|r| domain_of(r).to_ascii_lowercase())
        .unwrap_or_default()
}

/// The MX host a delivery event's details name, if any.
fn mx_of(event: &NewEvent) -> Option<&str> {
    event.details.mx()
}

type Counts = [i64; COLUMNS.len()];

/// A row of `stats_hourly`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct TotalKey {
    account_id: i64,
    tag: Arc<str>,
    hour: i64,
    domain: Arc<str>,
}

/// A row of `stats_hourly_provider`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ProviderKey {
    total: TotalKey,
    provider: Arc<str>,
}

/// A key column of a rollup table: its name and whether it holds integers.
type KeyColumn = (&'static str, bool);

/// `INSERT ... ON CONFLICT DO UPDATE` adding a JSON array of rows `[key
/// columns..., counts...]` to `table`.
fn upsert_sql(b: Backend, table: &str, keys: &[KeyColumn]) -> String {
    let names: Vec<&str> = keys.iter().map(|(name, _)| *name).collect();
    let all: Vec<&str> = names.iter().copied().chain(COLUMNS).collect();
    let values: Vec<String> = keys
        .iter()
        .map(|(_, integer)| *integer)
        .chain(COLUMNS.iter().map(|_| true))
        .enumerate()
        .map(|(i, integer)| if integer { b.int(i) } else { b.text(i) })
        .collect();
    let updates: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {} WHERE true \
         ON CONFLICT ({}) DO UPDATE SET {}",
        all.join(", "),
        values.join(", "),
        b.json_rows(1),
        names.join(", "),
        updates.join(", ")
    )
}

static UPSERT_TOTALS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        upsert_sql(
            b,
            "stats_hourly",
            &[
                ("account_id", true),
                ("tag", false),
                ("hour", true),
                ("domain", false),
            ],
        )
    })
});

static UPSERT_PROVIDERS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        upsert_sql(
            b,
            "stats_hourly_provider",
            &[
                ("account_id", true),
                ("tag", false),
                ("hour", true),
                ("provider", false),
                ("domain", false),
            ],
        )
    })
});

/// The facts of messages from `[account_id, id]` rows.
static MESSAGE_FACTS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "SELECT m.account_id, m.id, m.sending_domain, m.sender, m.tags \
             FROM {} CROSS JOIN messages m WHERE m.account_id = {} AND m.id = {}",
            b.json_rows(1),
            b.int(0),
            b.text(1)
        )
    })
});

/// The learned providers of a JSON array of recipient domains.
static PROVIDERS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "SELECT p.domain, p.provider FROM {} \
             CROSS JOIN stats_providers p WHERE p.domain = v.value",
            b.json_strings(1)
        )
    })
});

/// Records `[domain, provider, at_ms]` rows, changing only what changed.
static LEARN_PROVIDERS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(|b| {
        format!(
            "INSERT INTO stats_providers (domain, provider, updated_at_ms) \
             SELECT {}, {}, {} FROM {} WHERE true \
             ON CONFLICT (domain) DO UPDATE SET provider = excluded.provider, \
             updated_at_ms = excluded.updated_at_ms \
             WHERE stats_providers.provider <> excluded.provider",
            b.text(0),
            b.text(1),
            b.int(2),
            b.json_rows(1)
        )
    })
});

/// Adds the batch's events to the rollups; remembers its messages first.
pub(crate) async fn record(
    connection: &mut AnyConnection,
    memory: &mut StatsMemory,
    messages: &[NewMessage],
    events: &[NewEvent],
) -> Result<(), StoreError> {
    for m in messages {
        let facts = MessageFacts::new(
            m.account_id,
            m.sending_domain.as_deref(),
            &m.sender,
            &m.tags,
        );
        memory.messages.insert(m.id.clone(), Arc::new(facts));
    }
    let counted: Vec<(&NewEvent, &'static [usize])> = events
        .iter()
        .map(|e| (e, columns_of(e)))
        .filter(|(_, columns)| !columns.is_empty())
        .collect();
    if counted.is_empty() {
        return Ok(());
    }
    let facts = message_facts(connection, memory, &counted).await?;
    let providers = providers(connection, memory, &counted).await?;

    let mut totals: HashMap<TotalKey, Counts> = HashMap::new();
    let mut by_provider: HashMap<ProviderKey, Counts> = HashMap::new();
    let unknown = Arc::new(MessageFacts::new(0, Some(""), "", &[]));
    let all_tags: Arc<str> = Arc::from("");
    for ((event, columns), provider) in counted.iter().zip(providers) {
        let message = facts
            .get(&(event.account_id, event.message_id.as_str()))
            .unwrap_or(&unknown);
        let hour = event.timestamp_ms.div_euclid(1000 * HOUR_SECONDS) * HOUR_SECONDS;
        for tag in std::iter::once(&all_tags).chain(&message.tags) {
            let total = TotalKey {
                account_id: event.account_id,
                tag: Arc::clone(tag),
                hour,
                domain: Arc::clone(&message.domain),
            };
            let split = ProviderKey {
                total: total.clone(),
                provider: Arc::clone(&provider),
            };
            let row = totals.entry(total).or_default();
            let provider_row = by_provider.entry(split).or_default();
            for &column in *columns {
                row[column] += 1;
                provider_row[column] += 1;
            }
        }
    }
    let total_rows: Vec<_> = totals
        .iter()
        .map(|(k, c)| (k.account_id, &*k.tag, k.hour, &*k.domain, c))
        .collect();
    execute_upsert(connection, &UPSERT_TOTALS_SQL, &total_rows).await?;
    let provider_rows: Vec<_> = by_provider
        .iter()
        .map(|(k, c)| {
            let t = &k.total;
            (t.account_id, &*t.tag, t.hour, &*k.provider, &*t.domain, c)
        })
        .collect();
    execute_upsert(connection, &UPSERT_PROVIDERS_SQL, &provider_rows).await
}

/// Runs an upsert whose rows are tuples of key columns followed by the
/// counts, flattened into one JSON array per row.
async fn execute_upsert<T: Serialize>(
    connection: &mut AnyConnection,
    sql: &'static LazyLock<Sql>,
    rows: &[T],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let flat: Vec<Vec<serde_json::Value>> = rows
        .iter()
        .map(|row| flatten(serde_json::to_value(row)))
        .collect::<Result<_, _>>()?;
    let json = serde_json::to_string(&flat).map_err(encode_error)?;
    sqlx::query(sql.get(Backend::of(connection)))
        .bind(json)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// `[a, b, [c, d]]` → `[a, b, c, d]`: the counts array joins the key columns.
fn flatten(
    value: Result<serde_json::Value, serde_json::Error>,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let serde_json::Value::Array(items) = value.map_err(encode_error)? else {
        return Err(StoreError::Corrupt("a stats row is not an array".into()));
    };
    let mut out = Vec::with_capacity(items.len() + COLUMNS.len());
    for item in items {
        match item {
            serde_json::Value::Array(inner) => out.extend(inner),
            other => out.push(other),
        }
    }
    Ok(out)
}

fn encode_error(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("cannot encode a stats batch: {error}"))
}

/// The facts of every counted event's message: from memory, the rest with
/// one query (then remembered). Messages not recorded at all count with no
/// domain and no tags.
async fn message_facts<'a>(
    connection: &mut AnyConnection,
    memory: &mut StatsMemory,
    counted: &[(&'a NewEvent, &'static [usize])],
) -> Result<HashMap<(i64, &'a str), Arc<MessageFacts>>, StoreError> {
    let mut found: HashMap<(i64, &'a str), Arc<MessageFacts>> = HashMap::new();
    let mut missing: Vec<(i64, &'a str)> = Vec::new();
    for (event, _) in counted {
        let key = (event.account_id, event.message_id.as_str());
        if found.contains_key(&key) || missing.contains(&key) {
            continue;
        }
        match memory.message(key.0, key.1) {
            Some(facts) => {
                found.insert(key, Arc::clone(facts));
            }
            None => missing.push(key),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let json = serde_json::to_string(&missing).map_err(encode_error)?;
    let rows = sqlx::query(MESSAGE_FACTS_SQL.get(Backend::of(connection)))
        .bind(json)
        .fetch_all(&mut *connection)
        .await?;
    for row in rows {
        let account_id: i64 = row.try_get("account_id")?;
        let id: String = row.try_get("id")?;
        let sending_domain: Option<String> = row.try_get("sending_domain")?;
        let sender: String = row.try_get("sender")?;
        let tags: String = row.try_get("tags")?;
        let tags: Vec<String> = serde_json::from_str(&tags)
            .map_err(|e| StoreError::Corrupt(format!("bad tags of message {id}: {e}")))?;
        let facts = Arc::new(MessageFacts::new(
            account_id,
            sending_domain.as_deref(),
            &sender,
            &tags,
        ));
        if let Some(&key) = missing.iter().find(|(a, i)| *a == account_id && *i == id) {
            found.insert(key, Arc::clone(&facts));
        }
        memory.messages.insert(id, facts);
    }
    Ok(found)
}

/// The provider of each counted event, in order; records the providers
/// learned from the batch's MX hosts.
async fn providers(
    connection: &mut AnyConnection,
    memory: &mut StatsMemory,
    counted: &[(&NewEvent, &'static [usize])],
) -> Result<Vec<Arc<str>>, StoreError> {
    // Learn first: an event without an MX host in the same batch as a
    // delivery to its domain counts under the delivery's provider.
    let mut learned: HashMap<String, Arc<str>> = HashMap::new();
    let mut by_host: HashMap<&str, Arc<str>> = HashMap::new();
    for (event, _) in counted {
        if let Some(mx) = mx_of(event) {
            let provider = by_host
                .entry(mx)
                .or_insert_with(|| Arc::from(provider_of_host(mx)));
            let domain = recipient_domain(event);
            if !domain.is_empty() {
                learned.insert(domain, Arc::clone(provider));
            }
        }
    }
    if !learned.is_empty() {
        let now = now_unix_ms();
        let rows: Vec<(&str, &str, i64)> = learned
            .iter()
            .map(|(domain, provider)| (domain.as_str(), &**provider, now))
            .collect();
        let json = serde_json::to_string(&rows).map_err(encode_error)?;
        sqlx::query(LEARN_PROVIDERS_SQL.get(Backend::of(connection)))
            .bind(json)
            .execute(&mut *connection)
            .await?;
        for (domain, provider) in learned {
            memory.providers.insert(domain, provider);
        }
    }
    let mut unknown: HashSet<String> = HashSet::new();
    for (event, _) in counted {
        if mx_of(event).is_none() {
            let domain = recipient_domain(event);
            if !domain.is_empty() && memory.providers.get(&domain).is_none() {
                unknown.insert(domain);
            }
        }
    }
    if !unknown.is_empty() {
        let list: Vec<&String> = unknown.iter().collect();
        let json = serde_json::to_string(&list).map_err(encode_error)?;
        let rows = sqlx::query(PROVIDERS_SQL.get(Backend::of(connection)))
            .bind(json)
            .fetch_all(&mut *connection)
            .await?;
        for row in rows {
            let domain: String = row.try_get("domain")?;
            let provider: String = row.try_get("provider")?;
            unknown.remove(&domain);
            memory.providers.insert(domain, Arc::from(provider));
        }
        // Never delivered to: the domain is its own provider until it is.
        for domain in unknown {
            let provider: Arc<str> = Arc::from(domain.as_str());
            memory.providers.insert(domain, provider);
        }
    }
    Ok(counted
        .iter()
        .map(|(event, _)| {
            if let Some(mx) = mx_of(event) {
                return by_host
                    .get(mx)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(provider_of_host(mx)));
            }
            let domain = recipient_domain(event);
            match memory.providers.get(&domain) {
                Some(provider) => Arc::clone(provider),
                None => Arc::from(domain),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_map_forgets_the_oldest_first() {
        let mut map = Bounded::new(2);
        map.insert("a".to_owned(), 1);
        map.insert("b".to_owned(), 2);
        map.insert("a".to_owned(), 3); // an update keeps its place
        map.insert("c".to_owned(), 4);
        assert_eq!(map.get("a"), None);
        assert_eq!(map.get("b"), Some(&2));
        assert_eq!(map.get("c"), Some(&4));
    }

    #[test]
    fn facts_take_the_sending_domain_else_the_sender_and_distinct_tags() {
        let tags = [
            "a".to_owned(),
            String::new(),
            "b".to_owned(),
            "a".to_owned(),
        ];
        let facts = MessageFacts::new(1, Some("Shop.Test"), "x@other.test", &tags);
        assert_eq!(&*facts.domain, "shop.test");
        let names: Vec<&str> = facts.tags.iter().map(|t| &**t).collect();
        assert_eq!(names, ["a", "b"]);
        let facts = MessageFacts::new(1, None, "X@Other.Test", &[]);
        assert_eq!(&*facts.domain, "other.test");
        assert_eq!(&*MessageFacts::new(1, None, "", &[]).domain, "");
    }

    #[test]
    fn the_upsert_adds_every_counter() {
        let sql = upsert_sql(Backend::Sqlite, "t", &[("a", true), ("b", false)]);
        assert!(sql.starts_with("INSERT INTO t (a, b, received, delivered"));
        assert!(sql.contains("value ->> 14") && !sql.contains("value ->> 15"));
        let pg = upsert_sql(Backend::Postgres, "t", &[("a", true), ("b", false)]);
        assert!(
            pg.contains("SELECT (v.value ->> 0)::bigint, v.value ->> 1, (v.value ->> 2)::bigint")
        );
        assert!(pg.contains("(v.value ->> 14)::bigint FROM json_array_elements($1::json)"));
        assert!(sql.contains("opened_machine = t.opened_machine + excluded.opened_machine"));
        assert!(sql.contains(
            "ON CONFLICT (a, b) DO UPDATE SET received = t.received + excluded.received"
        ));
        assert!(sql.ends_with("unsubscribed = t.unsubscribed + excluded.unsubscribed"));
    }

    #[test]
    fn column_positions_name_their_columns() {
        let named = [
            (column::RECEIVED, "received"),
            (column::DELIVERED, "delivered"),
            (column::DEFERRED, "deferred"),
            (column::BOUNCED, "bounced"),
            (column::EXPIRED, "expired"),
            (column::SUPPRESSED, "suppressed"),
            (column::COMPLAINED, "complained"),
            (column::OPENED, "opened"),
            (column::OPENED_UNIQUE, "opened_unique"),
            (column::OPENED_MACHINE, "opened_machine"),
            (column::CLICKED, "clicked"),
            (column::CLICKED_UNIQUE, "clicked_unique"),
            (column::UNSUBSCRIBED, "unsubscribed"),
        ];
        assert_eq!(named.len(), COLUMNS.len());
        for (position, name) in named {
            assert_eq!(COLUMNS[position], name);
        }
    }
}
