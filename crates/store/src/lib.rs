//! Carteiro's relational data, kept in one SQLite file in the data directory or
//! in a PostgreSQL database that several nodes share:
//! accounts and their SMTP credentials, sending domains with their DKIM keys,
//! HTTP API keys, the record of every accepted message with its event log,
//! per-account suppression lists with their audit log, webhook endpoints with
//! their delivery cursors, the installation's named secrets, and statistics
//! rollups kept as events are written.
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
//! Message records and events come from the mail path, which must never wait on
//! SQL: they go through the [`EventWriter`], a task that writes them in batches
//! (one transaction each, a few milliseconds apart) on its own connection. Its
//! batch statements unpack JSON arrays, the one place the two backends need
//! SQL texts of their own (`backend.rs` builds them).
//!
//! Layout: one module per table group (`accounts`, `credentials`, `domains`,
//! `api_keys`, `messages`, `events`, `suppressions`, `secrets`, `webhooks`, `tracking`, `cluster`; `event_batch`
//! writes a batch and `event_writer` runs the task; `generation` is the change
//! counter a server polls), with the SQL written once with `$N` placeholders so the same text
//! can serve PostgreSQL; schema changes live in `migrations/sqlite/NNNN_name.sql`,
//! each with its PostgreSQL twin in `migrations/postgres/` (same number and name;
//! `tests/schema_parity.rs` compares the two).

mod accounts;
mod api_keys;
mod backend;
mod cluster;
mod credentials;
mod domains;
mod error;
mod event_batch;
mod event_details;
mod event_journal;
mod event_writer;
mod events;
mod generation;
mod messages;
mod password;
mod secrets;
mod stats;
mod store;
mod suppressions;
mod tracking;
mod ui_users;
mod webhooks;

pub use accounts::Account;
pub use api_keys::ApiKey;
pub use backend::Backend;
pub use cluster::{Lease, NODE_SILENT_AFTER_MS, NodeStatus, WEBHOOKS_LEASE};
pub use credentials::Credential;
pub use domains::{DkimAlgorithm, DkimKey, Domain, KeyState, NewDkimKey};
pub use error::{StoreError, UnknownValue};
pub use event_details::{
    AlertDetails, BounceReportDetails, ComplaintDetails, DeliveryDetails, EngagementDetails,
    EventDetails, ReceivedDetails, SmtpClientDetails, SuppressedDetails, UnsubscribeDetails,
};
pub use event_journal::EventJournal;
pub use event_writer::{DEFAULT_LINGER, EventWriter, MAX_BATCH};
pub use events::{EventKind, EventRecord, MAX_EVENTS_PAGE, NewEvent, RECIPIENT_STATES};
pub use messages::{
    MAX_MESSAGES_PAGE, MAX_STORED_HEADERS, MessageFilter, MessageHeaders, MessageRecipient,
    MessageRecord, MessageSource, NewMessage, RecipientRecord,
};
pub use password::{MIN_PASSWORD_CHARS, generate_password};
pub use stats::{DAY_SECONDS, HOUR_SECONDS, StatsCounts, StatsFilter, StatsGroup, StatsRow};
pub use store::Store;
pub use suppressions::{
    MAX_SUPPRESSIONS_PAGE, Suppression, SuppressionChange, SuppressionReason, suppression_address,
};
pub use tracking::Engagement;
pub use ui_users::{Role, UiSession, User};
pub use webhooks::{
    MAX_WEBHOOK_BATCH, WEBHOOK_FAILING_AFTER, Webhook, WebhookEvent, WebhookStatus, event_id_floor,
};

#[cfg(test)]
mod testutil;
