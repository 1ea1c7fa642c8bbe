//! Carteiro's relational data: accounts and their SMTP credentials, kept in one
//! SQLite file in the data directory (later: domains, API keys, events,
//! statistics, suppression lists, and a PostgreSQL backend).
//!
//! A running server and a CLI process open the same file at the same time, so the
//! database runs in WAL mode with a busy timeout, and every write is one statement
//! (or one short transaction) that the database itself keeps consistent: nothing
//! here relies on in-process state being the only writer.
//!
//! This crate does not know SMTP, HTTP or configuration files: it stores and
//! checks data, and leaves policy (who may relay, what a login may send) to the
//! crates that call it. It never returns or logs a password hash or a password.
//!
//! Layout: one module per table group (`accounts`, `credentials`), with the SQL
//! written once with `$N` placeholders so the same text can serve PostgreSQL;
//! schema changes live in `migrations/sqlite/NNNN_name.sql`.

mod accounts;
mod credentials;
mod error;
mod password;
mod store;

pub use accounts::Account;
pub use credentials::Credential;
pub use error::StoreError;
pub use password::{MIN_PASSWORD_CHARS, generate_password};
pub use store::Store;

#[cfg(test)]
mod testutil;
