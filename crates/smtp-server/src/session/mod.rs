//! One SMTP session over any byte stream: reading commands (pipelined or
//! not), answering them in order, and the transaction state. The commands
//! themselves live in one file each.

mod auth;
mod data;
mod ehlo;
mod mail;

use crate::handler::{AccountRef, Handler};
use crate::{Role, ServerContext};
use bytes::{Buf, Bytes, BytesMut};
use carteiro_mail::{Envelope, MessageId, Reply};
use carteiro_net::MaybeTls;
use smtp_proto::Request;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// Longest command line accepted (RFC 5321 allows 512; AUTH responses and
/// extension parameters need more, RFC 4954 §4 suggests 12288 for AUTH).
const MAX_COMMAND_LINE: usize = 12288;
const READ_CHUNK: usize = 16 * 1024;
/// Time a reply that ends the session (and the TLS close) may take to be
/// written: a client that stopped reading must not hold the connection.
const CLOSING_WRITE: Duration = Duration::from_secs(5);

/// Which limit ended a wait for input, and so the `421` the client hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// `idle_timeout`: nothing arrived for that long.
    Idle,
    /// `command_timeout`: a command line was not complete in time.
    CommandLine,
    /// `min_data_rate`: message content fell too far behind.
    DataRate,
}

impl Expiry {
    fn reply(self) -> Reply {
        match self {
            Expiry::Idle => Reply::TIMEOUT,
            Expiry::CommandLine => Reply::COMMAND_TIMEOUT,
            Expiry::DataRate => Reply::DATA_TIMEOUT,
        }
    }
}

/// Whether the session goes on after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// The mail transaction between MAIL and the end of the message.
pub(crate) struct Transaction {
    id: MessageId,
    envelope: Envelope,
    account: Option<AccountRef>,
    declared_size: usize,
    /// Content gathered from BDAT chunks so far.
    bdat: Option<data::BdatState>,
}

pub(crate) struct Session<H, S> {
    ctx: Arc<ServerContext<H>>,
    stream: MaybeTls<S>,
    role: Role,
    peer: SocketAddr,
    rbuf: BytesMut,
    out: Vec<u8>,
    helo: Option<String>,
    esmtp: bool,
    auth: Option<(String, AccountRef)>,
    trusted: bool,
    tx: Option<Transaction>,
    /// Commands since the last MAIL that did not start a transaction.
    idle_commands: usize,
    errors: usize,
    shutdown: watch::Receiver<bool>,
}

