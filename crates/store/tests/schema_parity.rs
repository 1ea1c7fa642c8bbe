//! The PostgreSQL schema (`migrations/postgres`) against the SQLite one
//! (`migrations/sqlite`): every migration has both forms, and the two sets,
//! applied to fresh databases, give the same tables with the same columns
//! (names and order, type family, nullability, defaults, generated ids), primary
//! keys, unique constraints, indexes, foreign keys, triggers and seed rows. The
//! generation triggers also move the counter alike.
//!
//! PostgreSQL comes from `CARTEIRO_TEST_POSTGRES` (a URL; the test fails when
//! it cannot connect), else `postgres://postgres@127.0.0.1:5432/test` (the test
//! is skipped, saying so, when nothing answers there). `scripts/test` makes
//! sure a server runs and sets the variable. Each test works in a database of
//! its own, `carteiro_test_<random>`, dropped at its end; the URL's database
//! is only used to create and drop it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Row};

/// Where PostgreSQL is when [`URL_VAR`] is not set.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The variable naming the PostgreSQL server to test against.
const URL_VAR: &str = "CARTEIRO_TEST_POSTGRES";

/// How long connecting to the default URL may take before the test is skipped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn migrations(dialect: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect)
}

/// The `.sql` file names of one dialect's migrations.
fn migration_files(dialect: &str) -> BTreeSet<String> {
    let dir = migrations(dialect);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file name")
        })
        .filter(|name| name.ends_with(".sql"))
        .collect()
}

/// A table added to one backend only, or a migration numbered or named
/// differently, fails here: both directories must list the same files.
#[test]
fn every_migration_has_a_sqlite_and_a_postgres_form() {
    let sqlite = migration_files("sqlite");
    let postgres = migration_files("postgres");
    assert!(!sqlite.is_empty(), "no SQLite migrations found");
    let only_sqlite: Vec<&String> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<&String> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "every migration needs both forms, same number and name: \
         only in migrations/sqlite: {only_sqlite:?}; only in migrations/postgres: {only_postgres:?}"
    );
    let mut numbers = BTreeSet::new();
    for name in &sqlite {
        let (number, rest) = name.split_once('_').unwrap_or((name, ""));
        assert!(
            number.len() == 4 && number.bytes().all(|b| b.is_ascii_digit()) && rest.len() > 4,
            "{name}: migrations are named NNNN_name.sql"
        );
        assert!(
            numbers.insert(number.to_owned()),
            "{name}: number used twice"
        );
    }
}

// ---------------------------------------------------------------------------
// The schema model both databases are read into.

/// What the two schemas must agree on, per table.
#[derive(Debug, PartialEq, Eq)]
struct Table {
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// UNIQUE constraints besides the primary key, by their columns (their
    /// indexes are named by each database: `sqlite_autoindex_T_N` against
    /// `T_col_key`).
    unique: BTreeSet<Vec<String>>,
    /// Indexes made with CREATE INDEX, by name: the names are the same.
    indexes: BTreeMap<String, Index>,
    foreign_keys: BTreeSet<ForeignKey>,
    triggers: BTreeSet<String>,
    rows: i64,
}

