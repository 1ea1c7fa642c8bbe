//! Building the MIME message of a `POST /api/v1/messages` request.
//!
//! The request's values are checked here (addresses, custom headers, limits)
//! and every refusal names the request field at fault, so the HTTP layer can
//! answer with it. mail-builder writes the message: it picks the transfer
//! encodings, folds the header fields and encodes non-ASCII text.
//!
//! This module does not queue, sign or track anything, and reads no clock:
//! the caller gives the message id and the date.

#[cfg(test)]
mod tests;
mod validate;

pub use validate::parse_mailbox;

use crate::address::format_path;
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::BodyPart;
use std::borrow::Cow;
use std::collections::HashSet;
use time::OffsetDateTime;
use validate::{HeaderText, MAX_LINE, check_header, content_type, parse_mailbox_at};

/// At most this many recipients (to, cc and bcc together) per request.
pub const MAX_RECIPIENTS: usize = 1000;

/// One attachment of a request, its content already base64-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// `type/subtype`, optionally with parameters; empty means
    /// `application/octet-stream`.
    pub content_type: String,
    pub content: Vec<u8>,
}

/// What a `POST /api/v1/messages` request asks to send.
#[derive(Clone, Debug)]
pub struct ComposeRequest<'a> {
    /// `alice@shop.example` or `Alice <alice@shop.example>`.
    pub from: &'a str,
    /// Each `a@b` or `Name <a@b>`.
    pub to: &'a [String],
    pub cc: &'a [String],
    /// Envelope recipients only: never written into the message.
    pub bcc: &'a [String],
    pub reply_to: Option<&'a str>,
    /// Empty: the message has no `Subject:` field.
    pub subject: &'a str,
    /// Empty strings count as absent.
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    /// Custom header fields, checked here (see [`ComposeError::ForbiddenHeader`]).
    pub headers: &'a [(String, String)],
    pub attachments: &'a [Attachment],
    /// The full `<id@host>`.
    pub message_id: &'a str,
    pub date: OffsetDateTime,
}

/// The message and its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    /// The whole message, CRLF line endings, lines of at most 998 octets.
    pub message: Vec<u8>,
    /// The addr-spec of `from`.
    pub envelope_from: String,
    /// The addr-specs of to, cc and bcc, deduplicated case-insensitively,
    /// in the order given.
    pub recipients: Vec<String>,
    /// Some address has a non-ASCII local part or domain: it is written in
    /// the header as UTF-8, so the message must be relayed with SMTPUTF8.
    pub needs_smtputf8: bool,
}

/// Why a request cannot be composed. [`ComposeError::field`] names the
/// request field at fault, e.g. `to[2]`, `headers.X-Foo`,
/// `attachments[0].content_type`; [`ComposeError::reason`] says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// Not `addr-spec` or `Name <addr-spec>` with a valid domain.
    #[error("{field}: {reason}")]
    InvalidAddress { field: String, reason: String },
    /// A required value is absent: no recipient, no body.
    #[error("{field}: {reason}")]
    Missing { field: String, reason: String },
    /// Over a limit: recipients, subject length, a header word.
    #[error("{field}: {reason}")]
    TooLarge { field: String, reason: String },
    /// A header field Carteiro writes itself, or that would break routing,
    /// signing or authentication results.
    #[error("{field}: {reason}")]
    ForbiddenHeader { field: String, reason: String },
    /// A custom header with a bad name or a value with line breaks or
    /// control characters (header injection).
    #[error("{field}: {reason}")]
    InvalidHeader { field: String, reason: String },
    /// Any other malformed value.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl ComposeError {
    /// The request field at fault, in the request's JSON names.
    pub fn field(&self) -> &str {
        let (field, _) = self.parts();
        field
    }

    /// What is wrong, without the field name.
    pub fn reason(&self) -> &str {
        let (_, reason) = self.parts();
        reason
    }

    fn parts(&self) -> (&str, &str) {
        match self {
            ComposeError::InvalidAddress { field, reason }
            | ComposeError::Missing { field, reason }
            | ComposeError::TooLarge { field, reason }
            | ComposeError::ForbiddenHeader { field, reason }
            | ComposeError::InvalidHeader { field, reason }
            | ComposeError::Invalid { field, reason } => (field, reason),
        }
    }
}

