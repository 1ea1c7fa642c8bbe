//! MAIL and RCPT: starting a transaction, and the relay policy for each
//! recipient.

use super::{Flow, Session, Transaction};
use crate::handler::Handler;
use carteiro_mail::address::{is_valid_domain, split_address};
use carteiro_mail::{BodyType, Envelope, MessageId, Notify, Recipient, Reply, Ret};
use smtp_proto::{MailFrom, RcptTo};
use std::borrow::Cow;
use tokio::io::{AsyncRead, AsyncWrite};

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin + Send> Session<H, S> {
    /// `line` is the command as it came, to tell an address the parser
    /// had to repair from one that is what the client sent.
    pub(super) async fn mail(&mut self, from: MailFrom<Cow<'_, str>>, line: &[u8]) -> Flow {
        if self.helo.is_none() {
            self.reply(&Reply::NEED_HELO);
            return Flow::Continue;
        }
        if self.tx.is_some() {
            self.reply(&Reply::NESTED_MAIL);
            return Flow::Continue;
        }
        if self.role.requires_auth() && self.auth.is_none() {
            let reply = if self.tls_active() || self.ctx.config.smtp.allow_auth_without_tls {
                Reply::AUTH_REQUIRED
            } else {
                Reply::TLS_REQUIRED
            };
            self.reply(&reply);
            return Flow::Continue;
        }
        let max = self.ctx.config.smtp.max_message_size;
        if from.size as u64 > max {
            self.reply(&Reply::DECLARED_TOO_BIG);
            return Flow::Continue;
        }
        if let Some(reply) = unsupported_mail_parameter(&from) {
            self.reply(&reply);
            return Flow::Continue;
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let sender = from.address.as_ref();
        if not_utf8(sender, line) {
            self.reply(&Reply::INVALID_UTF8_ADDRESS);
            return Flow::Continue;
        }
        if !sender.is_empty() {
            match split_address(sender) {
                Some((_, domain)) if is_valid_domain(domain) => {}
                _ => {
                    self.reply(&Reply::BAD_SENDER);
                    return Flow::Continue;
                }
            }
            if !sender.is_ascii() && !smtputf8 {
                self.reply(&Reply::SMTPUTF8_REQUIRED);
                return Flow::Continue;
            }
        }
        let account = match &self.auth {
            Some((_, account)) => Some(account.clone()),
            None if self.trusted => match self.ctx.handler.default_account() {
                Some(account) => Some(account),
                None => {
                    self.reply(&Reply::LOCAL_ERROR.with_text("no default account for relaying"));
                    return Flow::Continue;
                }
            },
            None => None,
        };
        let mut envelope = Envelope::new(sender);
        envelope.smtputf8 = smtputf8;
        envelope.body_type = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        };
        envelope.ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(Ret::Headers)
        } else {
            None
        };
        envelope.envid = from.env_id.map(|id| id.into_owned());
        self.tx = Some(Transaction {
            id: MessageId::generate(),
            envelope,
            account,
            declared_size: from.size,
            bdat: None,
        });
        self.idle_commands = 0;
        self.reply(&Reply::SENDER_OK);
        Flow::Continue
    }

    /// `line` as for [`Session::mail`].
    pub(super) fn rcpt(&mut self, to: RcptTo<Cow<'_, str>>, line: &[u8]) -> Flow {
        let Some(tx) = &self.tx else {
            self.reply(&Reply::NEED_MAIL);
            return Flow::Continue;
        };
        if not_utf8(&to.address, line) {
            self.reply(&Reply::INVALID_UTF8_ADDRESS);
            return Flow::Continue;
        }
        if tx.envelope.recipients.len() >= self.ctx.config.smtp.max_recipients {
            self.reply(&Reply::TOO_MANY_RECIPIENTS);
            return Flow::Continue;
        }
        // The parser turns `<postmaster>` into an empty address.
        let address = if to.address.is_empty() {
            format!("postmaster@{}", self.ctx.config.hostname)
        } else {
            to.address.to_string()
        };
        let Some((_, domain)) = split_address(&address) else {
            self.reply(&Reply::BAD_RECIPIENT);
            return Flow::Continue;
        };
        if !is_valid_domain(domain) {
            self.reply(&Reply::BAD_RECIPIENT);
            return Flow::Continue;
        }
        if !address.is_ascii() && !tx.envelope.smtputf8 {
            self.reply(&Reply::SMTPUTF8_REQUIRED);
            return Flow::Continue;
        }
        match self.ctx.handler.local_recipient(&address) {
            Some(Ok(())) => {}
            Some(Err(reply)) => {
                self.reply(&reply);
                return Flow::Continue;
            }
            None if self.ctx.config.is_local_domain(domain) => {
                self.reply(&Reply::NO_SUCH_USER);
                return Flow::Continue;
            }
            None if !self.may_relay() => {
                self.reply(&Reply::RELAY_DENIED);
                return Flow::Continue;
            }
            None => {}
        }
        let recipient = Recipient {
            address,
            notify: notify_of(to.flags),
            orcpt: to.orcpt.map(|addr| format!("rfc822;{addr}")),
        };
        if let Some(tx) = &mut self.tx {
            tx.envelope.recipients.push(recipient);
        }
        self.reply(&Reply::RECIPIENT_OK);
        Flow::Continue
    }
}

/// Whether `address` came from bytes that are not UTF-8: the parser puts
/// U+FFFD for them, which would then be relayed as if the client had
/// written it. Only non-ASCII addresses cost a look at the line.
fn not_utf8(address: &str, line: &[u8]) -> bool {
    !address.is_ascii()
        && address.contains(char::REPLACEMENT_CHARACTER)
        && std::str::from_utf8(line).is_err()
}

fn notify_of(flags: u64) -> Notify {
    let mut notify = 0;
    if flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
        notify |= Notify::NEVER;
    }
    if flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0 {
        notify |= Notify::SUCCESS;
    }
    if flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0 {
        notify |= Notify::FAILURE;
    }
    if flags & smtp_proto::RCPT_NOTIFY_DELAY != 0 {
        notify |= Notify::DELAY;
    }
    Notify(notify)
}

/// MAIL parameters the parser understands but Carteiro does not offer.
fn unsupported_mail_parameter(from: &MailFrom<Cow<'_, str>>) -> Option<Reply> {
    let name = if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
        "BODY=BINARYMIME"
    } else if from.flags & smtp_proto::MAIL_REQUIRETLS != 0 {
        "REQUIRETLS"
    } else if from.flags & (smtp_proto::MAIL_BY_NOTIFY | smtp_proto::MAIL_BY_RETURN) != 0 {
        "BY"
    } else if from.hold_for != 0 || from.hold_until != 0 {
        "HOLDFOR/HOLDUNTIL"
    } else if from.mtrk.is_some() {
        "MTRK"
    } else if from.trans_id.is_some() {
        "TRANSID"
    } else if from.mt_priority != 0 {
        "MT-PRIORITY"
    } else {
        return None;
    };
    Some(Reply::PARAM_NOT_SUPPORTED.with_text(format!("parameter {name} not supported")))
}
