//! What the SMTP server asks of the rest of Carteiro: checking credentials,
//! deciding about recipients at its own domains, and taking a finished
//! message. Implemented by the daemon (and by tests with plain values).

use crate::Role;
use bytes::Bytes;
use carteiro_mail::{Envelope, MessageId, Reply};
use std::future::Future;
use std::net::IpAddr;

use std::time::SystemTime;

pub use carteiro_mail::AccountRef;

/// The result of checking a username and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Accepted(AccountRef),
    Rejected,
    /// The credential store could not answer: a temporary failure.
    Unavailable,
}

/// A message whose content was received completely and checked; it is
/// acknowledged with `250` once [`Handler::accept_message`] returns `Ok`.
#[derive(Clone, Debug)]
pub struct IncomingMessage {
    pub id: MessageId,
    pub account: AccountRef,
    pub envelope: Envelope,
    /// The whole message as it will be relayed: our `Received:` header first.
    pub body: Bytes,
    /// Length of our `Received:` header at the start of `body`: the client's
    /// header section starts here.
    pub trace_len: usize,
    pub client_ip: IpAddr,
    pub helo: String,
    pub auth_user: Option<String>,
    pub tls: bool,
    pub role: Role,
    pub received_at: SystemTime,
}

/// The daemon's side of an SMTP session.
pub trait Handler: Send + Sync + 'static {
    /// Checks an SMTP login.
    fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> impl Future<Output = AuthOutcome> + Send;

    /// The account that owns mail relayed from trusted networks without
    /// authentication; `None` refuses such relaying with a temporary error.
    fn default_account(&self) -> Option<AccountRef>;

    /// Whether `address` is one of Carteiro's own (bounce, complaint and
    /// unsubscribe addresses): `None` when it is not (the relay policy
    /// applies), `Some(Ok)` when it is and takes mail from anyone, `Some(Err)`
    /// with the reply when it is at one of our domains but not an address
    /// that takes mail. Our own addresses are never relayed, whoever sends.
    fn local_recipient(&self, address: &str) -> Option<Result<(), Reply>>;

    /// Makes the message durable and queues it. `Ok` means the client may be
    /// told `250`; `Err` is the reply to give instead (e.g. `452 4.3.1`).
    fn accept_message(
        &self,
        message: IncomingMessage,
    ) -> impl Future<Output = Result<(), Reply>> + Send;
}
