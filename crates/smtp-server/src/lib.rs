//! Carteiro's SMTP server: the listeners (relay on port 25, submission with
//! STARTTLS on 587, submissions with implicit TLS on 465) and one session
//! per connection, speaking ESMTP with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
//! ENHANCEDSTATUSCODES, CHUNKING, DSN, STARTTLS and AUTH PLAIN/LOGIN.
//!
//! The session enforces the relay policy (trusted networks or AUTH to
//! relay, only Carteiro's own domains otherwise) and every limit: line
//! length, message size, recipients, commands before a transaction, errors,
//! connections in total, per IP and per network (with a share kept for
//! trusted networks), idle time, the time a command line may take, the
//! minimum rate of message content, failed logins per IP and per username.
//!
//! What it does not do: store, queue or deliver. A finished message goes to
//! the [`Handler`], which answers whether it is safely stored; only then does
//! the client hear `250`.

pub mod data;
mod handler;
pub mod limits;
mod listener;
mod pace;
mod session;
pub mod tls;
pub mod user_throttle;

pub use handler::{AccountRef, AuthOutcome, Handler, IncomingMessage};
pub use listener::serve;
pub use session::run_session;

use carteiro_config::Config;
use limits::{AuthThrottle, ConnectionLimiter, ConnectionLimits};
use std::sync::Arc;
use user_throttle::UserThrottle;

/// The role of a listener, which decides TLS and authentication rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Port-25 role: trusted networks relay; others reach only own domains.
    Relay,
    /// Port-587 role: STARTTLS, then AUTH before any mail.
    Submission,
    /// Port-465 role: implicit TLS, then AUTH before any mail.
    Submissions,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Relay => "relay",
            Role::Submission => "submission",
            Role::Submissions => "submissions",
        }
    }

    fn requires_auth(self) -> bool {
        !matches!(self, Role::Relay)
    }
}

/// Everything the sessions of all listeners share.
pub struct ServerContext<H> {
    pub config: Arc<Config>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub handler: H,
    pub limiter: Arc<ConnectionLimiter>,
    pub auth_throttle: AuthThrottle,
    /// Failed logins per username, across IPs.
    pub user_throttle: UserThrottle,
}

impl<H: Handler> ServerContext<H> {
    pub fn new(
        config: Arc<Config>,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: H,
    ) -> Arc<ServerContext<H>> {
        let smtp = &config.smtp;
        Arc::new(ServerContext {
            limiter: ConnectionLimiter::new(ConnectionLimits::from_config(smtp)),
            auth_throttle: AuthThrottle::new(smtp.auth_max_failures, smtp.auth_failure_window),
            user_throttle: UserThrottle::new(
                smtp.auth_user_max_failures,
                smtp.auth_user_max_delay,
                smtp.auth_failure_window,
            ),
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            config,
            handler,
        })
    }
}
