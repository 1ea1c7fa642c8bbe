//! One mail transaction over an open session: MAIL, the RCPTs, then DATA or
//! BDAT, with a reply kept per recipient.
//!
//! With PIPELINING the whole envelope goes in one write (with CHUNKING, the
//! message too: one round trip per message). Replies are read in order; a
//! 421 anywhere ends the session and becomes the answer for everything
//! still open. Does not retry and does not interpret replies further.

use carteiro_mail::{BodyType, Envelope, Recipient, Reply, Status};
use smtp_proto::{
    EXT_8BIT_MIME, EXT_BINARY_MIME, EXT_CHUNKING, EXT_DSN, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8,
};

use super::SmtpClient;
use super::command::{self, MailParams};
use crate::error::{ClientError, Stage};

/// The replies of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendOutcome {
    /// The reply to MAIL FROM (or a synthetic refusal given without
    /// talking, e.g. the message is larger than the server's SIZE).
    pub mail: Reply,
    /// One reply per recipient, in the order they were given.
    pub rcpt: Vec<Reply>,
    /// The final reply to the message (after DATA's dot, or to BDAT), or
    /// the refusal of DATA itself; `None` when no message was sent.
    pub data: Option<Reply>,
}

impl SendOutcome {
    /// The final result per recipient, in the order of the `recipients`
    /// given to `send`: the MAIL reply when MAIL failed, the RCPT reply when
    /// the recipient was refused, the reply to the message otherwise.
    pub fn recipient_results(&self) -> Vec<Reply> {
        self.rcpt
            .iter()
            .map(|rcpt| {
                if !self.mail.is_positive() {
                    self.mail.clone()
                } else if !rcpt.is_positive() {
                    rcpt.clone()
                } else {
                    self.data.clone().unwrap_or_else(|| {
                        Reply::new(
                            451,
                            Some(Status(4, 4, 2)),
                            "transaction not completed by the server",
                        )
                    })
                }
            })
            .collect()
    }

    /// The same reply for the whole transaction (refused before talking, or
    /// the server closing before MAIL was answered).
    fn all(reply: Reply, n_recipients: usize) -> SendOutcome {
        SendOutcome {
            mail: reply.clone(),
            rcpt: vec![reply; n_recipients],
            data: None,
        }
    }
}

/// How the transaction is carried out, from the server's extensions.
#[derive(Clone, Copy)]
struct Plan {
    pipelining: bool,
    chunking: bool,
    dsn: bool,
}