#[derive(Debug, PartialEq, Eq)]
struct Column {
    name: String,
    /// `integer` (SQLite INTEGER; PostgreSQL BIGINT, or BOOLEAN for a flag
    /// the store binds as a bool), `text` or `blob` (BYTEA).
    family: String,
    /// Declared NOT NULL, or part of the primary key.
    not_null: bool,
    default: Option<String>,
    /// Numbered by the database: INTEGER PRIMARY KEY (AUTOINCREMENT) against
    /// an identity column.
    generated: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Index {
    unique: bool,
    /// Key columns in order; expressions lowercased without spaces or quotes.
    columns: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    target: String,
    target_columns: Vec<String>,
    on_delete: String,
}

type Schema = BTreeMap<String, Table>;

/// An index term or default as compared: lowercase, no spaces, no quotes.
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '"')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The key terms of a `CREATE INDEX ... ON table (a, lower(b), c)` statement.
fn index_terms(sql: &str) -> Vec<String> {
    let lower = sql.to_ascii_lowercase();
    let on = lower.find(" on ").expect("CREATE INDEX ... ON");
    let open = on + lower[on..].find('(').expect("column list");
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut start = open + 1;
    for (i, c) in sql.char_indices().skip_while(|(i, _)| *i <= open) {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                terms.push(normalize(&sql[start..i]));
                break;
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(normalize(&sql[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    terms
}

// ---------------------------------------------------------------------------
// SQLite.

async fn sqlite_schema(pool: &SqlitePool) -> Schema {
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .expect("sqlite tables");
    let mut schema = Schema::new();
    for (name, create) in names {
        let info = sqlx::query(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("table_info");
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        let mut columns = Vec::new();
        for row in &info {
            let column: String = row.get("name");
            let pk: i64 = row.get("pk");
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            let declared: String = row.get("type");
            let family = match declared.to_ascii_uppercase().as_str() {
                "INTEGER" => "integer".to_owned(),
                "TEXT" => "text".to_owned(),
                "BLOB" => "blob".to_owned(),
                other => format!("unmapped {other}"),
            };
            columns.push((
                Column {
                    name: column,
                    family,
                    not_null: row.get::<i64, _>("notnull") != 0 || pk > 0,
                    default: row
                        .get::<Option<String>, _>("dflt_value")
                        .map(|d| normalize(&d)),
                    generated: false,
                },
                declared,
            ));
        }
        primary_key.sort();
        let primary_key: Vec<String> = primary_key.into_iter().map(|(_, c)| c).collect();
        // A lone INTEGER PRIMARY KEY is the rowid: numbered by SQLite
        // (AUTOINCREMENT: never reused).
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(mut column, declared)| {
                column.generated = primary_key == [column.name.clone()]
                    && declared.eq_ignore_ascii_case("INTEGER");
                column
            })
            .collect();
        assert!(
            !create.to_ascii_uppercase().contains("AUTOINCREMENT")
                || columns.iter().any(|c| c.generated),
            "{name}: AUTOINCREMENT without an INTEGER PRIMARY KEY column"
        );

        let mut unique = BTreeSet::new();
        let mut indexes = BTreeMap::new();
        let list = sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list($1)")
            .bind(&name)
            .fetch_all(pool)
            .await
            .expect("index_list");
        for row in &list {
            let index: String = row.get("name");
            let origin: String = row.get("origin");
            if origin == "pk" {
                continue;
            }
            let keys = sqlx::query(
                "SELECT cid, name FROM pragma_index_xinfo($1) WHERE key = 1 ORDER BY seqno",
            )
            .bind(&index)
            .fetch_all(pool)
            .await
            .expect("index_xinfo");
            // An expression's text is only in the CREATE INDEX statement
            // (which indexes made for UNIQUE constraints do not have).
            let statement: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1",
            )
            .bind(&index)
            .fetch_optional(pool)
            .await
            .expect("index statement")
            .flatten();
            let terms = statement.as_deref().map(index_terms).unwrap_or_default();
            let mut columns = Vec::new();
            for (position, key) in keys.iter().enumerate() {
                let cid: i64 = key.get("cid");
                match key.get::<Option<String>, _>("name") {
                    Some(column) if cid >= 0 => columns.push(normalize(&column)),
                    _ => columns.push(
                        terms
                            .get(position)
                            .cloned()
                            .unwrap_or_else(|| format!("expression {position} of {index}")),
                    ),
                }
            }
            if origin == "u" {
                unique.insert(columns);
            } else {
                let is_unique: i64 = row.get("unique");
                indexes.insert(
                    index,
                    Index {
                        unique: is_unique != 0,
                        columns,
                    },
                );
            }
        }

        let mut foreign_keys = BTreeSet::new();
        let fks = sqlx::query(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list($1) \
             ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("foreign_key_list");
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for row in &fks {
            let fk = by_id.entry(row.get("id")).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                target: row.get("table"),
                target_columns: Vec::new(),
                on_delete: row.get("on_delete"),
            });
            fk.columns.push(row.get("from"));
            fk.target_columns
                .push(row.get::<Option<String>, _>("to").unwrap_or_default());
        }
        foreign_keys.extend(by_id.into_values());

        let triggers: BTreeSet<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = $1",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("triggers")
        .into_iter()
        .collect();
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{name}\""
        )))
        .fetch_one(pool)
        .await
        .expect("count");

        schema.insert(
            name,
            Table {
                columns,
                primary_key,
                unique,
                indexes,
                foreign_keys,
                triggers,
                rows,
            },
        );
    }
    schema
}

