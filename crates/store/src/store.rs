//! Opening the database: connection settings that let a server and a CLI share
//! one file, and the schema migrations. The table groups add their queries to
//! [`Store`] in their own modules; this one holds no queries of its own.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyConnection, ConnectOptions};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::password::PasswordHashing;

/// How long a statement waits for another connection (maybe in another
/// process) to release its write lock before it fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between two attempts to open a file that another process is
/// switching to WAL mode (that takes it milliseconds).
const OPEN_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Connections per process on SQLite. SQLite runs one writer at a time
/// anyway; a few connections let reads proceed beside a write (WAL).
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// Connections per node on PostgreSQL: the API's reads, the caches' polls and
/// the webhook dispatchers run beside each other; the event writer has its own.
const POSTGRES_MAX_CONNECTIONS: u32 = 8;

/// How long opening a PostgreSQL connection may take before the server counts
/// as unreachable.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Each connection's SQLite settings. WAL: readers never block the writer
/// and the writer never blocks readers, across processes too. FULL syncs the
/// log at every commit: what Carteiro answers "done" for (an account, a key
/// shown once, a suppression, an unsubscribe, the token secret) survives a
/// power cut, not only a crash (NORMAL may lose the last commits). The event
/// writer commits a batch at a time, so events and statistics cost one sync
/// per batch. Statement journals (SQLite saves pages there while a multi-row
/// statement runs, to undo just that statement) in memory rather than in a
/// temporary file: they were an eighth of the event writer's time.
const SQLITE_SETTINGS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = memory";

/// The schema of each backend, embedded at compile time so the binary carries
/// it.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A handle on the database. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) hashing: PasswordHashing,
    /// How the pool connects, for the event writer's own connection.
    pub(crate) options: AnyConnectOptions,
    /// How long the event writer's connection waits for a lock another
    /// connection (or node) holds before its batch fails and is retried.
    pub(crate) lock_timeout: Duration,
}