/// Checks a request and builds its message: text only → text/plain, html
/// only → text/html, both → multipart/alternative, with attachments →
/// multipart/mixed around that.
pub fn compose(request: &ComposeRequest<'_>) -> Result<Composed, ComposeError> {
    let (from_name, envelope_from) = parse_mailbox_at(request.from, "from")?;
    let mut needs_smtputf8 = !envelope_from.is_ascii();

    let total = request.to.len() + request.cc.len() + request.bcc.len();
    if total == 0 {
        return Err(ComposeError::Missing {
            field: "to".into(),
            reason: "at least one recipient is required".into(),
        });
    }
    let mut recipients = Vec::with_capacity(total.min(MAX_RECIPIENTS));
    let mut seen = HashSet::with_capacity(total.min(MAX_RECIPIENTS));
    let mut header_lists: [Vec<Address<'static>>; 2] = [Vec::new(), Vec::new()];
    let lists = [("to", request.to), ("cc", request.cc), ("bcc", request.bcc)];
    let mut counted = 0;
    for (list_index, (list_name, list)) in lists.into_iter().enumerate() {
        for (index, text) in list.iter().enumerate() {
            let field = format!("{list_name}[{index}]");
            counted += 1;
            if counted > MAX_RECIPIENTS {
                return Err(ComposeError::TooLarge {
                    field,
                    reason: format!("more than {MAX_RECIPIENTS} recipients in all"),
                });
            }
            let (name, address) = parse_mailbox_at(text, &field)?;
            needs_smtputf8 |= !address.is_ascii();
            if let Some(header_list) = header_lists.get_mut(list_index) {
                header_list.push(Address::new_address(name, format_path(&address)));
            }
            if seen.insert(address.to_lowercase()) {
                recipients.push(address);
            }
        }
    }

    let reply_to = match request.reply_to.filter(|r| !r.trim().is_empty()) {
        Some(text) => {
            let mailbox = parse_mailbox_at(text, "reply_to")?;
            needs_smtputf8 |= !mailbox.1.is_ascii();
            Some(mailbox)
        }
        None => None,
    };
    check_subject(request.subject)?;
    let message_id = message_id_inner(request.message_id)?;

    let [to, cc] = header_lists;
    let mut builder =
        MessageBuilder::new().from(Address::new_address(from_name, format_path(&envelope_from)));
    builder = match (to.is_empty(), cc.is_empty()) {
        // Only Bcc recipients: say so rather than leave To out, which
        // filters count against a message.
        (true, true) => builder.header(
            "To",
            Address::new_group(Some("undisclosed-recipients"), Vec::new()),
        ),
        (true, false) => builder,
        (false, _) => builder.to(Address::new_list(to)),
    };
    if !cc.is_empty() {
        builder = builder.cc(Address::new_list(cc));
    }
    if let Some((name, address)) = reply_to {
        builder = builder.reply_to(Address::new_address(name, format_path(&address)));
    }
    if !request.subject.is_empty() {
        builder = builder.header("Subject", subject_value(request.subject));
    }
    builder = builder
        .date(request.date.unix_timestamp())
        .message_id(message_id);
    for (name, value) in request.headers {
        let value = value.trim();
        builder = match check_header(name, value)? {
            HeaderText::Raw => builder.header(name.as_str(), Raw::new(value)),
            HeaderText::Encoded => builder.header(name.as_str(), Text::new(value)),
        };
    }

    let text = request.text.filter(|t| !t.is_empty()).map(crlf);
    let html = request.html.filter(|h| !h.is_empty()).map(crlf);
    if text.is_none() && html.is_none() {
        return Err(ComposeError::Missing {
            field: "text".into(),
            reason: "text or html is required".into(),
        });
    }
    if let Some(text) = text {
        builder = builder.text_body(text);
    }
    if let Some(html) = html {
        builder = builder.html_body(html);
    }
    for (index, attachment) in request.attachments.iter().enumerate() {
        check_filename(&attachment.filename, index)?;
        let parsed = content_type(
            &attachment.content_type,
            &format!("attachments[{index}].content_type"),
        )?;
        let mut mime_type = ContentType::new(parsed.mime_type);
        for (name, value) in parsed.params {
            mime_type = mime_type.attribute(name, value);
        }
        builder = builder.attachment(
            mime_type,
            attachment.filename.as_str(),
            BodyPart::Binary(Cow::Borrowed(&attachment.content)),
        );
    }

    let mut message = Vec::new();
    builder.serialize(&mut message);
    // A single-part body is written as given; the message must still end
    // with a line break (SMTP DATA, DKIM body hashes). Multipart messages
    // end with their closing boundary line.
    if !message.ends_with(b"\r\n") {
        message.extend_from_slice(b"\r\n");
    }
    Ok(Composed {
        message,
        envelope_from,
        recipients,
        needs_smtputf8,
    })
}

fn check_subject(subject: &str) -> Result<(), ComposeError> {
    let invalid = |reason: &str| ComposeError::Invalid {
        field: "subject".into(),
        reason: reason.into(),
    };
    if subject.contains(['\r', '\n']) {
        return Err(invalid("subject must not contain CR or LF"));
    }
    if subject.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid("subject contains a control character"));
    }
    if subject.chars().count() > MAX_LINE {
        return Err(ComposeError::TooLarge {
            field: "subject".into(),
            reason: format!("subject longer than {MAX_LINE} characters"),
        });
    }
    Ok(())
}

