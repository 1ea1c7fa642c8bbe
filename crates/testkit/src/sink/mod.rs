//! A recording SMTP server: the destination in delivery tests.
//!
//! It answers like a strict but simple MX (replies scripted per recipient and
//! per transaction) and records every accepted message exactly as received.
//! It must stay a test fixture: it listens on loopback addresses tests give
//! it, keeps everything in memory and never relays anything.

mod message;
mod session;
#[cfg(test)]
mod tests;

pub use message::ReceivedMessage;

use anyhow::bail;
use carteiro_mail::Reply;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// One scripted SMTP reply: a code and its text (which may start with an
/// enhanced status code, and may hold several lines separated by `\n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkReply {
    pub code: u16,
    pub text: String,
}

impl SinkReply {
    /// A reply such as `SinkReply::new(550, "5.1.1 no such user")`.
    pub fn new(code: u16, text: impl Into<String>) -> SinkReply {
        SinkReply {
            code,
            text: text.into(),
        }
    }

    /// Whether the client may go on (2xx or 3xx).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The wire form, CRLF terminated, multi-line when the text has several lines.
    pub fn to_wire(&self) -> String {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let separator = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{}{separator}{}\r\n", self.code, line.trim_end()));
        }
        out
    }
}

impl From<Reply> for SinkReply {
    fn from(reply: Reply) -> SinkReply {
        let text = match reply.status {
            Some(status) => format!("{status} {}", reply.text),
            None => reply.text.into_owned(),
        };
        SinkReply::new(reply.code, text)
    }
}

/// Settings fixed when the sink starts.
struct Settings {
    hostname: String,
    pipelining: bool,
    chunking: bool,
    dsn: bool,
    smtputf8: bool,
    eightbitmime: bool,
    max_size: usize,
    auth: Option<(String, String)>,
    greeting: SinkReply,
    /// `None` when STARTTLS is not offered.
    tls: Option<TlsAcceptor>,
}

/// What the sink has seen and the replies that may change while it runs.
#[derive(Default)]
struct State {
    rcpt_replies: HashMap<String, Script>,
    rcpt_attempts: HashMap<String, usize>,
    data_replies: Script,
    data_count: usize,
    messages: Vec<ReceivedMessage>,
}

struct Shared {
    state: Mutex<State>,
    connections: AtomicUsize,
    transactions: AtomicUsize,
    /// Bumped on every recorded event so waiters re-check their condition
    /// instead of sleeping.
    changes: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide what the
        // sink recorded from the test's own assertions.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

/// Replies for successive attempts, the last one repeating; `first` is the
/// attempt that gets `replies[0]` (a script set at run time starts with the
/// next attempt, not the first one ever made).
#[derive(Clone, Debug, Default)]
struct Script {
    first: usize,
    replies: Vec<SinkReply>,
}

impl Script {
    fn new(first: usize, replies: Vec<SinkReply>) -> Script {
        Script { first, replies }
    }