/// Runs one session to its end. With `Role::Submissions` the TLS handshake
/// comes first.
pub async fn run_session<H, S>(
    ctx: Arc<ServerContext<H>>,
    stream: S,
    peer: SocketAddr,
    role: Role,
    shutdown: watch::Receiver<bool>,
) where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let trusted = ctx.config.smtp.is_trusted(peer.ip());
    let mut session = Session {
        ctx,
        stream: MaybeTls::Plain(stream),
        role,
        peer,
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(1024),
        helo: None,
        esmtp: false,
        auth: None,
        trusted,
        tx: None,
        idle_commands: 0,
        errors: 0,
        shutdown,
    };
    match session.run().await {
        Ok(()) => {}
        Err(err) => tracing::debug!(error = %err, "session ended"),
    }
    // A TLS close writes: bounded like any other write to the client.
    let _ = tokio::time::timeout(CLOSING_WRITE, session.stream.shutdown()).await;
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin + Send> Session<H, S> {
    async fn run(&mut self) -> io::Result<()> {
        if self.role == Role::Submissions {
            let Some(acceptor) = self.ctx.tls.clone() else {
                return Err(io::Error::other(
                    "implicit TLS listener without certificate",
                ));
            };
            self.tls_handshake(&acceptor).await?;
        }
        let greeting = format!("{} ESMTP Carteiro", self.ctx.config.hostname);
        self.reply(&Reply::new(220, None, greeting));
        loop {
            let Some(line) = self.next_line(true).await? else {
                return Ok(());
            };
            if self.handle_line(line).await? == Flow::Close {
                self.flush_by(Instant::now() + CLOSING_WRITE).await?;
                return Ok(());
            }
        }
    }

    /// Queues a reply; replies are written when the session next waits for
    /// input, so a pipelined group gets its answers in one write.
    fn reply(&mut self, reply: &Reply) {
        if reply.code >= 500 {
            self.errors += 1;
        }
        reply.write_to(&mut self.out);
    }

    /// Writes the queued replies, giving up at `deadline`: a client that
    /// does not read its replies must not hold the session.
    async fn flush_by(&mut self, deadline: Instant) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client does not read its replies",
                ));
            }
        }
        self.out.clear();
        Ok(())
    }

    /// Flushes pending replies and reads more input. `Ok(false)` at the end
    /// of the stream, or when a limit ended the wait (the client was told
    /// `421`). Nothing may take longer than `idle_timeout`, and nothing
    /// longer than `limit` when it comes first. When `interruptible`
    /// (waiting for a command) a server shutdown ends the wait too.
    async fn fill(
        &mut self,
        limit: Option<(Instant, Expiry)>,
        interruptible: bool,
    ) -> io::Result<bool> {
        // One clock read per wait: the idle deadline is needed anyway.
        let idle = Instant::now() + self.ctx.config.smtp.idle_timeout;
        let (deadline, expiry) = match limit {
            Some((at, expiry)) if at < idle => (at, expiry),
            _ => (idle, Expiry::Idle),
        };
        self.flush_by(deadline).await?;
        self.rbuf.reserve(READ_CHUNK);
        let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf));
        let result = if interruptible {
            let mut shutdown = self.shutdown.clone();
            let stopped = async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            tokio::select! {
                result = read => Some(result),
                () = stopped => None,
            }
        } else {
            Some(read.await)
        };
        let Some(result) = result else {
            self.reply(&Reply::SHUTTING_DOWN);
            self.flush_by(Instant::now() + CLOSING_WRITE).await?;
            return Ok(false);
        };
        match result {
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(err)) => Err(err),
            Err(_) => {
                tracing::info!(peer = %self.peer, ?expiry, "client timed out, disconnected");
                self.reply(&expiry.reply().with_host(&self.ctx.config.hostname));
                self.flush_by(Instant::now() + CLOSING_WRITE).await?;
                Ok(false)
            }
        }
    }

    /// The next input line, CRLF included. Over-long lines are answered with
    /// `500 5.5.6` and skipped. `None` when the client went away or was cut.
    /// Once its first byte is here, a line must be complete within
    /// `command_timeout`, however its bytes trickle in.
    async fn next_line(&mut self, interruptible: bool) -> io::Result<Option<Bytes>> {
        let mut discarding = false;
        // Read the clock only for a line split over reads, never for one
        // that arrives whole.
        let mut line_deadline: Option<Instant> = None;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.rbuf) {
                let line = self.rbuf.split_to(pos + 1).freeze();
                if discarding {
                    discarding = false;
                    line_deadline = None;
                    self.reply(&Reply::LINE_TOO_LONG);
                    if self.errors > self.ctx.config.smtp.max_errors {
                        return Ok(None);
                    }
                    continue;
                }
                return Ok(Some(line));
            }
            if self.rbuf.len() > MAX_COMMAND_LINE {
                discarding = true;
                self.rbuf.clear();
            }
            let limit = if self.rbuf.is_empty() && !discarding {
                None
            } else {
                let command_timeout = self.ctx.config.smtp.command_timeout;
                let at = *line_deadline.get_or_insert_with(|| Instant::now() + command_timeout);
                Some((at, Expiry::CommandLine))
            };
            if !self.fill(limit, interruptible).await? {
                return Ok(None);
            }
        }
    }

    async fn handle_line(&mut self, line: Bytes) -> io::Result<Flow> {
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(err) => {
                self.reply(&parse_error_reply(&err));
                return Ok(self.check_errors());
            }
        };
        let counts_as_idle = !matches!(
            request,
            Request::Mail { .. }
                | Request::Rcpt { .. }
                | Request::Data
                | Request::Bdat { .. }
                | Request::Quit
        );
        if counts_as_idle {
            self.idle_commands += 1;
            if self.idle_commands > self.ctx.config.smtp.max_commands_before_mail {
                self.reply(&Reply::TOO_MANY_COMMANDS);
                return Ok(Flow::Close);
            }
        }
        let flow = match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Lhlo { .. } => {
                self.reply(&Reply::UNKNOWN_COMMAND);
                Flow::Continue
            }
            Request::StartTls => self.starttls().await?,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response).await?,
            Request::Mail { from } => self.mail(from, &line).await,
            Request::Rcpt { to } => self.rcpt(to, &line),
            Request::Data => self.data().await?,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await?,
            Request::Rset => {
                self.tx = None;
                self.reply(&Reply::RESET_OK);
                Flow::Continue
            }
            Request::Noop { .. } => {
                self.reply(&Reply::NOOP_OK);
                Flow::Continue
            }
            Request::Quit => {
                self.reply(&Reply::BYE);
                Flow::Close
            }
            Request::Vrfy { .. } => {
                self.reply(&Reply::VRFY_CANNOT);
                Flow::Continue
            }
            Request::Help { .. } => {
                self.reply(&Reply::new(
                    214,
                    Some(carteiro_mail::Status(2, 0, 0)),
                    "see RFC 5321; Carteiro relays mail for its users",
                ));
                Flow::Continue
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.reply(&Reply::NOT_IMPLEMENTED);
                Flow::Continue
            }
        };
        if flow == Flow::Close {
            return Ok(Flow::Close);
        }
        Ok(self.check_errors())
    }

    /// Closes sessions that keep sending bad commands.
    fn check_errors(&mut self) -> Flow {
        if self.errors > self.ctx.config.smtp.max_errors {
            self.reply(&Reply::TOO_MANY_ERRORS);
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    async fn starttls(&mut self) -> io::Result<Flow> {
        let Some(acceptor) = self.ctx.tls.clone() else {
            self.reply(&Reply::TLS_UNAVAILABLE);
            return Ok(Flow::Continue);
        };
        if self.stream.is_tls() {
            self.reply(&Reply::ALREADY_TLS);
            return Ok(Flow::Continue);
        }
        if self.helo.is_none() {
            self.reply(&Reply::NEED_HELO);
            return Ok(Flow::Continue);
        }
        self.reply(&Reply::READY_TLS);
        self.flush_by(Instant::now() + self.ctx.config.smtp.idle_timeout)
            .await?;
        // Anything the client pipelined after STARTTLS was sent in plain
        // text and must not be taken as if it came over TLS.
        self.rbuf.clear();
        self.tls_handshake(&acceptor).await?;
        // RFC 3207 §4.2: the session starts over.
        self.helo = None;
        self.esmtp = false;
        self.auth = None;
        self.tx = None;
        Ok(Flow::Continue)
    }

    /// A TLS handshake is a few kilobytes each way: it gets
    /// `command_timeout`, like a command line, not `idle_timeout`.
    async fn tls_handshake(&mut self, acceptor: &tokio_rustls::TlsAcceptor) -> io::Result<()> {
        let timeout = self.ctx.config.smtp.command_timeout;
        match tokio::time::timeout(timeout, self.stream.accept(acceptor)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake")),
        }
    }

    fn tls_active(&self) -> bool {
        self.stream.is_tls()
    }

    /// May this client relay to any domain?
    fn may_relay(&self) -> bool {
        self.auth.is_some() || (self.trusted && self.role == Role::Relay)
    }
}

fn parse_error_reply(err: &smtp_proto::Error) -> Reply {
    use smtp_proto::Error;
    match err {
        Error::UnknownCommand => Reply::UNKNOWN_COMMAND,
        Error::InvalidSenderAddress => Reply::BAD_SENDER,
        Error::InvalidRecipientAddress => Reply::BAD_RECIPIENT,
        Error::SyntaxError { syntax } => {
            Reply::SYNTAX_ERROR.with_text(format!("syntax error, expected: {syntax}"))
        }
        Error::InvalidParameter { param } => {
            Reply::BAD_ARGUMENTS.with_text(format!("invalid value for parameter {param}"))
        }
        Error::UnsupportedParameter { param } => {
            Reply::PARAM_NOT_SUPPORTED.with_text(format!("parameter {param} not supported"))
        }
        Error::ResponseTooLong => Reply::LINE_TOO_LONG,
        Error::NeedsMoreData { .. } | Error::InvalidResponse { .. } => Reply::SYNTAX_ERROR,
    }
}

/// Lets handlers advance the read buffer without naming `bytes::Buf`.
fn consume(buf: &mut BytesMut, n: usize) {
    buf.advance(n);
}

#[cfg(test)]
pub(crate) mod tests;
