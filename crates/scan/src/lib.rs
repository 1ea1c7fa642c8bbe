//! The scanners Carteiro asks about a message before it takes it in:
//! [`Clamd`] (ClamAV's daemon, for viruses) and [`Rspamd`] (for spam).
//!
//! Each client speaks its scanner's own protocol and reports what the
//! scanner said, nothing more: a virus name or clean, rspamd's action,
//! score, symbols and the headers it wants added. What to do about a
//! verdict (reject, hold, tag), timeouts and what an unreachable scanner
//! means are the caller's: this crate knows no SMTP, no configuration file,
//! no spool and no accounts.

mod clamd;
pub(crate) mod rspamd;

pub use clamd::{Clamd, ClamdAddr, VirusScan};
pub use rspamd::{Rspamd, SpamAction, SpamCheck, SpamReport};

/// Why a scanner gave no verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// It could not be reached, or the connection broke.
    #[error("{scanner} unreachable: {detail}")]
    Unreachable {
        scanner: &'static str,
        detail: String,
    },
    /// It answered with an error (clamd's `... ERROR`, an HTTP error status,
    /// a message over clamd's `StreamMaxLength`).
    #[error("{scanner} failed: {detail}")]
    Failed {
        scanner: &'static str,
        detail: String,
    },
    /// Its answer could not be read.
    #[error("{scanner} answered something unreadable: {detail}")]
    Unreadable {
        scanner: &'static str,
        detail: String,
    },
}

#[cfg(test)]
mod tests;
