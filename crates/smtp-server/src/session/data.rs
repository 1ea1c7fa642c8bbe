//! DATA and BDAT: receiving the message content, and handing the finished
//! message to the handler before answering.

use super::{Expiry, Flow, Session, consume};
use crate::data::{DataProblem, DataReceiver, check_content};
use crate::handler::{Handler, IncomingMessage};
use crate::pace::ContentPace;
use bytes::Bytes;
use carteiro_mail::Reply;
use carteiro_mail::trace::{ReceivedInfo, received_header};
use std::io;
use std::time::SystemTime;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Content gathered from BDAT chunks.
pub(crate) struct BdatState {
    body: Vec<u8>,
    header_len: usize,
    size: usize,
    too_big: bool,
}

/// Initial buffer for content whose size the client did not declare.
const DEFAULT_CAPACITY: usize = 16 * 1024;
/// Never reserve more than this up front, whatever SIZE said.
const MAX_PREALLOCATION: usize = 4 * 1024 * 1024;

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin + Send> Session<H, S> {
    pub(super) async fn data(&mut self) -> io::Result<Flow> {
        let Some(tx) = &self.tx else {
            self.reply(&Reply::NEED_MAIL);
            return Ok(Flow::Continue);
        };
        if tx.envelope.recipients.is_empty() {
            self.reply(&Reply::NEED_RCPT);
            return Ok(Flow::Continue);
        }
        if tx.bdat.is_some() {
            self.reply(&Reply::BDAT_DATA_MIX);
            return Ok(Flow::Continue);
        }
        self.reply(&Reply::START_DATA);
        let mut body = self.start_body();
        let trace_len = body.len();
        let smtp = &self.ctx.config.smtp;
        let mut receiver = DataReceiver::new(smtp.max_message_size as usize, smtp.max_line_length);
        let mut pace = self.content_pace();
        loop {
            let (used, done) = receiver.ingest(&self.rbuf, &mut body);
            consume(&mut self.rbuf, used);
            if done {
                break;
            }
            if !self.fill_content(&mut pace).await? {
                // The client left in the middle, or was too slow: nothing
                // was acknowledged.
                return Ok(Flow::Close);
            }
        }
        if let Some(problem) = receiver.problem() {
            self.tx = None;
            self.reply(&problem_reply(problem));
            return Ok(Flow::Continue);
        }
        self.finish_message(body, trace_len).await;
        Ok(Flow::Continue)
    }

    pub(super) async fn bdat(&mut self, chunk_size: usize, is_last: bool) -> io::Result<Flow> {
        let refusal = match &self.tx {
            None => Some(Reply::NEED_MAIL),
            Some(tx) if tx.envelope.recipients.is_empty() => Some(Reply::NEED_RCPT),
            Some(_) => None,
        };
        if refusal.is_none() && self.tx.as_ref().is_some_and(|tx| tx.bdat.is_none()) {
            let body = self.start_body();
            let header_len = body.len();
            if let Some(tx) = &mut self.tx {
                tx.bdat = Some(BdatState {
                    body,
                    header_len,
                    size: 0,
                    too_big: false,
                });
            }
        }
        let max = self.ctx.config.smtp.max_message_size as usize;
        // The chunk is read in full even when it will be refused (RFC 3030).
        let mut remaining = chunk_size;
        let mut pace = self.content_pace();
        loop {
            let n = remaining.min(self.rbuf.len());
            if n > 0 {
                if let Some(state) = self.tx.as_mut().and_then(|tx| tx.bdat.as_mut()) {
                    state.size += n;
                    if state.size > max {
                        if !state.too_big {
                            state.too_big = true;
                            state.body = Vec::new();
                        }
                    } else {
                        state.body.extend_from_slice(&self.rbuf[..n]);
                    }
                }
                consume(&mut self.rbuf, n);
                remaining -= n;
            }
            if remaining == 0 {
                break;
            }
            if !self.fill_content(&mut pace).await? {
                return Ok(Flow::Close);
            }
        }
        if let Some(reply) = refusal {
            self.reply(&reply);
            return Ok(Flow::Continue);
        }
        if !is_last {
            self.reply(&Reply::OK.with_text(format!("{chunk_size} octets received")));
            return Ok(Flow::Continue);
        }
        let Some(state) = self.tx.as_mut().and_then(|tx| tx.bdat.take()) else {
            self.reply(&Reply::NEED_MAIL);
            return Ok(Flow::Continue);
        };
        let problem = if state.too_big {
            Some(DataProblem::TooBig)
        } else {
            check_content(
                &state.body[state.header_len..],
                self.ctx.config.smtp.max_line_length,
            )
        };
        if let Some(problem) = problem {
            self.tx = None;
            self.reply(&problem_reply(problem));
            return Ok(Flow::Continue);
        }
        self.finish_message(state.body, state.header_len).await;
        Ok(Flow::Continue)
    }

    /// The minimum rate for the content of one DATA or one BDAT chunk.
    fn content_pace(&self) -> ContentPace {
        let smtp = &self.ctx.config.smtp;
        ContentPace::new(smtp.min_data_rate, smtp.command_timeout)
    }

    /// Reads more content, cutting a client that fell too far behind the
    /// minimum rate. `Ok(false)` as for [`Session::fill`].
    async fn fill_content(&mut self, pace: &mut ContentPace) -> io::Result<bool> {
        let before = self.rbuf.len();
        let limit = pace.deadline(Instant::now).map(|at| (at, Expiry::DataRate));
        if !self.fill(limit, false).await? {
            return Ok(false);
        }
        if limit.is_some() {
            pace.arrived(self.rbuf.len() - before, Instant::now());
        }
        Ok(true)
    }

    /// A buffer for the content, starting with our `Received:` header.
    fn start_body(&self) -> Vec<u8> {
        let Some(tx) = &self.tx else {
            return Vec::new();
        };
        let protocol = match (self.esmtp, self.tls_active(), self.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let tls = self.stream.tls_description();
        let id = tx.id.to_string();
        let for_recipient = match &tx.envelope.recipients[..] {
            [only] => Some(only.address.as_str()),
            _ => None,
        };
        let header = received_header(&ReceivedInfo {
            helo: self.helo.as_deref().unwrap_or("unknown"),
            client_ip: self.peer.ip(),
            by: &self.ctx.config.hostname,
            protocol,
            tls: tls.as_deref(),
            id: &id,
            for_recipient,
            date: OffsetDateTime::now_utc(),
        });
        let expected = if tx.declared_size > 0 {
            tx.declared_size.min(MAX_PREALLOCATION)
        } else {
            DEFAULT_CAPACITY
        };
        let mut body = Vec::with_capacity(header.len() + expected + 64);
        body.extend_from_slice(header.as_bytes());
        body
    }

    /// Hands the message to the handler and answers with its verdict.
    async fn finish_message(&mut self, body: Vec<u8>, trace_len: usize) {
        let Some(tx) = self.tx.take() else {
            self.reply(&Reply::NEED_MAIL);
            return;
        };
        let account = match tx.account {
            Some(account) => account,
            // Mail from an untrusted client to one of our own addresses.
            None => match self.ctx.handler.default_account() {
                Some(account) => account,
                None => {
                    self.reply(&Reply::LOCAL_ERROR);
                    return;
                }
            },
        };
        let id = tx.id;
        let message = IncomingMessage {
            id,
            account,
            envelope: tx.envelope,
            body: Bytes::from(body),
            trace_len,
            client_ip: self.peer.ip(),
            helo: self.helo.clone().unwrap_or_default(),
            auth_user: self.auth.as_ref().map(|(user, _)| user.clone()),
            tls: self.tls_active(),
            role: self.role,
            received_at: SystemTime::now(),
        };
        match self.ctx.handler.accept_message(message).await {
            Ok(()) => self.reply(&Reply::OK.with_text(format!("ok: queued as {id}"))),
            Err(reply) => self.reply(&reply),
        }
    }
}

fn problem_reply(problem: DataProblem) -> Reply {
    match problem {
        DataProblem::TooBig => Reply::MESSAGE_TOO_BIG,
        DataProblem::LineTooLong => Reply::DATA_LINE_TOO_LONG,
        DataProblem::BareLineEnding => Reply::BARE_LF,
    }
}
