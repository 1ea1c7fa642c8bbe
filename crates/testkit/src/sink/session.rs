//! One SMTP connection to the sink: a small server state machine (EHLO/HELO,
//! STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT).
//!
//! Replies are buffered and written only when no further complete command is
//! buffered, so pipelined commands are answered in order in one write
//! (RFC 2920). It is strict about extensions it did not advertise, so a client
//! bug shows up as a refused command in tests rather than passing unseen.

use super::{ReceivedMessage, Settings, Shared, SinkReply};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use smtp_proto::Request;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The byte stream with its input buffer and pending replies.
struct Conn {
    io: Box<dyn Io>,
    input: BytesMut,
    output: Vec<u8>,
}

impl Conn {
    fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io,
            input: BytesMut::with_capacity(64 * 1024),
            output: Vec::new(),
        }
    }

    fn reply(&mut self, reply: &SinkReply) {
        self.output.extend_from_slice(reply.to_wire().as_bytes());
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.io.write_all(&self.output).await?;
            self.io.flush().await?;
            self.output.clear();
        }
        Ok(())
    }

    /// Reads more input, first sending pending replies: the client may be
    /// waiting for them before it sends anything else. `false` at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        self.flush().await?;
        self.input.reserve(64 * 1024);
        Ok(self.io.read_buf(&mut self.input).await? > 0)
    }

    /// The next line including its line ending; `None` at EOF.
    async fn line(&mut self) -> io::Result<Option<BytesMut>> {
        let mut searched = 0;
        loop {
            if let Some(pos) = self.input[searched..].iter().position(|&b| b == b'\n') {
                return Ok(Some(self.input.split_to(searched + pos + 1)));
            }
            searched = self.input.len();
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Exactly `n` bytes (a BDAT chunk); `None` at EOF.
    async fn exact(&mut self, n: usize) -> io::Result<Option<BytesMut>> {
        while self.input.len() < n {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        Ok(Some(self.input.split_to(n)))
    }

    /// DATA content up to the `.` line, dot-unstuffed; `None` at EOF.
    async fn data(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut data = Vec::new();
        loop {
            let Some(line) = self.line().await? else {
                return Ok(None);
            };
            if &line[..] == b".\r\n" {
                return Ok(Some(data));
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line[..]);
            data.extend_from_slice(unstuffed);
        }
    }
}

/// What the connection loop must do after a command.
enum Next {
    Reply(SinkReply),
    /// Send the reply, then close (QUIT, 421).
    Close(SinkReply),
    StartTls,
    Auth {
        mechanism: u64,
        initial: String,
    },
    Data,
    Bdat {
        size: usize,
        last: bool,
    },
}

#[derive(Default)]
struct Transaction {
    mail_from: String,
    mail_params: Vec<String>,
    rcpt_to: Vec<String>,
    rcpt_params: Vec<Vec<String>>,
    chunks: Vec<u8>,
    bdat_failed: bool,
}

struct Session {
    index: usize,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    auth_user: Option<String>,
    tx: Option<Transaction>,
}

/// Serves one connection until QUIT, EOF or an I/O error.
pub(super) async fn run(
    stream: TcpStream,
    index: usize,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
) -> io::Result<()> {
    let mut conn = Conn::new(Box::new(stream));
    let mut session = Session {
        index,
        settings: settings.clone(),
        shared,
        helo: None,
        esmtp: false,
        tls: false,
        auth_user: None,
        tx: None,
    };
    conn.reply(&settings.greeting);
    if settings.greeting.code != 220 {
        return conn.flush().await;
    }
    loop {
        let Some(line) = conn.line().await? else {
            return Ok(());
        };
        match session.command(&line) {
            Next::Reply(reply) => conn.reply(&reply),
            Next::Close(reply) => {
                conn.reply(&reply);
                return conn.flush().await;
            }
            Next::StartTls => {
                let Some(acceptor) = settings.tls.clone() else {
                    conn.reply(&SinkReply::new(502, "5.5.1 STARTTLS not offered"));
                    continue;
                };
                conn.reply(&SinkReply::new(220, "2.0.0 ready to start TLS"));
                conn.flush().await?;
                // Whatever the client pipelined after STARTTLS was sent in
                // clear text and is dropped (RFC 3207 §4.2; the
                // command-injection attack).
                let tls = acceptor.accept(conn.io).await?;
                conn = Conn::new(Box::new(tls));
                session.tls = true;
                session.helo = None;
                session.esmtp = false;
                session.tx = None;
            }
            Next::Auth { mechanism, initial } => {
                let Some(reply) = session.auth(&mut conn, mechanism, initial).await? else {
                    return Ok(());
                };
                conn.reply(&reply);
            }
            Next::Data => {
                conn.reply(&SinkReply::new(354, "end data with <CR><LF>.<CR><LF>"));
                let Some(data) = conn.data().await? else {
                    return Ok(());
                };
                let reply = session.end_of_data(data, false);
                conn.reply(&reply);
                if reply.code == 421 {
                    return conn.flush().await;
                }
            }
            Next::Bdat { size, last } => {
                // The chunk is read even when the command is refused: its
                // bytes are not commands.
                let Some(chunk) = conn.exact(size).await? else {
                    return Ok(());
                };
                let reply = session.bdat(&chunk, last);
                conn.reply(&reply);
                if reply.code == 421 {
                    return conn.flush().await;
                }
            }
        }
    }
}

fn reply(code: u16, text: &str) -> Next {
    Next::Reply(SinkReply::new(code, text))
}

/// The raw parameters after the `<path>` of a MAIL or RCPT line.
fn raw_params(line: &str) -> Vec<String> {
    let after_path = line
        .find('<')
        .and_then(|open| line[open..].find('>').map(|close| open + close + 1))
        .map_or("", |end| &line[end..]);
    after_path.split_whitespace().map(str::to_string).collect()
}

fn keyword(param: &str) -> String {
    param
        .split('=')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

impl Session {
    fn command(&mut self, line: &[u8]) -> Next {
        let text = String::from_utf8_lossy(line);
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(err) => return parse_error(err),
        };
        match request {
            Request::Ehlo { host } => self.hello(host.into_owned(), true),
            Request::Helo { host } => self.hello(host.into_owned(), false),
            Request::StartTls if self.tls => reply(503, "5.5.1 TLS already active"),
            Request::StartTls if self.settings.tls.is_none() => {
                reply(502, "5.5.1 STARTTLS not offered")
            }
            Request::StartTls => Next::StartTls,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth_command(mechanism, initial_response.into_owned()),
            Request::Mail { from } => self.mail(from.address.into_owned(), raw_params(&text)),
            Request::Rcpt { to } => self.rcpt(to.address.into_owned(), raw_params(&text)),
            Request::Data => match &self.tx {
                None => reply(503, "5.5.1 need MAIL before DATA"),
                Some(tx) if !tx.chunks.is_empty() => {
                    reply(503, "5.5.1 DATA not allowed after BDAT")
                }
                Some(tx) if tx.rcpt_to.is_empty() => reply(554, "5.5.1 no valid recipients"),
                Some(_) => Next::Data,
            },
            // Without CHUNKING, BDAT is an unknown command: its "chunk" is
            // then read as commands, as a server without CHUNKING would.
            Request::Bdat { .. } if !self.settings.chunking || !self.esmtp => {
                reply(500, "5.5.1 CHUNKING not offered")
            }
            Request::Bdat {
                chunk_size,
                is_last,
            } => Next::Bdat {
                size: chunk_size,
                last: is_last,
            },
            Request::Rset => {
                self.tx = None;
                reply(250, "2.0.0 reset")
            }
            Request::Noop { .. } => reply(250, "2.0.0 ok"),
            Request::Vrfy { .. } => reply(252, "2.5.2 cannot verify"),
            Request::Quit => Next::Close(SinkReply::new(221, "2.0.0 bye")),
            _ => reply(502, "5.5.1 command not implemented"),
        }
    }

    fn hello(&mut self, host: String, esmtp: bool) -> Next {
        self.helo = Some(host.clone());
        self.esmtp = esmtp;
        self.tx = None;
        let settings = &self.settings;
        let mut lines = vec![format!("{} greets {host}", settings.hostname)];
        if esmtp {
            if settings.pipelining {
                lines.push("PIPELINING".into());
            }
            if settings.eightbitmime {
                lines.push("8BITMIME".into());
            }
            if settings.smtputf8 {
                lines.push("SMTPUTF8".into());
            }
            if settings.dsn {
                lines.push("DSN".into());
            }
            if settings.chunking {
                lines.push("CHUNKING".into());
            }
            lines.push("ENHANCEDSTATUSCODES".into());
            lines.push(match settings.max_size {
                0 => "SIZE".into(),
                n => format!("SIZE {n}"),
            });
            if settings.tls.is_some() && !self.tls {
                lines.push("STARTTLS".into());
            }
            if self.auth_offered() {
                lines.push("AUTH PLAIN LOGIN".into());
            }
        }
        Next::Reply(SinkReply::new(250, lines.join("\n")))
    }

    /// AUTH is offered when configured, and only under TLS when TLS is offered.
    fn auth_offered(&self) -> bool {
        self.settings.auth.is_some() && (self.tls || self.settings.tls.is_none())
    }

    fn auth_command(&mut self, mechanism: u64, initial: String) -> Next {
        if self.helo.is_none() {
            return reply(503, "5.5.1 send EHLO first");
        }
        if !self.auth_offered() {
            return reply(502, "5.5.1 AUTH not offered");
        }
        if self.auth_user.is_some() {
            return reply(503, "5.5.1 already authenticated");
        }
        if self.tx.is_some() {
            return reply(503, "5.5.1 AUTH not allowed during a transaction");
        }
        if mechanism != smtp_proto::AUTH_PLAIN && mechanism != smtp_proto::AUTH_LOGIN {
            return reply(504, "5.5.4 mechanism not supported");
        }
        Next::Auth { mechanism, initial }
    }

    /// Runs the SASL exchange; `None` when the client went away.
    async fn auth(
        &mut self,
        conn: &mut Conn,
        mechanism: u64,
        initial: String,
    ) -> io::Result<Option<SinkReply>> {
        let (user, password) = if mechanism == smtp_proto::AUTH_PLAIN {
            let response = if initial.is_empty() {
                match ask(conn, "").await? {
                    Some(line) => line,
                    None => return Ok(None),
                }
            } else {
                initial
            };
            if response == "*" {
                return Ok(Some(SinkReply::new(501, "5.0.0 authentication cancelled")));
            }
            let decoded = if response == "=" {
                Vec::new()
            } else {
                match BASE64.decode(response.as_bytes()) {
                    Ok(decoded) => decoded,
                    Err(_) => return Ok(Some(bad_base64())),
                }
            };
            let mut parts = decoded.split(|&b| b == 0).skip(1);
            let user = parts.next().unwrap_or_default();
            let password = parts.next().unwrap_or_default();
            (user.to_vec(), password.to_vec())
        } else {
            let mut fields = Vec::new();
            if !initial.is_empty() {
                fields.push(initial);
            }
            while fields.len() < 2 {
                let prompt = if fields.is_empty() {
                    "VXNlcm5hbWU6"
                } else {
                    "UGFzc3dvcmQ6"
                };
                match ask(conn, prompt).await? {
                    Some(line) => fields.push(line),
                    None => return Ok(None),
                }
            }
            if fields.iter().any(|field| field == "*") {
                return Ok(Some(SinkReply::new(501, "5.0.0 authentication cancelled")));
            }
            let mut decoded = Vec::new();
            for field in &fields {
                match BASE64.decode(field.as_bytes()) {
                    Ok(bytes) => decoded.push(bytes),
                    Err(_) => return Ok(Some(bad_base64())),
                }
            }
            let password = decoded.pop().unwrap_or_default();
            let user = decoded.pop().unwrap_or_default();
            (user, password)
        };
        let Some((want_user, want_password)) = &self.settings.auth else {
            return Ok(Some(SinkReply::new(502, "5.5.1 AUTH not offered")));
        };
        if user == want_user.as_bytes() && password == want_password.as_bytes() {
            self.auth_user = Some(want_user.clone());
            Ok(Some(SinkReply::new(235, "2.7.0 authentication succeeded")))
        } else {
            Ok(Some(SinkReply::new(
                535,
                "5.7.8 authentication credentials invalid",
            )))
        }
    }

    fn mail(&mut self, from: String, params: Vec<String>) -> Next {
        if self.helo.is_none() {
            return reply(503, "5.5.1 send EHLO first");
        }
        if self.tx.is_some() {
            return reply(503, "5.5.1 sender already given");
        }
        if self.settings.auth.is_some() && self.auth_user.is_none() {
            return reply(530, "5.7.0 authentication required");
        }
        for param in &params {
            let key = keyword(param);
            let value = param.split_once('=').map_or("", |(_, value)| value);
            let offered = self.esmtp
                && match key.as_str() {
                    "SIZE" => {
                        let size: usize = value.parse().unwrap_or(usize::MAX);
                        if self.settings.max_size > 0 && size > self.settings.max_size {
                            return reply(552, "5.3.4 message size exceeds fixed maximum");
                        }
                        true
                    }
                    "BODY" => match value.to_ascii_uppercase().as_str() {
                        "7BIT" => true,
                        "8BITMIME" => self.settings.eightbitmime,
                        _ => false,
                    },
                    "SMTPUTF8" => self.settings.smtputf8,
                    "RET" | "ENVID" => self.settings.dsn,
                    "AUTH" => self.auth_offered(),
                    _ => false,
                };
            if !offered {
                return reply(555, &format!("5.5.4 {key} not recognized or not offered"));
            }
        }
        self.tx = Some(Transaction {
            mail_from: from,
            mail_params: params,
            ..Transaction::default()
        });
        self.shared.transactions.fetch_add(1, Ordering::SeqCst);
        self.shared.changed();
        reply(250, "2.1.0 sender ok")
    }

    fn rcpt(&mut self, to: String, params: Vec<String>) -> Next {
        let Some(tx) = self.tx.as_mut() else {
            return reply(503, "5.5.1 need MAIL before RCPT");
        };
        for param in &params {
            let key = keyword(param);
            let offered =
                self.esmtp && matches!(key.as_str(), "NOTIFY" | "ORCPT") && self.settings.dsn;
            if !offered {
                return reply(555, &format!("5.5.4 {key} not recognized or not offered"));
            }
        }
        let answer = {
            let mut state = self.shared.lock();
            let key = to.to_ascii_lowercase();
            let attempts = state.rcpt_attempts.entry(key.clone()).or_insert(0);
            let attempt = *attempts;
            *attempts += 1;
            state
                .rcpt_replies
                .get(&key)
                .and_then(|script| script.reply(attempt))
                .unwrap_or_else(|| SinkReply::new(250, "2.1.5 recipient ok"))
        };
        self.shared.changed();
        if answer.is_positive() {
            tx.rcpt_to.push(to);
            tx.rcpt_params.push(params);
        }
        if answer.code == 421 {
            Next::Close(answer)
        } else {
            Next::Reply(answer)
        }
    }

    fn bdat(&mut self, chunk: &[u8], last: bool) -> SinkReply {
        let Some(tx) = self.tx.as_mut() else {
            return SinkReply::new(503, "5.5.1 need MAIL before BDAT");
        };
        if tx.rcpt_to.is_empty() {
            // The transaction stays failed until the last chunk ends it.
            tx.bdat_failed = true;
        }
        if tx.bdat_failed {
            if last {
                self.tx = None;
            }
            return SinkReply::new(554, "5.5.1 no valid recipients");
        }
        tx.chunks.extend_from_slice(chunk);
        if !last {
            return SinkReply::new(250, format!("2.0.0 {} octets received", chunk.len()));
        }
        let data = std::mem::take(&mut tx.chunks);
        self.end_of_data(data, true)
    }

    /// Answers end-of-data from the script and records the message when the
    /// answer is positive; the transaction ends either way.
    fn end_of_data(&mut self, data: Vec<u8>, via_bdat: bool) -> SinkReply {
        let Some(tx) = self.tx.take() else {
            return SinkReply::new(503, "5.5.1 need MAIL first");
        };
        let answer = {
            let mut state = self.shared.lock();
            let index = state.data_count;
            state.data_count += 1;
            let answer = state
                .data_replies
                .reply(index)
                .unwrap_or_else(|| SinkReply::new(250, format!("2.0.0 queued as {index}")));
            if answer.is_positive() {
                state.messages.push(ReceivedMessage {
                    helo: self.helo.clone().unwrap_or_default(),
                    mail_from: tx.mail_from,
                    mail_params: tx.mail_params,
                    rcpt_to: tx.rcpt_to,
                    rcpt_params: tx.rcpt_params,
                    data,
                    tls: self.tls,
                    auth_user: self.auth_user.clone(),
                    connection: self.index,
                    via_bdat,
                });
            }
            answer
        };
        self.shared.changed();
        answer
    }
}

/// Sends a 334 challenge and reads the client's answer; `None` at EOF.
async fn ask(conn: &mut Conn, prompt: &str) -> io::Result<Option<String>> {
    conn.reply(&SinkReply::new(334, prompt));
    Ok(conn
        .line()
        .await?
        .map(|line| String::from_utf8_lossy(&line).trim().to_string()))
}

fn bad_base64() -> SinkReply {
    SinkReply::new(501, "5.5.2 cannot decode response")
}

fn parse_error(err: smtp_proto::Error) -> Next {
    use smtp_proto::Error;
    match err {
        Error::UnknownCommand => reply(500, "5.5.1 command not recognized"),
        Error::InvalidSenderAddress => reply(501, "5.1.7 bad sender address syntax"),
        Error::InvalidRecipientAddress => reply(501, "5.1.3 bad recipient address syntax"),
        Error::SyntaxError { syntax } => reply(501, &format!("5.5.4 syntax: {syntax}")),
        Error::InvalidParameter { param } => reply(501, &format!("5.5.4 invalid {param}")),
        Error::UnsupportedParameter { param } => {
            reply(555, &format!("5.5.4 {param} not recognized or not offered"))
        }
        _ => reply(500, "5.5.2 syntax error"),
    }
}
