//! Reading and completing a message's header section on the SMTP hot path.
//!
//! Every accepted message passes through [`summarize`], so it scans the
//! header section itself, line by line with `memchr`, and decodes only the
//! few values that are asked for. It never parses the MIME structure or looks
//! at the body, never changes the message, and does no I/O.
//!
//! Where the header section ends: at the first empty line (the offset just
//! after it), or before the first line that is neither a header field nor a
//! continuation line (the body then starts there, as Postfix treats it), or at
//! the end of a message made of header fields only. A message whose first line
//! is not a header field has no header section: `header_end` is 0.

mod mailbox;
#[cfg(test)]
mod tests;

use crate::address::{normalize_domain, split_address};
use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;
use memchr::{memchr, memmem};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// What the rest of the mail path needs to know about a message's header
/// section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderSummary {
    /// Offset just past the empty line ending the header section; see the
    /// module documentation for messages without one.
    pub header_end: usize,
    /// The addr-spec of the first mailbox of the first `From:` field, with
    /// quoting removed (as envelope addresses are kept), e.g.
    /// `alice@shop.example`. `None` without a `From:` field or when its first
    /// mailbox cannot be parsed or has no valid domain.
    pub from: Option<String>,
    /// How many `From:` fields there are (more than one is suspicious: which
    /// one a reader shows and which one DMARC checks may differ).
    pub from_count: usize,
    /// The lowercased domain of `from`.
    pub from_domain: Option<String>,
    /// The first `Subject:`, unfolded, RFC 2047-decoded and trimmed.
    pub subject: Option<String>,
    /// The first `Message-ID:` value as written (unfolded, trimmed), e.g.
    /// `<x@y>`. `Some` even when empty: the field exists, and adding a second
    /// one would make the message invalid.
    pub message_id: Option<String>,
    pub has_date: bool,
    pub has_mime_version: bool,
}

/// The fields `summarize` looks at; all others are skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    From,
    Subject,
    MessageId,
    Date,
    MimeVersion,
    Other,
}

/// Scans the header section of `message` (CRLF line endings; a bare LF is
/// tolerated) and reads the fields of [`HeaderSummary`]. Never panics.
pub fn summarize(message: &[u8]) -> HeaderSummary {
    let mut summary = HeaderSummary::default();
    let mut subject_range = None;
    // The field being read and where its value starts (just after the colon).
    let mut current: Option<(Field, usize)> = None;
    let mut pos = 0;

    summary.header_end = loop {
        let Some(rest) = message.get(pos..).filter(|rest| !rest.is_empty()) else {
            finish_field(
                message,
                current.take(),
                pos,
                &mut summary,
                &mut subject_range,
            );
            break message.len();
        };
        let line_end = memchr(b'\n', rest).map_or(message.len(), |at| pos + at + 1);
        match rest {
            [b'\r', b'\n', ..] | [b'\n', ..] => {
                finish_field(
                    message,
                    current.take(),
                    pos,
                    &mut summary,
                    &mut subject_range,
                );
                break line_end;
            }
            // A continuation line of the current field; at the very start of
            // the message there is no field to continue, so no header.
            [b' ' | b'\t', ..] if current.is_some() => {}
            _ => {
                finish_field(
                    message,
                    current.take(),
                    pos,
                    &mut summary,
                    &mut subject_range,
                );
                match field_at(message.get(pos..line_end).unwrap_or_default()) {
                    Some((field, colon)) => current = Some((field, pos + colon + 1)),
                    None => break pos,
                }
            }
        }
        pos = line_end;
    };

    summary.from_domain = summary
        .from
        .as_deref()
        .and_then(split_address)
        .map(|(_, domain)| normalize_domain(domain));
    summary.subject = subject_range.and_then(|(start, end)| {
        message
            .get(start..end)
            .map(|raw: &[u8]| decode_unstructured(raw))
    });
    summary
}

