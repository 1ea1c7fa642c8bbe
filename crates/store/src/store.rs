//! Opening the database: connection settings that let a server and a CLI share
//! one file, and the schema migrations. The table groups add their queries to
//! [`Store`] in their own modules; this one holds no queries of its own.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::password::PasswordHashing;

/// How long a statement waits for another connection (maybe in another
/// process) to release its write lock before it fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between two attempts to open a file that another process is
/// switching to WAL mode (that takes it milliseconds).
const OPEN_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Connections per process. SQLite runs one writer at a time anyway; a few
/// connections let reads proceed beside a write (WAL).
const MAX_CONNECTIONS: u32 = 4;

/// The schema, embedded at compile time so the binary carries it.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A handle on the database. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    pub(crate) hashing: PasswordHashing,
    /// How the pool connects, for the event writer's own connection.
    pub(crate) options: SqliteConnectOptions,
}

impl Store {
    /// Opens (creating it if missing) the SQLite database at `path` and brings
    /// its schema up to date. The parent directory must exist.
    ///
    /// Several processes may open the same file at once, even a file that does
    /// not exist yet. A file written by a newer Carteiro (with migrations this
    /// build does not know) is refused with [`StoreError::Migrate`].
    ///
    /// The file holds secrets (DKIM private keys), so a new file is created
    /// readable by its owner only; SQLite gives its `-wal` and `-shm` files
    /// the same mode.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        create_private_file(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source: sqlx::Error::Io(source),
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL: readers never block the writer and the writer never blocks
            // readers, across processes too. FULL syncs the log at every
            // commit: what Carteiro answers "done" for (an account, a key
            // shown once, a suppression, an unsubscribe, the token secret)
            // survives a power cut, not only a crash (NORMAL may lose the
            // last commits). The event writer commits a batch at a time, so
            // events and statistics cost one sync per batch.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Statement journals (SQLite saves pages there while a multi-row
            // statement runs, to undo just that statement) in memory rather
            // than in a temporary file: they were an eighth of the event
            // writer's time. Temporary tables would live there too; none exist.
            .pragma("temp_store", "memory");
        let pool = connect(options.clone())
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        run_migrations(&pool).await?;
        Ok(Store {
            pool,
            hashing: PasswordHashing::new(),
            options,
        })
    }

    /// Opens a connection outside the pool, for a task that writes all the
    /// time: a pooled connection's page cache is dropped whenever another
    /// connection wrote since its last use, so rotating through the pool
    /// re-reads the hot pages on every transaction.
    pub(crate) async fn dedicated_connection(&self) -> Result<sqlx::SqliteConnection, StoreError> {
        use sqlx::ConnectOptions;
        Ok(self.options.connect().await?)
    }

    /// Closes every pooled connection, waiting for queries in flight. Dropping
    /// the last clone closes them too, but without waiting; call this before a
    /// process exits so SQLite can checkpoint the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
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

/// Creates the pool, which opens its first connection at once.
///
/// Switching a new file to WAL takes an exclusive lock that SQLite's busy
/// timeout does not wait for, so when two processes create the file together
/// one of them gets "database is locked" at once. It retries, briefly, until
/// the file is in WAL mode; after that, opening a connection only needs locks
/// the busy timeout waits for.
async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
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
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_BUSY),
        _ => false,
    }
}

/// Runs the pending migrations, tolerating another process that runs them at
/// the same moment.
///
/// sqlx takes no lock for SQLite migrations: two processes opening a new file
/// together both see migration 1 as pending, and the second to get the write
/// lock fails on a table that now exists. Its next pass sees that migration as
/// applied. Every failed pass means another process applied a migration, so
/// one pass per migration (plus one) is enough; a real error repeats and is
/// returned.
async fn run_migrations(pool: &SqlitePool) -> Result<(), StoreError> {
    let max_passes = MIGRATOR.iter().count() + 1;
    let mut pass = 1;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
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
            i64::try_from(MIGRATOR.iter().count()).expect("fits")
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
