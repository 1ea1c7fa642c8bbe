//! The error type of every store operation. Callers match on the variants to
//! tell a user mistake (a taken name, a short password) from a failure of the
//! database itself; this module does not decide how either is shown.

use std::path::PathBuf;

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The account name is not 1 to 64 characters of `a-z`, `0-9`, `.`, `_`, `-`.
    #[error("invalid account name {0:?}: use 1 to 64 characters among a-z, 0-9, '.', '_' and '-'")]
    InvalidName(String),
    /// An account with this name already exists.
    #[error("account {0:?} already exists")]
    AccountExists(String),
    /// No account has this name.
    #[error("no such account {0:?}")]
    NoSuchAccount(String),
    /// The SMTP username is empty, longer than 255 bytes, or holds spaces or
    /// control characters.
    #[error("invalid username {0:?}: use 1 to 255 bytes without spaces or control characters")]
    InvalidUsername(String),
    /// The SMTP username is taken (by this or another account).
    #[error("username {0:?} is already taken")]
    CredentialExists(String),
    /// A dashboard user with this email exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// A dashboard member or viewer was given no account.
    #[error("a {0} needs an account (--account)")]
    AccountRequired(&'static str),
    /// The password is shorter than [`MIN_PASSWORD_CHARS`](crate::MIN_PASSWORD_CHARS).
    #[error("password too short: use at least 8 characters")]
    WeakPassword,
    /// The domain is not a valid domain name (address literals are refused).
    #[error("invalid domain {0:?}")]
    InvalidDomain(String),
    /// The domain is registered already (by this or another account).
    #[error("domain {0:?} is already registered")]
    DomainExists(String),
    /// A DKIM key to store is unusable: a bad or repeated selector, or an empty
    /// key.
    #[error("invalid dkim key: {0}")]
    InvalidDkimKey(String),
    /// An address to put on a suppression list is not `local@domain` with a
    /// valid domain, holds control characters, or is over 254 characters.
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
    /// The operating system's random number generator failed (making a
    /// secret).
    #[error("the operating system random number generator failed: {0}")]
    Random(String),
    /// The database file could not be opened or created.
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        /// The file that was to be opened.
        path: PathBuf,
        /// Why it failed.
        source: sqlx::Error,
    },
    /// The PostgreSQL server could not be reached, refused the login, or the
    /// URL is malformed.
    #[error("cannot connect to the database {url}: {source}")]
    Connect {
        /// The URL, without its password.
        url: String,
        /// Why it failed.
        source: sqlx::Error,
    },
    /// The database was migrated by a newer version of Carteiro, which this
    /// one refuses to touch.
    #[error(
        "the database schema is at version {found}, newer than this Carteiro knows (up to {known}): \
         run the newer Carteiro, or upgrade this one"
    )]
    SchemaTooNew {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest migration this build carries.
        known: i64,
    },
    /// Bringing the schema up to date failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Hashing or checking a password failed (not a wrong password: that is
    /// `Ok(None)` from `verify_credential`).
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// The task running the password hash panicked or was cancelled.
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A row holds a value this version cannot read.
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
}

/// A name that is not one of a fixed set (an event type, a message source, a
/// DKIM algorithm): what callers get from `FromStr` on those enums.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// What kind of name was expected ("event type", ...).
    pub what: &'static str,
    /// The name given.
    pub value: String,
}

/// A stored value this version does not know is corrupt data.
impl From<UnknownValue> for StoreError {
    fn from(error: UnknownValue) -> StoreError {
        StoreError::Corrupt(error.to_string())
    }
}

/// Whether a query failed on a FOREIGN KEY constraint, whichever the backend.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Whether a query failed on a UNIQUE constraint, whichever the backend.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl StoreError {
    /// Whether the failure is the store's condition rather than the data's:
    /// the disk is full, an I/O error, the database busy, locked or
    /// unreachable. Writing the same thing again later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Open { .. } | StoreError::Connect { .. } => true,
            StoreError::Database(error) => is_transient(error),
            _ => false,
        }
    }
}

/// SQLite's primary result codes that say "not now" rather than "never".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_PROTOCOL: i64 = 15;

/// PostgreSQL's SQLSTATE classes and codes that say "not now": connection
/// exceptions (08), insufficient resources (53: disk full, out of memory, too
/// many connections), operator intervention (57P01-57P05: shutdown, crash,
/// cannot connect now), a serialization failure or deadlock (40001, 40P01),
/// a lock not available (55P03) and a read-only transaction (25006: a
/// standby during failover).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "40001" | "40P01" | "55P03" | "25006")
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        // A connection cut mid-exchange (a server or proxy going away during
        // the start-up or TLS negotiation) reads as a protocol error: the
        // next connection may well work, and treating it as permanent would
        // drop the event writer's batch.
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                return is_transient_sqlstate(pg.code());
            }
            db.try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .and_then(sqlx::error::DatabaseError::code)
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| {
                    matches!(
                        code & 0xff,
                        SQLITE_BUSY
                            | SQLITE_LOCKED
                            | SQLITE_NOMEM
                            | SQLITE_READONLY
                            | SQLITE_IOERR
                            | SQLITE_FULL
                            | SQLITE_CANTOPEN
                            | SQLITE_PROTOCOL
                    )
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_of_an_unreachable_or_overloaded_server_are_transient() {
        for code in [
            "08006", "08001", "53100", "53300", "57P01", "57P03", "40001", "40P01",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "23503", "42601", "42P01", "22001"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn a_connection_cut_during_start_up_is_transient() {
        let cut = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(StoreError::Database(cut).is_transient());
        assert!(!StoreError::InvalidName("Bad Name".into()).is_transient());
    }
}