impl SmtpClient {
    /// Runs one transaction for `envelope.recipients[i]` for each `i` in
    /// `recipients` (indices, so the caller keeps its own state per
    /// recipient). `message` is the whole message with CRLF line endings;
    /// it is dot-stuffed on the fly for DATA and never copied.
    ///
    /// Refused recipients come back in the outcome; an `Err` means the
    /// session failed and nothing about the recipients is known.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> Result<SendOutcome, ClientError> {
        self.send_as(None, envelope, recipients, message).await
    }

    /// Like [`SmtpClient::send`], with `sender` as the reverse path instead
    /// of the envelope's (a VERP return path made for these recipients).
    pub async fn send_as(
        &mut self,
        sender: Option<&str>,
        envelope: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> Result<SendOutcome, ClientError> {
        self.ensure_usable()?;
        let sender = sender.unwrap_or(&envelope.sender);
        let rcpts = recipients
            .iter()
            .map(|&index| {
                envelope
                    .recipients
                    .get(index)
                    .ok_or(ClientError::RecipientIndex { index })
            })
            .collect::<Result<Vec<&Recipient>, ClientError>>()?;
        if rcpts.is_empty() {
            return Ok(SendOutcome {
                mail: Reply::new(250, None, "no recipients, nothing sent"),
                rcpt: Vec::new(),
                data: None,
            });
        }
        // RFC 6531: a non-ASCII address needs SMTPUTF8 even when the
        // envelope did not say so.
        let smtputf8 =
            envelope.smtputf8 || !sender.is_ascii() || rcpts.iter().any(|r| !r.address.is_ascii());
        if let Some(refusal) = self.refusal(smtputf8, message) {
            return Ok(SendOutcome::all(refusal, rcpts.len()));
        }

        let plan = Plan {
            pipelining: self.capabilities.has_capability(EXT_PIPELINING),
            chunking: self.prefer_chunking && self.capabilities.has_capability(EXT_CHUNKING),
            dsn: self.capabilities.has_capability(EXT_DSN),
        };
        let params = self.mail_params(envelope, message, plan, smtputf8);
        let result = if plan.pipelining {
            self.pipelined(sender, envelope, &rcpts, message, plan, params)
                .await
        } else {
            self.stepwise(sender, envelope, &rcpts, message, plan, params)
                .await
        };
        self.wbuf.clear();
        self.keep_usable_if_ok(result)
    }

    /// A reply for every recipient given without talking to the server,
    /// when the transaction could only fail.
    fn refusal(&self, smtputf8: bool, message: &[u8]) -> Option<Reply> {
        let caps = &self.capabilities;
        if smtputf8 && !caps.has_capability(EXT_SMTP_UTF8) {
            return Some(Reply::SMTPUTF8_REQUIRED.with_text(format!(
                "message needs SMTPUTF8, which {} does not support",
                self.server_name
            )));
        }
        if caps.has_capability(EXT_SIZE) && caps.size > 0 && message.len() > caps.size {
            return Some(Reply::MESSAGE_TOO_BIG.with_text(format!(
                "message size {} exceeds the limit of {} ({} bytes)",
                message.len(),
                self.server_name,
                caps.size
            )));
        }
        None
    }

    fn mail_params(
        &self,
        envelope: &Envelope,
        message: &[u8],
        plan: Plan,
        smtputf8: bool,
    ) -> MailParams {
        let caps = &self.capabilities;
        let body = match envelope.body_type {
            BodyType::EightBitMime if caps.has_capability(EXT_8BIT_MIME) => {
                Some(BodyType::EightBitMime)
            }
            // BINARYMIME needs BDAT; without it the body goes as it is.
            BodyType::BinaryMime if plan.chunking && caps.has_capability(EXT_BINARY_MIME) => {
                Some(BodyType::BinaryMime)
            }
            _ => None,
        };
        MailParams {
            size: caps
                .has_capability(EXT_SIZE)
                .then(|| command::bdat_len(message)),
            body,
            smtputf8,
            dsn: plan.dsn,
        }
    }

    /// Marks the session closed by the server (421) and answers everything
    /// still open with that reply.
    fn closing(&mut self, reply: &Reply) -> bool {
        if reply.code == 421 {
            self.usable = false;
            self.pending_rset = false;
            return true;
        }
        false
    }

    /// PIPELINING: [RSET] MAIL RCPT… DATA|BDAT(+message) in one write.
    async fn pipelined(
        &mut self,
        sender: &str,
        envelope: &Envelope,
        rcpts: &[&Recipient],
        message: &[u8],
        plan: Plan,
        params: MailParams,
    ) -> Result<SendOutcome, ClientError> {
        let (command_timeout, data_timeout) = (self.command_timeout, self.data_timeout);
        let rset = std::mem::take(&mut self.pending_rset);
        self.wbuf.clear();
        if rset {
            self.wbuf.extend_from_slice(b"RSET\r\n");
        }
        command::mail_from(&mut self.wbuf, sender, envelope, params);
        for rcpt in rcpts {
            command::rcpt_to(&mut self.wbuf, rcpt, plan.dsn);
        }
        if plan.chunking {
            // The server reads the chunk even when every recipient failed,
            // so the message rides along: one round trip in all.
            command::bdat_last(&mut self.wbuf, command::bdat_len(message));
            let mut parts = command::body_parts(&self.wbuf, message, false);
            self.conn
                .write_parts(&mut parts, Stage::Bdat, data_timeout)
                .await?;
        } else {
            self.wbuf.extend_from_slice(b"DATA\r\n");
            self.conn
                .write_all(&self.wbuf, Stage::Mail, command_timeout)
                .await?;
        }

        if rset {
            let reply = self.conn.read_reply(Stage::Rset, command_timeout).await?;
            if self.closing(&reply) {
                return Ok(SendOutcome::all(reply, rcpts.len()));
            }
        }
        let mail = self.conn.read_reply(Stage::Mail, command_timeout).await?;
        if self.closing(&mail) {
            return Ok(SendOutcome::all(mail, rcpts.len()));
        }
        let mut replies = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            let reply = self.conn.read_reply(Stage::Rcpt, command_timeout).await?;
            if self.closing(&reply) {
                replies.resize(rcpts.len(), reply.clone());
                return Ok(outcome(mail, replies, Some(reply)));
            }
            replies.push(reply);
        }

        if plan.chunking {
            let reply = self.conn.read_reply(Stage::Bdat, data_timeout).await?;
            if !self.closing(&reply) && !reply.is_positive() && mail.is_positive() {
                self.pending_rset = true;
            }
            return Ok(outcome(mail, replies, Some(reply)));
        }
        let data = self.conn.read_reply(Stage::Data, command_timeout).await?;
        self.finish_data(mail, replies, data, message).await
    }

    /// No PIPELINING: one command, one reply.
    async fn stepwise(
        &mut self,
        sender: &str,
        envelope: &Envelope,
        rcpts: &[&Recipient],
        message: &[u8],
        plan: Plan,
        params: MailParams,
    ) -> Result<SendOutcome, ClientError> {
        let (command_timeout, data_timeout) = (self.command_timeout, self.data_timeout);
        if std::mem::take(&mut self.pending_rset) {
            let reply = self.command(b"RSET\r\n", Stage::Rset).await?;
            if self.closing(&reply) {
                return Ok(SendOutcome::all(reply, rcpts.len()));
            }
        }
        self.wbuf.clear();
        command::mail_from(&mut self.wbuf, sender, envelope, params);
        self.conn
            .write_all(&self.wbuf, Stage::Mail, command_timeout)
            .await?;
        let mail = self.conn.read_reply(Stage::Mail, command_timeout).await?;
        if self.closing(&mail) || !mail.is_positive() {
            return Ok(outcome(mail.clone(), vec![mail; rcpts.len()], None));
        }

        let mut replies = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            self.wbuf.clear();
            command::rcpt_to(&mut self.wbuf, rcpt, plan.dsn);
            self.conn
                .write_all(&self.wbuf, Stage::Rcpt, command_timeout)
                .await?;
            let reply = self.conn.read_reply(Stage::Rcpt, command_timeout).await?;
            if self.closing(&reply) {
                replies.resize(rcpts.len(), reply.clone());
                return Ok(outcome(mail, replies, Some(reply)));
            }
            replies.push(reply);
        }
        if !replies.iter().any(Reply::is_positive) {
            // Nothing to send to: leave the session clean for the next one.
            self.pending_rset = true;
            return Ok(outcome(mail, replies, None));
        }

        if plan.chunking {
            self.wbuf.clear();
            command::bdat_last(&mut self.wbuf, command::bdat_len(message));
            let mut parts = command::body_parts(&self.wbuf, message, false);
            self.conn
                .write_parts(&mut parts, Stage::Bdat, data_timeout)
                .await?;
            let reply = self.conn.read_reply(Stage::Bdat, data_timeout).await?;
            if !self.closing(&reply) && !reply.is_positive() {
                self.pending_rset = true;
            }
            return Ok(outcome(mail, replies, Some(reply)));
        }
        let data = self.command(b"DATA\r\n", Stage::Data).await?;
        self.finish_data(mail, replies, data, message).await
    }

    /// After the reply to DATA: send the message on 354, else record why not.
    async fn finish_data(
        &mut self,
        mail: Reply,
        replies: Vec<Reply>,
        data: Reply,
        message: &[u8],
    ) -> Result<SendOutcome, ClientError> {
        if self.closing(&data) {
            return Ok(outcome(mail, replies, Some(data)));
        }
        if data.code != 354 {
            if mail.is_positive() {
                self.pending_rset = true;
            }
            return Ok(outcome(mail, replies, Some(data)));
        }
        let data_timeout = self.data_timeout;
        if !(mail.is_positive() && replies.iter().any(Reply::is_positive)) {
            // 354 without a valid recipient still needs the terminating dot
            // (RFC 2920 §3.1); the empty message goes nowhere.
            self.conn
                .write_all(b".\r\n", Stage::DataBody, data_timeout)
                .await?;
            let reply = self.conn.read_reply(Stage::DataBody, data_timeout).await?;
            self.closing(&reply);
            return Ok(outcome(mail, replies, None));
        }
        let mut parts = command::body_parts(b"", message, true);
        self.conn
            .write_parts(&mut parts, Stage::DataBody, data_timeout)
            .await?;
        let reply = self.conn.read_reply(Stage::DataBody, data_timeout).await?;
        self.closing(&reply);
        Ok(outcome(mail, replies, Some(reply)))
    }
}

/// Assembles an outcome.
fn outcome(mail: Reply, rcpt: Vec<Reply>, data: Option<Reply>) -> SendOutcome {
    SendOutcome { mail, rcpt, data }
}