// ---------------------------------------------------------------------------
// PostgreSQL.

async fn postgres_schema(pool: &PgPool) -> Schema {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(pool)
    .await
    .expect("postgres tables");
    let mut schema = Schema::new();
    for name in names {
        let info = sqlx::query(
            "SELECT column_name::text AS name, data_type::text AS type, \
             is_nullable::text = 'NO' AS not_null, column_default::text AS dflt, \
             is_identity::text = 'YES' AS identity \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("columns");
        let columns: Vec<Column> = info
            .iter()
            .map(|row| {
                let declared: String = row.get("type");
                let family = match declared.as_str() {
                    "bigint" | "boolean" => "integer".to_owned(),
                    "text" => "text".to_owned(),
                    "bytea" => "blob".to_owned(),
                    other => format!("unmapped {other}"),
                };
                Column {
                    name: row.get("name"),
                    family,
                    not_null: row.get("not_null"),
                    default: row.get::<Option<String>, _>("dflt").map(|d| {
                        let d = normalize(&d);
                        d.strip_suffix("::text").map(str::to_owned).unwrap_or(d)
                    }),
                    generated: row.get("identity"),
                }
            })
            .collect();

        let mut primary_key = Vec::new();
        let mut unique = BTreeSet::new();
        let mut indexes = BTreeMap::new();
        let list = sqlx::query(
            "SELECT c.relname::text AS name, i.indisprimary AS is_primary, \
             i.indisunique AS is_unique, \
             EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid \
                     AND k.contype = 'u') AS is_constraint, \
             ARRAY(SELECT pg_get_indexdef(i.indexrelid, n, true) \
                   FROM generate_series(1, i.indnkeyatts::int) AS n ORDER BY n) AS columns \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = $1::regclass",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("indexes");
        for row in &list {
            let columns: Vec<String> = row
                .get::<Vec<String>, _>("columns")
                .iter()
                .map(|c| normalize(c))
                .collect();
            if row.get("is_primary") {
                primary_key = columns;
            } else if row.get("is_constraint") {
                unique.insert(columns);
            } else {
                indexes.insert(
                    row.get("name"),
                    Index {
                        unique: row.get("is_unique"),
                        columns,
                    },
                );
            }
        }

        let fks = sqlx::query(
            "SELECT ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u (n, o) \
                   JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o) \
                 AS columns, \
             t.relname::text AS target, \
             ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u (n, o) \
                   JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o) \
                 AS target_columns, \
             CASE k.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' \
                 WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' \
             END AS on_delete \
             FROM pg_constraint k JOIN pg_class t ON t.oid = k.confrelid \
             WHERE k.conrelid = $1::regclass AND k.contype = 'f'",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("foreign keys");
        let foreign_keys = fks
            .iter()
            .map(|row| ForeignKey {
                columns: row.get("columns"),
                target: row.get("target"),
                target_columns: row.get("target_columns"),
                on_delete: row.get("on_delete"),
            })
            .collect();

        let triggers: BTreeSet<String> = sqlx::query_scalar(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("triggers")
        .into_iter()
        .collect();
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{name}\""
        )))
        .fetch_one(pool)
        .await
        .expect("count");

        schema.insert(
            name,
            Table {
                columns,
                primary_key,
                unique,
                indexes,
                foreign_keys,
                triggers,
                rows,
            },
        );
    }
    schema
}

// ---------------------------------------------------------------------------
// Databases.

/// A URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The server to test against and a connection to the URL's database, or
/// `None` (after saying so) when the default server does not answer.
async fn server() -> Option<(PgConnectOptions, PgConnection)> {
    let (url, explicit) = match std::env::var(URL_VAR) {
        Ok(url) => (url, true),
        Err(_) => (DEFAULT_URL.to_owned(), false),
    };
    let options = PgConnectOptions::from_str(&url)
        .unwrap_or_else(|error| panic!("{URL_VAR}={}: not a URL: {error}", redact(&url)));
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| format!("no answer in {CONNECT_TIMEOUT:?}"))
        .and_then(|result| result.map_err(|error| error.to_string()));
    match connected {
        Ok(connection) => Some((options, connection)),
        Err(error) if explicit => {
            panic!(
                "{URL_VAR}={}: cannot connect to PostgreSQL: {error}",
                redact(&url)
            )
        }
        Err(error) => {
            println!(
                "PostgreSQL not reachable at {}: schema parity test skipped ({error}; \
                 set {URL_VAR} to test against another server)",
                redact(&url)
            );
            None
        }
    }
}