    /// The reply for `attempt` (counted from 0 over the sink's life), if any.
    fn reply(&self, attempt: usize) -> Option<SinkReply> {
        let index = attempt.saturating_sub(self.first);
        let last = self.replies.len().checked_sub(1)?;
        self.replies.get(index.min(last)).cloned()
    }
}

/// Configures a [`SmtpSink`]; see [`SmtpSink::builder`].
pub struct SinkBuilder {
    bind: SocketAddr,
    hostname: String,
    starttls: bool,
    pipelining: bool,
    chunking: bool,
    dsn: bool,
    smtputf8: bool,
    eightbitmime: bool,
    max_size: usize,
    auth: Option<(String, String)>,
    rcpt_replies: HashMap<String, Script>,
    data_replies: Script,
    greeting: Option<SinkReply>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl SinkBuilder {
    /// Address to listen on; default `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Name in the greeting, the EHLO reply and the self-signed certificate;
    /// default `sink.test`.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// Offer STARTTLS with a self-signed certificate (default true).
    pub fn starttls(mut self, on: bool) -> Self {
        self.starttls = on;
        self
    }

    /// Present this certificate chain and key for STARTTLS instead of a
    /// fresh self-signed one (for DANE or MTA-STS tests that must know it).
    pub fn tls_identity(
        mut self,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some((certs, key));
        self
    }

    /// Advertise PIPELINING (default true).
    pub fn pipelining(mut self, on: bool) -> Self {
        self.pipelining = on;
        self
    }

    /// Advertise and accept CHUNKING / BDAT (default false).
    pub fn chunking(mut self, on: bool) -> Self {
        self.chunking = on;
        self
    }

    /// Advertise and accept DSN parameters (default true); when off, RET,
    /// ENVID, NOTIFY and ORCPT are refused with 555.
    pub fn dsn(mut self, on: bool) -> Self {
        self.dsn = on;
        self
    }

    /// Advertise and accept SMTPUTF8 (default true); when off, the parameter
    /// is refused with 555.
    pub fn smtputf8(mut self, on: bool) -> Self {
        self.smtputf8 = on;
        self
    }

    /// Advertise and accept 8BITMIME (default true); when off,
    /// `BODY=8BITMIME` is refused with 555.
    pub fn eightbitmime(mut self, on: bool) -> Self {
        self.eightbitmime = on;
        self
    }

    /// Advertise `SIZE n` and refuse larger declared sizes with 552
    /// (default 0: `SIZE` without a limit).
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// Require AUTH PLAIN or LOGIN with these credentials before MAIL; when
    /// STARTTLS is offered, AUTH is only offered and accepted after it.
    pub fn auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some((username.into(), password.into()));
        self
    }

    /// The replies `address` gets to RCPT on successive attempts (over all
    /// connections); the last one repeats. Default: `250 2.1.5 ok`.
    pub fn rcpt_replies(mut self, address: &str, replies: Vec<SinkReply>) -> Self {
        self.rcpt_replies
            .insert(address.to_ascii_lowercase(), Script::new(0, replies));
        self
    }

    /// The replies to end-of-data on successive transactions; the last one
    /// repeats. Default: `250 2.0.0 queued`. A 4xx or 5xx reply means the
    /// message is not recorded.
    pub fn data_reply(mut self, replies: Vec<SinkReply>) -> Self {
        self.data_replies = Script::new(0, replies);
        self
    }

    /// The greeting; anything but 220 is sent and the connection closed
    /// (e.g. `421` to refuse connections).
    pub fn greeting(mut self, reply: SinkReply) -> Self {
        self.greeting = Some(reply);
        self
    }

    /// Binds and starts accepting connections.
    ///
    /// # Panics
    /// When the address cannot be bound (a test setup error).
    pub async fn start(self) -> SmtpSink {
        let listener = TcpListener::bind(self.bind)
            .await
            .unwrap_or_else(|err| panic!("smtp sink cannot bind {}: {err}", self.bind));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("smtp sink local address: {err}"));
        let (certs, key) = match self.identity {
            Some(identity) => identity,
            None => crate::tls::self_signed(&[&self.hostname, "localhost", "127.0.0.1"]),
        };
        let certificates = certs.clone();
        let tls = self
            .starttls
            .then(|| TlsAcceptor::from(crate::tls::server_config(certs, key)));
        let greeting = self.greeting.unwrap_or_else(|| {
            SinkReply::new(220, format!("{} ESMTP carteiro test sink", self.hostname))
        });
        let settings = Arc::new(Settings {
            hostname: self.hostname,
            pipelining: self.pipelining,
            chunking: self.chunking,
            dsn: self.dsn,
            smtputf8: self.smtputf8,
            eightbitmime: self.eightbitmime,
            max_size: self.max_size,
            auth: self.auth,
            greeting,
            tls,
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rcpt_replies: self.rcpt_replies,
                data_replies: self.data_replies,
                ..State::default()
            }),
            connections: AtomicUsize::new(0),
            transactions: AtomicUsize::new(0),
            changes: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(listener, settings, shared.clone()));
        SmtpSink {
            addr,
            shared,
            certificates,
            task: Mutex::new(Some(task)),
        }
    }
}