/// ASCII subjects are written as they are, folded at their spaces; others
/// (and ASCII with a word too long for a line) as RFC 2047 encoded words.
/// mail-builder would encode any ASCII subject over 77 characters, which
/// makes the raw message harder to read for nothing.
fn subject_value(subject: &str) -> HeaderType<'_> {
    let longest_word = subject.split([' ', '\t']).map(str::len).max().unwrap_or(0);
    if subject.is_ascii() && !subject.contains("=?") && "Subject: ".len() + longest_word <= MAX_LINE
    {
        Raw::new(subject).into()
    } else {
        Text::new(subject).into()
    }
}

fn check_filename(filename: &str, index: usize) -> Result<(), ComposeError> {
    let invalid = |reason: &str| ComposeError::Invalid {
        field: format!("attachments[{index}].filename"),
        reason: reason.into(),
    };
    if filename.trim().is_empty() {
        return Err(invalid("filename is required"));
    }
    if filename.chars().any(char::is_control) {
        return Err(invalid("filename contains a control character"));
    }
    if filename.chars().count() > 255 {
        return Err(invalid("filename longer than 255 characters"));
    }
    Ok(())
}

/// The id inside `<…>`: mail-builder adds the brackets.
fn message_id_inner(message_id: &str) -> Result<&str, ComposeError> {
    let inner = message_id
        .trim()
        .strip_prefix('<')
        .and_then(|id| id.strip_suffix('>'))
        .filter(|id| {
            id.contains('@')
                && id
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"<>\"\\".contains(c))
        });
    inner.ok_or_else(|| ComposeError::Invalid {
        field: "message_id".into(),
        reason: format!("not a message id of the form <id@host>: {message_id:?}"),
    })
}

/// Text with every line ending made CRLF: a bare CR or LF must not reach the
/// wire, whatever encoding mail-builder picks.
fn crlf(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let clean = bytes.iter().enumerate().all(|(at, &b)| match b {
        b'\r' => bytes.get(at + 1) == Some(&b'\n'),
        b'\n' => at > 0 && bytes.get(at - 1) == Some(&b'\r'),
        _ => true,
    });
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