/// Runs `body` on a new database of its own, `carteiro_test_<random>`, and
/// drops the database afterwards, whether `body` passed or panicked.
async fn with_scratch_database<F, Fut>(body: F)
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some((options, mut admin)) = server().await else {
        return;
    };
    let name = format!("carteiro_test_{:016x}", rand::random::<u64>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("create database {name}: {error}"));
    // On a task of its own: a failed assertion comes back as a JoinError
    // after the database is dropped.
    let outcome = tokio::spawn(body(options.database(&name))).await;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    admin.close().await.ok();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
    dropped.unwrap_or_else(|error| panic!("drop database {name}: {error}"));
}

async fn postgres_pool(options: PgConnectOptions) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("connect to the scratch database");
    Migrator::new(migrations("postgres"))
        .await
        .expect("read the PostgreSQL migrations")
        .run(&pool)
        .await
        .expect("apply the PostgreSQL migrations");
    pool
}

async fn sqlite_pool(dir: &tempfile::TempDir) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("parity.db"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open a SQLite file");
    Migrator::new(migrations("sqlite"))
        .await
        .expect("read the SQLite migrations")
        .run(&pool)
        .await
        .expect("apply the SQLite migrations");
    pool
}

// ---------------------------------------------------------------------------
// The comparisons.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_matches_the_sqlite_schema() {
    with_scratch_database(|options| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = sqlite_pool(&dir).await;
        let postgres = postgres_pool(options).await;
        let lite = sqlite_schema(&sqlite).await;
        let pg = postgres_schema(&postgres).await;

        let lite_names: Vec<&String> = lite.keys().collect();
        let pg_names: Vec<&String> = pg.keys().collect();
        assert_eq!(lite_names, pg_names, "tables (SQLite, then PostgreSQL)");
        for (name, table) in &lite {
            let other = &pg[name];
            let columns = |t: &Table| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            assert_eq!(
                columns(table),
                columns(other),
                "{name}: column names in order"
            );
            for (a, b) in table.columns.iter().zip(&other.columns) {
                assert_eq!(a, b, "{name}.{}: SQLite, then PostgreSQL", a.name);
            }
            assert_eq!(table.primary_key, other.primary_key, "{name}: primary key");
            assert_eq!(table.unique, other.unique, "{name}: unique constraints");
            assert_eq!(table.indexes, other.indexes, "{name}: indexes");
            assert_eq!(
                table.foreign_keys, other.foreign_keys,
                "{name}: foreign keys"
            );
            assert_eq!(table.triggers, other.triggers, "{name}: triggers");
            assert_eq!(table.rows, other.rows, "{name}: rows after the migrations");
            assert_eq!(table, other, "{name}");
        }

        // Seed rows: the counters, value for value.
        let lite_counters: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, value FROM counters ORDER BY name")
                .fetch_all(&sqlite)
                .await
                .expect("sqlite counters");
        let pg_counters: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, value FROM counters ORDER BY name")
                .fetch_all(&postgres)
                .await
                .expect("postgres counters");
        assert_eq!(lite_counters, pg_counters, "counters");

        // Text compares byte by byte on both (see migration 0001).
        let not_c: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text || '.' || column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
             AND data_type = 'text' AND collation_name IS DISTINCT FROM 'C' \
             ORDER BY 1",
        )
        .fetch_all(&postgres)
        .await
        .expect("collations");
        assert!(
            not_c.is_empty(),
            "text columns without COLLATE \"C\" on PostgreSQL: {not_c:?}"
        );

        sqlite.close().await;
        postgres.close().await;
    })
    .await;
}

