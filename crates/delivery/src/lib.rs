//! Outbound delivery for Carteiro: resolving a destination domain to the
//! mail servers to try (MX, RFC 5321 §5.1) and the SMTP client that hands
//! messages to them over kept-alive connections with PIPELINING, CHUNKING,
//! STARTTLS and a reply per recipient.
//!
//! The [`engine`] ties it together: it owns the queue's scheduler, keeps a
//! ready queue and a pool of connection workers per destination, records
//! every reply, persists state changes through the spool and sends delivery
//! status notifications for what failed. The client and resolver keep no
//! message state of their own.

pub mod client;
pub mod engine;
pub mod error;
pub mod resolve;

pub use client::{ClientSettings, SendOutcome, SmtpClient, TlsPolicy, verifying_tls_config};
pub use error::{ClientError, ResolveError, Stage};
pub use resolve::{LookupFailure, MxTarget, Resolver};
