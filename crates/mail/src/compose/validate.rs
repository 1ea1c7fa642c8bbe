//! Checks of the values a `POST /api/v1/messages` request brings: mailboxes,
//! custom header fields, attachment content types. Each check names the
//! request field it refuses, so the HTTP layer can point the user at it.

use super::ComposeError;
use crate::address::is_valid_domain;

/// RFC 5321 §4.5.3.1.1: at most 64 octets of local part.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.3 (a path of 256 octets includes the angle brackets).
const MAX_ADDRESS: usize = 254;
/// Longer names are of no use to anyone and could not always be folded into
/// a 998-octet line.
const MAX_DISPLAY_NAME: usize = 256;
/// A field name and its `: ` must fit on the first line of 78 octets.
const MAX_HEADER_NAME: usize = 76;
/// RFC 5322 §2.1.1: lines of at most 998 octets (without CRLF).
pub(super) const MAX_LINE: usize = 998;

/// Header fields a request may not set: Carteiro writes them itself, or they
/// would break routing, signing or authentication results downstream.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "received",
    "dkim-signature",
    "return-path",
    "authentication-results",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
];

/// Parses `addr-spec` or `Display Name <addr-spec>` into the display name
/// (unquoted) and the addr-spec (quoting of the local part removed, as
/// envelope addresses are kept). The domain must be valid; local parts may be
/// UTF-8 (the message then needs SMTPUTF8).
pub fn parse_mailbox(text: &str) -> Result<(Option<String>, String), ComposeError> {
    parse_mailbox_at(text, "address")
}

pub(super) fn parse_mailbox_at(
    text: &str,
    field: &str,
) -> Result<(Option<String>, String), ComposeError> {
    let bad = |reason: &str| ComposeError::InvalidAddress {
        field: field.to_string(),
        reason: format!("invalid address {text:?}: {reason}"),
    };
    // Before trimming: a line break anywhere is refused, not tidied away.
    if text.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("empty"));
    }
    let (name, addr) = match text.strip_suffix('>') {
        Some(inner) => {
            let open = angle_start(inner).ok_or_else(|| bad("no opening '<'"))?;
            let (name, addr) = (inner[..open].trim(), inner[open + 1..].trim());
            (display_name(name).map_err(bad)?, addr)
        }
        None => (None, text),
    };
    let addr = addr_spec(addr).map_err(bad)?;
    Ok((name, addr))
}

/// Byte offset of the `<` that opens the angle address: the last one outside
/// a quoted display name.
fn angle_start(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    let mut open = None;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => open = Some(at),
            _ => {}
        }
    }
    open
}

/// A display name as typed: a quoted string is unquoted, anything else is
/// taken as it is (mail-builder quotes or encodes it when writing).
fn display_name(name: &str) -> Result<Option<String>, &'static str> {
    let name = match name.strip_prefix('"') {
        Some(rest) => {
            let inner = rest
                .strip_suffix('"')
                .ok_or("display name has an unclosed quote")?;
            unquote(inner).ok_or("display name has a stray quote")?
        }
        None if name.contains('"') => return Err("display name has a stray quote"),
        None => name.to_string(),
    };
    let name = name.trim();
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err("display name longer than 256 characters");
    }
    Ok((!name.is_empty()).then(|| name.to_string()))
}

/// The content of a quoted string with its escapes removed; `None` when it
/// holds an unescaped quote.
fn unquote(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Checks an addr-spec and returns it with the quoting of its local part
/// removed.
fn addr_spec(addr: &str) -> Result<String, &'static str> {
    let (local, domain) = match addr.strip_prefix('"') {
        Some(rest) => {
            let close = closing_quote(rest).ok_or("unclosed quote in local part")?;
            let domain = rest[close + 1..]
                .strip_prefix('@')
                .ok_or("missing '@' after the quoted local part")?;
            let local = unquote(&rest[..close]).ok_or("stray quote in local part")?;
            if local.is_empty() {
                return Err("empty local part");
            }
            (local, domain)
        }
        None => {
            let (local, domain) = addr.split_once('@').ok_or("missing '@'")?;
            if !is_dot_atom(local) {
                return Err("local part is not a dot-atom (quote it)");
            }
            (local.to_string(), domain)
        }
    };
    if local.len() > MAX_LOCAL_PART {
        return Err("local part longer than 64 octets");
    }
    if !is_valid_domain(domain) {
        return Err("invalid domain");
    }
    let address = format!("{local}@{domain}");
    if address.len() > MAX_ADDRESS {
        return Err("longer than 254 octets");
    }
    Ok(address)
}

fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(at),
            _ => {}
        }
    }
    None
}

/// RFC 5322 `dot-atom-text`, with UTF-8 allowed (RFC 6532).
fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom.chars().all(|c| {
                    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
                })
        })
}

/// How a custom header value is written.
pub(super) enum HeaderText {
    /// ASCII: written as given, folded at its whitespace only.
    Raw,
    /// Non-ASCII: written as RFC 2047 encoded words.
    Encoded,
}

/// Checks one custom header field of a request.
pub(super) fn check_header(name: &str, value: &str) -> Result<HeaderText, ComposeError> {
    let field = format!("headers.{name}");
    let invalid = |reason: &str| ComposeError::InvalidHeader {
        field: field.clone(),
        reason: reason.to_string(),
    };
    if name.is_empty()
        || name.len() > MAX_HEADER_NAME
        || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
    {
        return Err(invalid(
            "not a header field name (1 to 76 printable ASCII characters, no colon)",
        ));
    }
    if name.eq_ignore_ascii_case("reply-to") {
        return Err(ComposeError::ForbiddenHeader {
            field,
            reason: "set Reply-To with the reply_to field".into(),
        });
    }
    if RESERVED_HEADERS
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
    {
        return Err(ComposeError::ForbiddenHeader {
            field,
            reason: format!("{name} is set by carteiro and cannot be given"),
        });
    }
    if value.contains(['\r', '\n']) {
        return Err(invalid("value must not contain CR or LF"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid("value contains a control character"));
    }
    if !value.is_ascii() {
        return Ok(HeaderText::Encoded);
    }
    // ASCII values are folded only at their own whitespace, so one word must
    // fit on a line whatever happens.
    let longest_word = value.split([' ', '\t']).map(str::len).max().unwrap_or(0);
    if name.len() + 2 + longest_word > MAX_LINE {
        return Err(ComposeError::TooLarge {
            field,
            reason: "value has a word longer than a header line allows".into(),
        });
    }
    Ok(HeaderText::Raw)
}

/// A parsed attachment content type: `type/subtype` (lowercased) and its
/// parameters.
pub(super) struct ContentType {
    pub(super) mime_type: String,
    pub(super) params: Vec<(String, String)>,
}

/// RFC 2045 `token`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// Parses `type/subtype; name=value; …`. Multipart and message types are
/// refused: an attachment's content is one opaque part, and mail-builder
/// would base64-encode a message/rfc822, which RFC 2046 forbids. An empty
/// value means `application/octet-stream`.
pub(super) fn content_type(text: &str, field: &str) -> Result<ContentType, ComposeError> {
    let invalid = |reason: &str| ComposeError::Invalid {
        field: field.to_string(),
        reason: format!("{reason}: {text:?}"),
    };
    let mut parts = text.split(';').map(str::trim);
    let mime_type = parts.next().unwrap_or_default().to_ascii_lowercase();
    if mime_type.is_empty() {
        return Ok(ContentType {
            mime_type: "application/octet-stream".into(),
            params: Vec::new(),
        });
    }
    let (kind, subtype) = mime_type
        .split_once('/')
        .ok_or_else(|| invalid("not a content type (type/subtype)"))?;
    if !is_token(kind) || !is_token(subtype) {
        return Err(invalid("not a content type (type/subtype)"));
    }
    if kind == "multipart" || kind == "message" {
        return Err(invalid("multipart and message types cannot be attachments"));
    }
    let mut params = Vec::new();
    for param in parts.filter(|p| !p.is_empty()) {
        let (name, value) = param
            .split_once('=')
            .ok_or_else(|| invalid("parameter without a value"))?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        let value = match value.strip_prefix('"') {
            Some(rest) => rest
                .strip_suffix('"')
                .and_then(unquote)
                .ok_or_else(|| invalid("badly quoted parameter"))?,
            None => value.to_string(),
        };
        if !is_token(&name) || value.chars().any(char::is_control) || value.len() > 256 {
            return Err(invalid("bad parameter"));
        }
        // The filename is the attachment's own field; a boundary means
        // nothing on a single part.
        if name != "name" && name != "boundary" {
            params.push((name, value));
        }
    }
    Ok(ContentType { mime_type, params })
}
