//! Test fixtures for Carteiro's tests: a recording SMTP server ([`sink`]), an
//! in-process DNS server ([`dns`]), self-signed TLS material ([`tls`]) and a
//! runner for the real `carteiro` binary ([`process`]).
//!
//! Only tests depend on this crate; it must never become a dependency of the
//! shipped binary. Its servers listen on loopback only and keep everything in
//! memory. Failures in fixture setup panic or return `anyhow` errors, since
//! the caller is always a test.

pub mod dns;
pub mod process;
pub mod sink;
pub mod tls;

pub use dns::DnsFixture;
pub use process::{Carteiro, free_port};
pub use sink::{ReceivedMessage, SinkBuilder, SinkReply, SmtpSink};