/// Records what the field that ends at `end` contributes to the summary.
fn finish_field(
    message: &[u8],
    field: Option<(Field, usize)>,
    end: usize,
    summary: &mut HeaderSummary,
    subject_range: &mut Option<(usize, usize)>,
) {
    let Some((field, start)) = field else {
        return;
    };
    let value = message.get(start..end).unwrap_or_default();
    match field {
        Field::From => {
            summary.from_count += 1;
            if summary.from_count == 1 {
                summary.from = mailbox::first_addr_spec(value);
            }
        }
        Field::Subject if subject_range.is_none() => *subject_range = Some((start, end)),
        Field::MessageId if summary.message_id.is_none() => {
            summary.message_id = Some(unfold_trimmed(value));
        }
        Field::Date => summary.has_date = true,
        Field::MimeVersion => summary.has_mime_version = true,
        Field::Subject | Field::MessageId | Field::Other => {}
    }
}

/// Reads the field name of a header line: the field and the offset of the
/// colon, or `None` when the line is not a header field. Whitespace before
/// the colon is accepted (RFC 5322 obsolete syntax, still seen).
fn field_at(line: &[u8]) -> Option<(Field, usize)> {
    let colon = memchr(b':', line)?;
    let name = line.get(..colon)?;
    let name_end = name
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |at| at + 1);
    let name = name.get(..name_end)?;
    if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    let field = match name.len() {
        4 if name.eq_ignore_ascii_case(b"from") => Field::From,
        4 if name.eq_ignore_ascii_case(b"date") => Field::Date,
        7 if name.eq_ignore_ascii_case(b"subject") => Field::Subject,
        10 if name.eq_ignore_ascii_case(b"message-id") => Field::MessageId,
        12 if name.eq_ignore_ascii_case(b"mime-version") => Field::MimeVersion,
        _ => Field::Other,
    };
    Some((field, colon))
}

fn is_wsp_or_eol(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_bytes(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !is_wsp_or_eol(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_wsp_or_eol(b))
        .map_or(start, |at| at + 1);
    value.get(start..end).unwrap_or_default()
}

/// A field value with its line breaks removed (the folding whitespace stays),
/// trimmed.
fn unfold_trimmed(value: &[u8]) -> String {
    let value = trim_bytes(value);
    if memchr(b'\n', value).is_none() {
        return String::from_utf8_lossy(value).into_owned();
    }
    let unfolded: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&unfolded).into_owned()
}

/// Unfolds and RFC 2047-decodes an unstructured value (`Subject:`), trimmed.
/// Raw 8-bit text (SMTPUTF8) is read as UTF-8, invalid sequences replaced.
fn decode_unstructured(raw: &[u8]) -> String {
    let trimmed = trim_bytes(raw);
    // Most subjects are one line of plain text: no need for the decoder.
    if memchr(b'\n', trimmed).is_none()
        && memmem::find(trimmed, b"=?").is_none()
        && let Ok(text) = std::str::from_utf8(trimmed)
    {
        return text.to_string();
    }
    // mail-parser's decoder reads up to a line end, so the value must end
    // with one (it does not at the end of a header-only message).
    let owned;
    let input = if raw.ends_with(b"\n") {
        raw
    } else {
        owned = [raw, b"\r\n"].concat();
        &owned
    };
    match MessageStream::new(input).parse_unstructured() {
        HeaderValue::Text(text) => text.trim().to_string(),
        _ => String::new(),
    }
}

