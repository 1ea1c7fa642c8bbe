//! The errors of outbound delivery: DNS resolution failures and SMTP client
//! failures, each able to say whether it is permanent and to produce the
//! `Reply` that gets recorded for the recipients it affected.
//!
//! This module only classifies; it never decides about retries or bounces
//! (that is the queue's business).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use carteiro_mail::{Reply, Status};

/// Why a destination domain could not be turned into addresses to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// NXDOMAIN: the domain does not exist.
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    #[error("domain {0} accepts no mail (null MX)")]
    NullMx(String),
    /// The domain exists but has neither MX nor A/AAAA records.
    #[error("domain {0} has no mail server (no MX, A or AAAA records)")]
    NoMailHost(String),
    /// MX records exist but none of the exchanges resolved to an address.
    #[error("no address found for the mail servers of {0}")]
    NoAddresses(String),
    /// The name is not a valid domain name or address literal.
    #[error("invalid domain name {0:?}")]
    InvalidName(String),
    /// SERVFAIL, timeouts, unreachable name servers: try again later.
    #[error("DNS lookup failed: {0}")]
    Temporary(String),
    /// The resolver could not be configured (bad system configuration).
    #[error("cannot configure the DNS resolver: {0}")]
    Config(String),
}

impl ResolveError {
    /// Whether retrying later cannot help (the domain is gone or refuses mail).
    pub fn is_permanent(&self) -> bool {
        match self {
            ResolveError::NoSuchDomain(_)
            | ResolveError::NullMx(_)
            | ResolveError::NoMailHost(_)
            | ResolveError::InvalidName(_) => true,
            ResolveError::NoAddresses(_) | ResolveError::Temporary(_) | ResolveError::Config(_) => {
                false
            }
        }
    }

    /// A synthetic reply to record for every recipient of the domain.
    pub fn reply(&self) -> Reply {
        let (code, status) = match self {
            ResolveError::NoSuchDomain(_) => (550, Status(5, 1, 2)),
            ResolveError::NullMx(_) => (556, Status(5, 1, 10)),
            ResolveError::NoMailHost(_) => (550, Status(5, 1, 2)),
            ResolveError::InvalidName(_) => (550, Status(5, 1, 2)),
            ResolveError::NoAddresses(_) => (451, Status(4, 4, 4)),
            ResolveError::Temporary(_) => (451, Status(4, 4, 3)),
            ResolveError::Config(_) => (451, Status(4, 3, 0)),
        };
        Reply::new(code, Some(status), self.to_string())
    }
}

/// The step of an SMTP conversation an error happened in, for messages such
/// as "timeout waiting for reply to DATA".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// The message body and the final reply after it (DATA's end or BDAT).
    DataBody,
    Bdat,
    Rset,
    Noop,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::DataBody => "end of DATA",
            Stage::Bdat => "BDAT",
            Stage::Rset => "RSET",
            Stage::Noop => "NOOP",
            Stage::Quit => "QUIT",
        })
    }
}

/// A failure of the SMTP conversation as a whole (not of one recipient:
/// refused recipients come back in [`crate::SendOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be established.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// No answer (or no progress writing) within the configured timeout.
    #[error("timeout at {stage} with {addr}")]
    Timeout { addr: SocketAddr, stage: Stage },
    /// Reading or writing the socket failed.
    #[error("i/o error at {stage} with {addr}: {source}")]
    Io {
        addr: SocketAddr,
        stage: Stage,
        #[source]
        source: io::Error,
    },
    /// The server closed the connection when a reply was expected.
    #[error("connection closed by {addr} at {stage}")]
    Closed { addr: SocketAddr, stage: Stage },
    /// The server sent something that is not an SMTP reply.
    #[error("protocol error at {stage} with {addr}: {message}")]
    Protocol {
        addr: SocketAddr,
        stage: Stage,
        message: String,
    },
    /// The server refused a session command: a 4xx/5xx greeting, EHLO (and
    /// HELO), STARTTLS, AUTH, RSET or NOOP. Carries the remote reply.
    #[error("{stage} rejected by {addr}: {reply}")]
    Rejected {
        addr: SocketAddr,
        stage: Stage,
        reply: Reply,
    },
    /// The TLS handshake after STARTTLS failed under the opportunistic
    /// policy: the same host can be tried again without TLS.
    #[error("TLS handshake with {addr} failed: {source}")]
    TlsHandshake {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// TLS is required but could not be had (not offered, refused, or the
    /// handshake failed).
    #[error("TLS required but unavailable with {addr}: {reason}")]
    TlsRequired { addr: SocketAddr, reason: String },
    /// Credentials are configured but the server offers neither PLAIN nor LOGIN.
    #[error("{addr} offers no supported authentication mechanism")]
    AuthUnavailable { addr: SocketAddr },
    /// Credentials are configured but the connection is not encrypted (and
    /// the TLS policy is not `None`): they are never sent in clear text.
    #[error("refusing to send credentials to {addr} without TLS")]
    AuthWithoutTls { addr: SocketAddr },
    /// The client was used after the server closed the session (421) or an
    /// earlier error left the connection in an unknown state.
    #[error("connection to {addr} is no longer usable")]
    Unusable { addr: SocketAddr },
    /// A recipient index did not point into the envelope (a caller bug).
    #[error("recipient index {index} is out of range")]
    RecipientIndex { index: usize },
}

