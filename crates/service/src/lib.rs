//! Carteiro's mail path, between the protocol crates and the store: what
//! happens to a message once a client has handed it over, and to every
//! report about it afterwards.
//!
//! - [`intake`]: every message (SMTP or HTTP) goes through [`Intake::accept`]:
//!   the sending policy ([`sending`]: From domain, Message-ID/Date, tracking,
//!   DKIM), the spool (durable before anyone hears "accepted"), the message
//!   record and its `received` events, the queue.
//! - [`smtp`] and [`api`]: the SMTP server's [`Handler`](carteiro_smtp_server::Handler)
//!   and the HTTP API's [`Submitter`](carteiro_http::Submitter), thin
//!   adapters onto the intake, [`inbound`] and [`tracking`].
//! - [`inbound`]: mail for Carteiro's own addresses (bounces, complaints,
//!   mailto unsubscribes).
//! - [`outcome`]: the delivery engine's outcomes as events, and the one
//!   function that records an event and, when the address is at fault,
//!   suppresses it.
//! - [`queue`]: the queue as the spool holds it, opened one way for the
//!   server and the CLI.
//! - [`suppress`]: the suppression lists in memory.
//! - [`webhooks`]: the dispatcher that POSTs the event log to endpoints.
//! - [`alerts`]: conditions of the whole server (a full spool disk) as
//!   `alert` events for every account.
//!
//! What it must not know: processes, signals, the configuration file's
//! location or the data directory's layout (the binary passes in opened
//! stores, spools and settings); SMTP or HTTP framing (the protocol crates
//! own them); SQL (the store's methods only).

pub mod alerts;
pub mod api;
pub mod domains;
pub mod inbound;
pub mod intake;
pub mod metrics;
pub mod outcome;
pub mod queue;
pub mod records;
pub mod sending;
pub mod smtp;
pub mod suppress;
#[cfg(test)]
mod testing;
pub mod tracking;
pub mod webhooks;

pub use api::ApiSubmitter;
pub use inbound::Inbound;
pub use intake::{Incoming, Intake, IntakeError};
pub use outcome::{Recorder, StoreEvents};
pub use sending::{Prepared, Refusal, SendingPolicy, Signers};
pub use smtp::SmtpHandler;
pub use suppress::Suppressions;
pub use tracking::{Tracker, TrackingPlan};