/// Header fields to insert at the top of the header section so that the
/// message has a `Message-ID` and a `Date`: `Message-ID: <{id}@{hostname}>`
/// and/or `Date: <now, RFC 5322>`, each ending in CRLF. Empty when neither is
/// missing. `id` and `hostname` are ours (a message id, the configured host
/// name) and are written as given.
pub fn missing_headers(
    summary: &HeaderSummary,
    id: &str,
    hostname: &str,
    now: OffsetDateTime,
) -> String {
    let mut out = String::new();
    if summary.message_id.is_none() {
        out.reserve(id.len() + hostname.len() + 18);
        out.push_str("Message-ID: <");
        out.push_str(id);
        out.push('@');
        out.push_str(hostname);
        out.push_str(">\r\n");
    }
    if !summary.has_date {
        // Formatting fails only for years RFC 5322 cannot write (before 1900).
        let date = now
            .format(&Rfc2822)
            .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into());
        out.push_str("Date: ");
        out.push_str(&date);
        out.push_str("\r\n");
    }
    out
}

/// Whether the header section of `message` has a field named `name`
/// (lowercase, without the colon).
pub fn has_field(message: &[u8], name: &[u8]) -> bool {
    field_value(message, name).is_some()
}

/// The value of the first field named `name` (lowercase, without the colon)
/// in the header section of `message`: its first line, white space trimmed
/// (enough for the one-word fields Carteiro reads). Stops at the blank line
/// without a full [`summarize`]: it runs once per message beside it.
pub fn field_value<'m>(message: &'m [u8], name: &[u8]) -> Option<&'m [u8]> {
    let mut pos = 0;
    while pos < message.len() {
        let line_end = memchr(b'\n', &message[pos..]).map_or(message.len(), |at| pos + at + 1);
        let line = &message[pos..line_end];
        if line == b"\r\n" || line == b"\n" {
            return None;
        }
        if line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name) {
            let rest = &line[name.len()..];
            let colon = rest.iter().position(|&b| b != b' ' && b != b'\t');
            if let Some(colon) = colon.filter(|&at| rest[at] == b':') {
                return Some(rest[colon + 1..].trim_ascii());
            }
        }
        pos = line_end;
    }
    None
}

/// `message` without the header fields named `name` (each with its folded
/// continuation lines), or `None` when it has none: Carteiro's own control
/// fields are read and then taken out, never sent on. Only the header
/// section is looked at; one copy of the message when something is removed.
pub fn remove_fields(message: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    let mut cutting: Option<usize> = None;
    while pos < message.len() {
        let line_end = memchr(b'\n', &message[pos..]).map_or(message.len(), |at| pos + at + 1);
        let line = &message[pos..line_end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if let Some(start) = cutting.take() {
            if continuation {
                cutting = Some(start);
                pos = line_end;
                continue;
            }
            cuts.push((start, pos));
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !continuation && names_field(line, name) {
            cutting = Some(pos);
        }
        pos = line_end;
    }
    if let Some(start) = cutting {
        cuts.push((start, pos));
    }
    if cuts.is_empty() {
        return None;
    }
    let removed: usize = cuts.iter().map(|(start, end)| end - start).sum();
    let mut out = Vec::with_capacity(message.len() - removed);
    let mut from = 0;
    for (start, end) in cuts {
        out.extend_from_slice(&message[from..start]);
        from = end;
    }
    out.extend_from_slice(&message[from..]);
    Some(out)
}

/// Whether a header line starts the field `name` (`Name:` or `Name :`).
fn names_field(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line[..name.len()].eq_ignore_ascii_case(name)
        && line[name.len()..]
            .iter()
            .find(|&&b| b != b' ' && b != b'\t')
            .is_some_and(|&b| b == b':')
}

/// Inserts `fields` (complete header lines, each ending in CRLF) at byte
/// offset `at` of `message` (clamped to its length), into a new buffer of
/// exactly the final size: one copy of the message.
pub fn insert_at(message: &[u8], at: usize, fields: &[&[u8]]) -> Vec<u8> {
    let at = at.min(message.len());
    let added: usize = fields.iter().map(|field| field.len()).sum();
    let mut out = Vec::with_capacity(message.len() + added);
    let (head, tail) = message.split_at(at);
    out.extend_from_slice(head);
    for field in fields {
        out.extend_from_slice(field);
    }
    out.extend_from_slice(tail);
    out
}