impl Store {
    /// Opens (creating it if missing) the SQLite database at `path` and brings
    /// its schema up to date. The parent directory must exist.
    ///
    /// Several processes may open the same file at once, even a file that does
    /// not exist yet. A file written by a newer Carteiro (with migrations this
    /// build does not know) is refused with [`StoreError::SchemaTooNew`].
    ///
    /// The file holds secrets (DKIM private keys), so a new file is created
    /// readable by its owner only; SQLite gives its `-wal` and `-shm` files
    /// the same mode.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        create_private_file(path).map_err(|source| open_error(sqlx::Error::Io(source)))?;
        let url = sqlite_url(path).map_err(open_error)?;
        let options = AnyConnectOptions::from_str(&url).map_err(open_error)?;
        let pool = connect_sqlite(options.clone()).await.map_err(open_error)?;
        run_migrations(&pool, &SQLITE_MIGRATOR).await?;
        Ok(Store {
            pool,
            backend: Backend::Sqlite,
            hashing: PasswordHashing::new(),
            options,
            lock_timeout: BUSY_TIMEOUT,
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@
    /// host:port/db`), shared with the other nodes of a cluster, and brings its
    /// schema up to date (nodes starting together take turns: sqlx holds an
    /// advisory lock while it migrates). A database migrated by a newer
    /// Carteiro is refused with [`StoreError::SchemaTooNew`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let connect_error = |source| StoreError::Connect {
            url: redact_url(url),
            source,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(connect_error(sqlx::Error::Configuration(
                "the URL must start with postgres:// (empty: the SQLite file in data_dir)".into(),
            )));
        }
        let options = AnyConnectOptions::from_str(url).map_err(connect_error)?;
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_MAX_CONNECTIONS)
            .acquire_timeout(POSTGRES_CONNECT_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        run_migrations(&pool, &POSTGRES_MIGRATOR).await?;
        Ok(Store {
            pool,
            backend: Backend::Postgres,
            hashing: PasswordHashing::new(),
            options,
            lock_timeout: BUSY_TIMEOUT,
        })
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a read transaction that sees one committed state throughout
    /// (SQLite's read transactions do in WAL mode; PostgreSQL's default READ
    /// COMMITTED takes a new snapshot per statement).
    pub(crate) async fn begin_snapshot(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    /// Opens a connection outside the pool, for a task that writes all the
    /// time: a pooled SQLite connection's page cache is dropped whenever
    /// another connection wrote since its last use, so rotating through the
    /// pool re-reads the hot pages on every transaction.
    pub(crate) async fn dedicated_connection(&self) -> Result<AnyConnection, StoreError> {
        let mut connection = self.options.connect().await?;
        let timeout_ms = self.lock_timeout.as_millis();
        let settings = match self.backend {
            Backend::Sqlite => format!("{SQLITE_SETTINGS}; PRAGMA busy_timeout = {timeout_ms}"),
            Backend::Postgres => format!("SET lock_timeout = {timeout_ms}"),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(settings))
            .execute(&mut connection)
            .await?;
        Ok(connection)
    }

    /// Closes every pooled connection, waiting for queries in flight. Dropping
    /// the last clone closes them too, but without waiting; call this before a
    /// process exits so SQLite can checkpoint the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The sqlx URL of the SQLite file at `path`, created if missing.
fn sqlite_url(path: &Path) -> Result<String, sqlx::Error> {
    let Some(text) = path.to_str() else {
        return Err(sqlx::Error::Configuration(
            "the database path is not valid UTF-8".into(),
        ));
    };
    let mut url = String::from("sqlite://");
    for c in text.chars() {
        match c {
            '%' | '?' | '#' => url.push_str(&format!("%{:02X}", c as u32)),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// `url` without its password, to show in errors and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Creates the database file with mode 0600 if it does not exist. SQLite would
/// create it 0644 (less the umask); an empty file is a valid empty database.
/// An existing file keeps its mode (the operator may have chosen it), with a
/// warning when others may read it.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            warn_if_readable_by_others(path);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Logs a warning when the group or others may access an existing file.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(path) {
        let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions());
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "the database holds DKIM private keys but others may access it; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Creates the SQLite pool, which opens its first connection at once.
///
/// Switching a new file to WAL takes an exclusive lock that SQLite's busy
/// timeout does not wait for, so when two processes create the file together
/// one of them gets "database is locked" at once. It retries, briefly, until
/// the file is in WAL mode; after that, opening a connection only needs locks
/// the busy timeout waits for.
async fn connect_sqlite(options: AnyConnectOptions) -> Result<AnyPool, sqlx::Error> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match AnyPoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    sqlx::raw_sql(SQLITE_SETTINGS).execute(connection).await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
        {
            Err(error) if is_busy(&error) && Instant::now() < deadline => {
                tracing::debug!(%error, "database busy while opening, retrying");
                tokio::time::sleep(OPEN_RETRY_PAUSE).await;
            }
            result => return result,
        }
    }
}

/// Whether SQLite answered SQLITE_BUSY (in any of its extended forms).
fn is_busy(error: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::sqlite::SqliteError>()
            .and_then(sqlx::error::DatabaseError::code)
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_BUSY),
        _ => false,
    }
}

/// Runs the pending migrations, tolerating another process that runs them at
/// the same moment; refuses a schema newer than this build knows.
///
/// sqlx takes no lock for SQLite migrations: two processes opening a new file
/// together both see migration 1 as pending, and the second to get the write
/// lock fails on a table that now exists. Its next pass sees that migration as
/// applied. Every failed pass means another process applied a migration, so
/// one pass per migration (plus one) is enough; a real error repeats and is
/// returned. (On PostgreSQL sqlx holds an advisory lock while migrating.)
async fn run_migrations(pool: &AnyPool, migrator: &Migrator) -> Result<(), StoreError> {
    let max_passes = migrator.iter().count() + 1;
    let mut pass = 1;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::VersionMissing(found)) => {
                return Err(StoreError::SchemaTooNew {
                    found,
                    known: migrator.iter().map(|m| m.version).max().unwrap_or(0),
                });
            }
            Err(error @ (MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)))
                if pass < max_passes =>
            {
                tracing::debug!(%error, pass, "migration pass failed, retrying");
                pass += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Now, as stored: unix seconds (an INTEGER in SQLite, a BIGINT in PostgreSQL).
pub(crate) fn now_unix() -> i64 {
    now_unix_ms() / 1000
}

/// Now in unix milliseconds, the unit of message and event times.
pub(crate) fn now_unix_ms() -> i64 {
    i64::try_from(carteiro_mail::clock::now_millis()).unwrap_or(i64::MAX)
}

/// Reads back a stored timestamp.
pub(crate) fn from_unix(seconds: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {seconds} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_store;

    #[tokio::test]
    async fn opens_in_wal_mode_with_foreign_keys() {
        if crate::testutil::on_postgres() {
            return;
        }
        let (_dir, store) = temp_store().await;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .expect("foreign_keys");
        assert_eq!(fk, 1);
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&store.pool)
            .await
            .expect("busy_timeout");
        assert_eq!(busy, 5000);
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .expect("synchronous");
        assert_eq!(synchronous, 2, "FULL: every commit is synced");
        let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&store.pool)
            .await
            .expect("temp_store");
        assert_eq!(temp_store, 2, "memory");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("carteiro.db");
        let store = Store::open(&path).await.expect("open");
        store.create_account("acme").await.expect("write");
        for name in ["carteiro.db", "carteiro.db-wal", "carteiro.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .expect(name)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
        }
    }

    #[tokio::test]
    async fn a_schema_newer_than_this_build_is_refused() {
        let (dir, store) = temp_store().await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', true, $1, 0)",
        )
        .bind(vec![0u8; 48])
        .execute(&store.pool)
        .await
        .expect("a newer migration");
        store.close().await;
        let url = std::fs::read_to_string(dir.path().join("store-url"));
        let refused = match url {
            Ok(url) => Store::connect(&url).await,
            Err(_) => Store::open(&dir.path().join("carteiro.db")).await,
        };
        let Err(error @ StoreError::SchemaTooNew { found: 9999, .. }) = refused else {
            panic!("not refused: {refused:?}");
        };
        assert!(
            error.to_string().contains("newer than this Carteiro knows"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_connect_error_without_the_password() {
        // Port 9 (discard) on loopback: nothing listens there.
        let error = Store::connect("postgres://carteiro:s3cret@127.0.0.1:9/carteiro")
            .await
            .expect_err("nothing listens");
        let StoreError::Connect { ref url, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(url, "postgres://carteiro@127.0.0.1:9/carteiro");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(error.is_transient());
        let error = Store::connect("mysql://x@127.0.0.1/db")
            .await
            .expect_err("not postgres");
        assert!(error.to_string().contains("postgres://"), "{error}");
    }

    #[test]
    fn urls_lose_their_password_and_paths_are_escaped() {
        assert_eq!(
            redact_url("postgres://u:p@h:5432/db?sslmode=require"),
            "postgres://u@h:5432/db?sslmode=require"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            sqlite_url(Path::new("/data/a?b#c%d/carteiro.db")).expect("utf-8"),
            "sqlite:///data/a%3Fb%23c%25d/carteiro.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn reopening_runs_migrations_idempotently() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("carteiro.db");
        let first = Store::open(&path).await.expect("first open");
        first.create_account("acme").await.expect("create");
        first.close().await;
        drop(first);

        let second = Store::open(&path).await.expect("second open");
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&second.pool)
            .await
            .expect("count migrations");
        assert_eq!(
            applied,
            i64::try_from(SQLITE_MIGRATOR.iter().count()).expect("fits")
        );
        assert!(second.account("acme").await.expect("lookup").is_some());
        // A third open on a file already up to date changes nothing.
        let third = Store::open(&path).await.expect("third open");
        assert_eq!(third.list_accounts().await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn concurrent_first_opens_of_a_new_file_both_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("carteiro.db");
        let (a, b) = tokio::join!(Store::open(&path), Store::open(&path));
        let (a, b) = (a.expect("open a"), b.expect("open b"));
        a.create_account("one").await.expect("create via a");
        b.create_account("two").await.expect("create via b");
        assert_eq!(a.list_accounts().await.expect("list").len(), 2);
    }

    #[tokio::test]
    async fn server_and_cli_handles_see_each_others_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("carteiro.db");
        let server = Store::open(&path).await.expect("server open");
        // The server holds a read connection open, as a busy server would.
        let _warm = server.list_accounts().await.expect("server list");

        let cli = Store::open(&path).await.expect("cli open");
        cli.create_account("acme").await.expect("cli create");
        cli.add_credential("acme", "relay@acme", "correct horse battery")
            .await
            .expect("cli add credential");

        let account = server
            .verify_credential("relay@acme", "correct horse battery")
            .await
            .expect("server verify")
            .expect("credential accepted");
        assert_eq!(account.name, "acme");

        server.ensure_account("beta").await.expect("server ensure");
        assert!(cli.account("beta").await.expect("cli lookup").is_some());
        assert!(
            cli.remove_credential("relay@acme")
                .await
                .expect("cli remove")
        );
        assert!(
            server
                .verify_credential("relay@acme", "correct horse battery")
                .await
                .expect("server verify after removal")
                .is_none()
        );
    }

    /// Set in the child process of `two_processes_write_the_same_new_file`.
    const CHILD_DB_VAR: &str = "CARTEIRO_STORE_TEST_CHILD_DB";
    const WRITES_PER_PROCESS: usize = 40;

    /// Writes accounts from two processes at once, both opening a file that
    /// does not exist yet: the server-and-CLI case, across a real process
    /// boundary (SQLite's file locks, not just two pools in one process).
    #[tokio::test]
    async fn two_processes_write_the_same_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("carteiro.db");
        let exe = std::env::current_exe().expect("test binary path");
        let child = tokio::process::Command::new(exe)
            .args([
                "--exact",
                "store::tests::child_process_writer",
                "--include-ignored",
            ])
            .env(CHILD_DB_VAR, &path)
            .output();
        let parent = async {
            let store = Store::open(&path).await.expect("parent open");
            for i in 0..WRITES_PER_PROCESS {
                store
                    .create_account(&format!("parent-{i}"))
                    .await
                    .expect("parent create");
            }
            store
        };
        let (child, store) = tokio::join!(child, parent);
        let child = child.expect("run child");
        assert!(
            child.status.success(),
            "child failed: {}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        let accounts = store.list_accounts().await.expect("list");
        assert_eq!(accounts.len(), 2 * WRITES_PER_PROCESS);
        assert!(store.account("child-0").await.expect("lookup").is_some());
    }

    /// The child half of `two_processes_write_the_same_new_file`; ignored when
    /// run on its own, a no-op without the variable.
    #[tokio::test]
    #[ignore = "run as a child process by two_processes_write_the_same_new_file"]
    async fn child_process_writer() {
        let Some(path) = std::env::var_os(CHILD_DB_VAR) else {
            return;
        };
        let store = Store::open(Path::new(&path)).await.expect("child open");
        for i in 0..WRITES_PER_PROCESS {
            store
                .create_account(&format!("child-{i}"))
                .await
                .expect("child create");
        }
        store.close().await;
    }

    #[test]
    fn timestamps_round_trip_and_refuse_out_of_range() {
        let now = now_unix();
        assert_eq!(from_unix(now).expect("in range").unix_timestamp(), now);
        assert!(matches!(from_unix(i64::MAX), Err(StoreError::Corrupt(_))));
    }
}
