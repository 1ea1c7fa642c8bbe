//! Message-level types shared by every stage of Carteiro's mail path: addresses,
//! envelopes with their DSN parameters, SMTP replies, message ids, and the
//! transforms that build whole messages (delivery status notifications,
//! trace headers).
//!
//! This crate does no I/O (reading the wall clock aside, in `clock`): everything here works on plain values, so the SMTP
//! server, the spool, the queue and delivery can share one definition of each.

pub mod account;
pub mod address;
pub mod bounce;
pub mod clock;
pub mod compose;
pub mod dkim;
pub mod dns_records;
pub mod dsn;
pub mod envelope;
pub mod headers;
pub mod id;
pub mod log_safe;
pub mod provider;
pub mod reply;
pub mod trace;
pub mod tracking;
pub mod verp;

pub use account::AccountRef;
pub use address::{domain_of, format_path, split_address};
pub use envelope::{BodyType, Envelope, Notify, Recipient, Ret};
pub use id::MessageId;
pub use log_safe::LogSafe;
pub use reply::{Reply, Status};