/// Accepts connections until the sink is shut down; dropping the `JoinSet`
/// (when this task is aborted) ends every open session with it.
async fn accept_loop(listener: TcpListener, settings: Arc<Settings>, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // Accept errors (a peer that reset before accept) concern one
                // connection only; keep serving the others.
                let Ok((stream, _peer)) = accepted else { continue };
                let index = shared.connections.fetch_add(1, Ordering::SeqCst);
                shared.changed();
                sessions.spawn(session::run(stream, index, settings.clone(), shared.clone()));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// A running recording SMTP server; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    certificates: Vec<CertificateDer<'static>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Starts configuring a sink (defaults: 127.0.0.1:0, STARTTLS, PIPELINING,
    /// 8BITMIME, SMTPUTF8 and DSN on, CHUNKING off, no AUTH, every reply 2xx).
    pub fn builder() -> SinkBuilder {
        SinkBuilder {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            hostname: "sink.test".to_string(),
            starttls: true,
            pipelining: true,
            chunking: false,
            dsn: true,
            smtputf8: true,
            eightbitmime: true,
            max_size: 0,
            auth: None,
            rcpt_replies: HashMap::new(),
            data_replies: Script::default(),
            greeting: None,
            identity: None,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate chain it presents after STARTTLS.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }

    /// A snapshot of the messages recorded so far, in order of end-of-data.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().messages.clone()
    }

    /// How many TCP connections it accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many transactions were started (MAIL commands answered 250).
    pub fn transactions(&self) -> usize {
        self.shared.transactions.load(Ordering::SeqCst)
    }

    /// How many RCPT commands named `address` (accepted or not).
    pub fn rcpt_attempts(&self, address: &str) -> usize {
        let key = address.to_ascii_lowercase();
        self.shared
            .lock()
            .rcpt_attempts
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Replaces the replies `address` gets from its next RCPT on (e.g. to
    /// switch a recipient from 451 to 250 between delivery attempts).
    pub fn set_rcpt_replies(&self, address: &str, replies: Vec<SinkReply>) {
        let key = address.to_ascii_lowercase();
        let mut state = self.shared.lock();
        let next = state.rcpt_attempts.get(&key).copied().unwrap_or(0);
        state.rcpt_replies.insert(key, Script::new(next, replies));
    }

    /// Replaces the end-of-data replies from the next transaction on.
    pub fn set_data_reply(&self, replies: Vec<SinkReply>) {
        let mut state = self.shared.lock();
        state.data_replies = Script::new(state.data_count, replies);
    }

    /// Waits until at least `n` messages are recorded and returns them; on
    /// timeout the error lists what was received.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedMessage>> {
        if self
            .wait_until(timeout, |state| state.messages.len() >= n)
            .await
        {
            return Ok(self.messages());
        }
        let messages = self.messages();
        let summary: Vec<String> = messages
            .iter()
            .map(|m| format!("<{}> -> {:?}", m.mail_from, m.rcpt_to))
            .collect();
        bail!(
            "smtp sink: expected {n} messages within {timeout:?}, got {} over {} connections: {summary:?}",
            messages.len(),
            self.connections()
        )
    }

    /// Waits until `address` has been tried at least `n` times at RCPT.
    pub async fn wait_for_rcpt_attempts(
        &self,
        address: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let key = address.to_ascii_lowercase();
        let reached = self
            .wait_until(timeout, |state| {
                state.rcpt_attempts.get(&key).copied().unwrap_or(0) >= n
            })
            .await;
        if !reached {
            bail!(
                "smtp sink: expected {n} RCPT attempts for {address} within {timeout:?}, got {}",
                self.rcpt_attempts(address)
            );
        }
        Ok(())
    }

    /// Waits until at least `n` connections were accepted.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let reached = self.wait_until(timeout, |_| self.connections() >= n).await;
        if !reached {
            bail!(
                "smtp sink: expected {n} connections within {timeout:?}, got {}",
                self.connections()
            );
        }
        Ok(())
    }

    /// Re-checks `done` on every change until it holds or `timeout` passes.
    async fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let mut changes = self.shared.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Mark the current version seen before checking, so a change
            // between the check and the wait still wakes us.
            changes.borrow_and_update();
            if done(&self.shared.lock()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                // The sender lives in `self`, so only the deadline ends this.
                _ => return done(&self.shared.lock()),
            }
        }
    }

    /// Stops accepting and closes every open session; waits until the
    /// listening socket is closed.
    pub async fn shutdown(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}