impl ClientError {
    /// The reply to record for the recipients this error affected: the remote
    /// reply when there is one, a synthetic 4xx otherwise.
    pub fn reply(&self) -> Reply {
        let synthetic = |code: u16, status: Status, text: String| {
            Reply::new(code, Some(status), Cow::Owned(text))
        };
        match self {
            ClientError::Connect { addr, source } => {
                let text = match source.kind() {
                    io::ErrorKind::ConnectionRefused => format!("connection refused by {addr}"),
                    _ => format!("cannot connect to {addr}: {source}"),
                };
                synthetic(451, Status(4, 4, 1), text)
            }
            ClientError::Timeout { addr, stage } => {
                let text = match stage {
                    Stage::Connect => format!("timeout connecting to {addr}"),
                    Stage::TlsHandshake => format!("timeout in TLS handshake with {addr}"),
                    _ => format!("timeout waiting for reply to {stage} from {addr}"),
                };
                let status = if *stage == Stage::Connect {
                    Status(4, 4, 1)
                } else {
                    Status(4, 4, 2)
                };
                synthetic(451, status, text)
            }
            ClientError::Io { .. } | ClientError::Closed { .. } => {
                synthetic(451, Status(4, 4, 2), self.to_string())
            }
            ClientError::Protocol { .. } => synthetic(451, Status(4, 5, 0), self.to_string()),
            ClientError::Rejected { reply, .. } => reply.clone(),
            ClientError::TlsHandshake { .. } => synthetic(451, Status(4, 7, 5), self.to_string()),
            ClientError::TlsRequired { .. } => synthetic(451, Status(4, 7, 10), self.to_string()),
            ClientError::AuthUnavailable { .. } | ClientError::AuthWithoutTls { .. } => {
                synthetic(451, Status(4, 7, 0), self.to_string())
            }
            ClientError::Unusable { .. } => synthetic(451, Status(4, 4, 2), self.to_string()),
            ClientError::RecipientIndex { .. } => synthetic(451, Status(4, 3, 0), self.to_string()),
        }
    }

    /// Whether the message must fail for good because of this error. Never:
    /// a connection-level failure (even a 5xx greeting or a rejected login)
    /// says something about this host, not about the message, so other hosts
    /// or a later attempt may still succeed. Explicit 5xx replies to MAIL,
    /// RCPT or DATA are permanent, and they come back in `SendOutcome`.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Io { .. }
            | ClientError::Closed { .. }
            | ClientError::Protocol { .. }
            | ClientError::Rejected { .. }
            | ClientError::TlsHandshake { .. }
            | ClientError::TlsRequired { .. }
            | ClientError::AuthUnavailable { .. }
            | ClientError::AuthWithoutTls { .. }
            | ClientError::Unusable { .. }
            | ClientError::RecipientIndex { .. } => false,
        }
    }

    /// Whether the TLS handshake failed under the opportunistic policy: the
    /// caller should connect to the same host again with `TlsPolicy::None`.
    pub fn is_tls_failure(&self) -> bool {
        matches!(self, ClientError::TlsHandshake { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 25))
    }

    #[test]
    fn resolve_errors_have_replies() {
        let nx = ResolveError::NoSuchDomain("x.test".into());
        assert!(nx.is_permanent());
        assert_eq!(
            nx.reply().to_string(),
            "550 5.1.2 domain x.test does not exist"
        );
        let null = ResolveError::NullMx("x.test".into());
        assert_eq!(
            null.reply().to_string(),
            "556 5.1.10 domain x.test accepts no mail (null MX)"
        );
        let tmp = ResolveError::Temporary("timeout".into());
        assert!(!tmp.is_permanent());
        assert_eq!(
            tmp.reply().to_string(),
            "451 4.4.3 DNS lookup failed: timeout"
        );
        assert!(!ResolveError::NoAddresses("x.test".into()).is_permanent());
    }

    #[test]
    fn client_errors_have_replies() {
        let refused = ClientError::Connect {
            addr: addr(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(
            refused.reply().to_string(),
            "451 4.4.1 connection refused by 127.0.0.1:25"
        );
        let timeout = ClientError::Timeout {
            addr: addr(),
            stage: Stage::Data,
        };
        assert_eq!(
            timeout.reply().to_string(),
            "451 4.4.2 timeout waiting for reply to DATA from 127.0.0.1:25"
        );
        let greeting = ClientError::Rejected {
            addr: addr(),
            stage: Stage::Greeting,
            reply: Reply::new(554, None, "go away"),
        };
        assert_eq!(greeting.reply().to_string(), "554 go away");
        assert!(!greeting.is_permanent());
        assert!(!greeting.is_tls_failure());
    }
}
