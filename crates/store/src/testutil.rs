//! Helpers shared by the unit tests: a store of its own for each test, and
//! message records and events to write into it.
//!
//! The tests run on SQLite (a real file in a fresh temporary directory, never
//! `sqlite::memory:`, where each pooled connection would see its own empty
//! database), or on PostgreSQL when `CARTEIRO_TEST_STORE=postgres`: then each
//! test gets a fresh schema in the database `carteiro_store_tests` of the
//! server at `CARTEIRO_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`), which the test command runs
//! them against a second time.

use sqlx::{ConnectOptions, Connection};

use crate::{MessageFilter, NewEvent, NewMessage, Store};

/// Which backend the tests run on.
const BACKEND_VAR: &str = "CARTEIRO_TEST_STORE";
/// The PostgreSQL server, as the schema parity test takes it.
const URL_VAR: &str = "CARTEIRO_TEST_POSTGRES";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The database the tests' schemas live in.
const TEST_DATABASE: &str = "carteiro_store_tests";
/// Schemas of earlier runs older than this are dropped.
const STALE_SCHEMA_SECONDS: u64 = 3600;

/// Whether the tests run on PostgreSQL.
pub(crate) fn on_postgres() -> bool {
    std::env::var(BACKEND_VAR).is_ok_and(|value| value == "postgres")
}

/// Opens a store of its own; keep the directory alive as long as the store.
pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    if on_postgres() {
        let url = fresh_schema_url().await;
        std::fs::write(dir.path().join(URL_FILE), &url).expect("note the URL");
    }
    let store = another_handle(&dir).await;
    (dir, store)
}

/// Where a PostgreSQL test's directory keeps its store's URL.
const URL_FILE: &str = "store-url";

/// Another handle on the store of [`temp_store`]'s `dir`: what another
/// process (the CLI beside a server), or the same one after a restart, opens.
pub(crate) async fn another_handle(dir: &tempfile::TempDir) -> Store {
    match std::fs::read_to_string(dir.path().join(URL_FILE)) {
        Ok(url) => Store::connect(&url).await.expect("connect store"),
        Err(_) => Store::open(&dir.path().join("carteiro.db"))
            .await
            .expect("open store"),
    }
}

/// A URL whose connections work in a new, empty schema.
async fn fresh_schema_url() -> String {
    let server = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let options: sqlx::postgres::PgConnectOptions = server.parse().expect("postgres URL");
    let mut admin = options.connect().await.expect("connect to PostgreSQL");
    // Tests start in parallel: a second CREATE DATABASE fails, which is fine.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(TEST_DATABASE)
            .fetch_one(&mut admin)
            .await
            .expect("look up the test database");
    if !exists {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {TEST_DATABASE}"
        )))
        .execute(&mut admin)
        .await;
    }
    admin.close().await.ok();
    let mut connection = options
        .clone()
        .database(TEST_DATABASE)
        .connect()
        .await
        .expect("connect to the test database");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%' \
         AND split_part(nspname, '_', 2)::bigint < $1",
    )
    .bind(i64::try_from(now - STALE_SCHEMA_SECONDS).expect("time"))
    .fetch_all(&mut connection)
    .await
    .expect("list stale schemas");
    for name in stale {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE"
        )))
        .execute(&mut connection)
        .await;
    }
    let schema = format!("t_{now}_{:016x}", rand::random::<u64>());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut connection)
        .await
        .expect("create schema");
    connection.close().await.ok();
    // The server's URL with the test database and the schema in place of its
    // own database and parameters.
    let server = server.split('?').next().unwrap_or(&server);
    let host_start = server.find("://").map_or(0, |at| at + 3);
    let host_end = server[host_start..]
        .find('/')
        .map_or(server.len(), |at| host_start + at);
    let authority = &server[..host_end];
    format!("{authority}/{TEST_DATABASE}?options[search_path]={schema}")
}

/// A message id made at `ms` (the id's time), told apart by `n`.
pub(crate) fn message_id(ms: i64, n: u128) -> String {
    let ms = u128::try_from(ms).expect("positive time");
    carteiro_mail::MessageId((ms << 80) | n).to_string()
}

/// A message record accepted at `ms`, from `sender@example.com`.
pub(crate) fn new_message(
    account_id: i64,
    id: &str,
    ms: i64,
    recipients: &[&str],
    tags: &[&str],
) -> crate::NewMessage {
    crate::NewMessage {
        id: id.to_owned(),
        account_id,
        sender: "Sender@Example.com".to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        subject: Some("Hello".to_owned()),
        header_message_id: Some(format!("<{id}@example.com>")),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        sending_domain: None,
        metadata: serde_json::json!({"order": 42}),
        source: crate::MessageSource::Api,
        size: 1234,
        received_at_ms: ms,
        headers: Some(crate::MessageHeaders::from_section(
            format!("Message-ID: <{id}@example.com>\r\nSubject: Hello\r\n\r\n").as_bytes(),
        )),
    }
}

/// An event at `ms`, with the kind in its details so tests can tell events
/// apart (see [`details_naming`]).
pub(crate) fn new_event(
    account_id: i64,
    message_id: &str,
    recipient: Option<&str>,
    kind: crate::EventKind,
    ms: i64,
) -> crate::NewEvent {
    crate::NewEvent {
        account_id,
        message_id: message_id.to_owned(),
        recipient: recipient.map(str::to_owned),
        kind,
        timestamp_ms: ms,
        details: details_naming(kind),
    }
}

/// Details that name `kind`, for tests that tell events apart by them.
pub(crate) fn details_naming(kind: crate::EventKind) -> crate::EventDetails {
    crate::EventDetails::Suppressed(crate::SuppressedDetails {
        reason: kind.as_str().to_owned(),
    })
}

/// A base time for the tests: 2025-01-01T00:00:00Z in milliseconds.
pub(crate) const T0: i64 = 1_735_689_600_000;

/// Writes a batch, as the event writer would.
pub(crate) async fn record(store: &Store, messages: &[NewMessage], events: &[NewEvent]) {
    store
        .record_batch(messages, events)
        .await
        .expect("record batch");
}

/// The states of a message's recipients, in order.
pub(crate) async fn states(store: &Store, account_id: i64, id: &str) -> Vec<String> {
    store
        .message(account_id, id)
        .await
        .expect("message")
        .expect("found")
        .recipients
        .into_iter()
        .map(|r| r.state)
        .collect()
}

/// Pages through a search, checking that every page is newest first.
pub(crate) async fn all_pages(
    store: &Store,
    account_id: i64,
    filter: &MessageFilter,
    page: u32,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    loop {
        let before = seen.last().map(String::as_str);
        let found = store
            .search_messages(account_id, filter, page, before)
            .await
            .expect("search");
        assert!(found.len() <= page as usize);
        assert!(found.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        if let (Some(last), Some(first)) = (seen.last(), found.first()) {
            assert!(first.id < *last, "pages do not overlap");
        }
        let done = found.len() < page as usize;
        seen.extend(found.into_iter().map(|m| m.id));
        if done {
            return seen;
        }
    }
}