/// Statements valid on both databases, and the generation counter after
/// each: the triggers must move it alike (`$1` is a key's bytes).
const GENERATION_STEPS: [&str; 11] = [
    "INSERT INTO accounts (name, created_at) VALUES ('acme', 1)",
    "INSERT INTO smtp_credentials (account_id, username, password_hash, created_at) \
     SELECT id, 'user', 'hash', 1 FROM accounts",
    "INSERT INTO domains (account_id, name, created_at) SELECT id, 'acme.test', 1 FROM accounts",
    "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, created_at) \
     SELECT id, 's1', 'ed25519', $1, 'cHVi', 1 FROM domains",
    "INSERT INTO api_keys (account_id, prefix, key_hash, created_at) \
     SELECT id, 'crt_abcdefgh', 'ff', 1 FROM accounts",
    // Bookkeeping, a change to no row, and tables without triggers: no move.
    "UPDATE api_keys SET last_used_at = 60",
    "UPDATE accounts SET created_at = 2 WHERE name = 'nobody'",
    "INSERT INTO suppressions (account_id, address, reason, created_at_ms) \
     SELECT id, 'a@b.test', 'manual', 1 FROM accounts",
    "UPDATE api_keys SET prefix = 'crt_zzzzzzzz'",
    "UPDATE smtp_credentials SET password_hash = 'other'",
    // The cascade removes a row from each of five tables.
    "DELETE FROM accounts",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_triggers_move_the_counter_alike() {
    with_scratch_database(|options| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = sqlite_pool(&dir).await;
        let postgres = postgres_pool(options).await;
        let read = "SELECT value FROM counters WHERE name = 'generation'";
        let mut lite = Vec::new();
        let mut pg = Vec::new();
        for step in GENERATION_STEPS {
            let query = sqlx::query(step);
            let query = if step.contains("$1") {
                query.bind(vec![1u8, 2, 3])
            } else {
                query
            };
            query
                .execute(&sqlite)
                .await
                .unwrap_or_else(|error| panic!("SQLite: {step}: {error}"));
            lite.push(
                sqlx::query_scalar::<_, i64>(read)
                    .fetch_one(&sqlite)
                    .await
                    .expect("sqlite generation"),
            );
            let query = sqlx::query(step);
            let query = if step.contains("$1") {
                query.bind(vec![1u8, 2, 3])
            } else {
                query
            };
            query
                .execute(&postgres)
                .await
                .unwrap_or_else(|error| panic!("PostgreSQL: {step}: {error}"));
            pg.push(
                sqlx::query_scalar::<_, i64>(read)
                    .fetch_one(&postgres)
                    .await
                    .expect("postgres generation"),
            );
        }
        assert_eq!(lite, [1, 2, 3, 4, 5, 5, 5, 5, 6, 7, 12], "SQLite");
        assert_eq!(pg, lite, "PostgreSQL, against SQLite");
        sqlite.close().await;
        postgres.close().await;
    })
    .await;
}
