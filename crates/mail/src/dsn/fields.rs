//! The machine-readable part of a DSN (`message/delivery-status`, RFC 3464
//! §2) and the byte-level helpers that keep a report well formed: header
//! text without line breaks, folding, CRLF-only line endings.
//!
//! The delivery-status part travels as 7bit, so everything written here is
//! ASCII; non-ASCII addresses use the `utf-8` address type of RFC 6533.

use super::DsnReport;
use std::borrow::Cow;
use std::fmt::Write as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Lines are folded before this column where a space allows it.
const FOLD_AT: usize = 78;
/// A run without spaces longer than this is cut: RFC 5322 allows at most 998
/// characters on a line.
const MAX_WORD: usize = 900;

/// The body of the `message/delivery-status` part, ending with CRLF.
pub(super) fn delivery_status(report: &DsnReport<'_>) -> Vec<u8> {
    let mut out = String::new();
    field(
        &mut out,
        "Reporting-MTA",
        &format!("dns; {}", ascii_token(report.reporting_mta)),
    );
    if let Some(envid) = report.envid {
        field(&mut out, "Original-Envelope-Id", &ascii_text(envid));
    }
    field(&mut out, "Arrival-Date", &format_date(report.arrival_date));
    for recipient in report.recipients {
        out.push_str("\r\n");
        if let Some(orcpt) = &recipient.orcpt {
            field(&mut out, "Original-Recipient", &original_recipient(orcpt));
        }
        field(
            &mut out,
            "Final-Recipient",
            &typed_address(&recipient.address),
        );
        field(&mut out, "Action", recipient.action.as_str());
        field(&mut out, "Status", &recipient.status.to_string());
        if let Some(host) = &recipient.remote_mta {
            field(
                &mut out,
                "Remote-MTA",
                &format!("dns; {}", ascii_token(host)),
            );
        }
        if let Some(reply) = &recipient.diagnostic {
            field(
                &mut out,
                "Diagnostic-Code",
                &format!("smtp; {}", ascii_text(&reply.to_string())),
            );
        }
        if let Some(date) = recipient.last_attempt {
            field(&mut out, "Last-Attempt-Date", &format_date(date));
        }
        if recipient.action == super::Action::Delayed
            && let Some(date) = recipient.will_retry_until
        {
            field(&mut out, "Will-Retry-Until", &format_date(date));
        }
    }
    out.into_bytes()
}

/// Appends `Name: value` CRLF, folded at spaces (RFC 5322 §2.2.3) so no line
/// runs past [`FOLD_AT`] unless one word is longer.
fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let mut column = name.len() + 1;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        for piece in chunks(word, MAX_WORD) {
            if column + 1 + piece.len() > FOLD_AT && column > name.len() + 1 {
                out.push_str("\r\n");
                column = 0;
            }
            out.push(' ');
            out.push_str(piece);
            column += 1 + piece.len();
        }
    }
    out.push_str("\r\n");
}

/// Splits an ASCII string into pieces of at most `size` bytes.
fn chunks(word: &str, size: usize) -> impl Iterator<Item = &str> {
    word.as_bytes()
        .chunks(size)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or(""))
}

/// An RFC 5322 date, as in the trace headers.
pub(super) fn format_date(date: OffsetDateTime) -> String {
    date.format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

/// Text for one header line: control characters (CR and LF above all, which
/// would start a new header) become spaces, runs of spaces collapse.
pub(super) fn clean_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out
}

/// Like [`clean_line`], and non-ASCII becomes `?`: the delivery-status part
/// is 7bit.
fn ascii_text(text: &str) -> String {
    clean_line(text)
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

/// A host name: printable ASCII only, no spaces.
fn ascii_token(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_graphic()).collect()
}

/// `rfc822; addr`, or `utf-8; addr` with RFC 6533 escapes for an address
/// that is not ASCII.
fn typed_address(address: &str) -> String {
    let address = clean_line(address);
    if address.is_ascii() {
        format!("rfc822; {address}")
    } else {
        format!("utf-8; {}", utf8_addr_xtext(&address))
    }
}

/// `Original-Recipient` from the kept `ORCPT`: `type;address`.
fn original_recipient(orcpt: &str) -> String {
    let orcpt = clean_line(orcpt);
    let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", &orcpt));
    let (kind, address) = (kind.trim(), address.trim());
    if address.is_ascii() && kind.is_ascii() {
        format!("{kind};{address}")
    } else {
        format!("utf-8;{}", utf8_addr_xtext(address))
    }
}

/// RFC 6533 `utf-8-addr-xtext`: `+`, `=`, `\`, spaces and non-ASCII written as
/// `\x{HEX}`.
fn utf8_addr_xtext(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for c in address.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:X}}}", c as u32);
        }
    }
    out
}

/// The message with every line ending a CRLF. Spooled messages already are;
/// a bare CR or LF would otherwise end a line differently in each reader, and
/// would be refused by strict servers on the way back.
pub(super) fn crlf_only(message: &[u8]) -> Cow<'_, [u8]> {
    let bare = message.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => message.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || message[i - 1] != b'\r',
        _ => false,
    });
    if !bare {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// The header section of a CRLF message, including the CRLF that ends its
/// last field but not the blank line. A message without a body is all header.
///
/// The section ends where [`crate::headers::summarize`] says, so also before
/// the first line that is not a header field: looking only for the blank
/// line would send back the body of a message that has none (RET=HDRS must
/// not return the content).
pub(super) fn header_section(message: &[u8]) -> &[u8] {
    let end = crate::headers::summarize(message).header_end;
    let section = message.get(..end).unwrap_or(message);
    // `header_end` is past the blank line when there is one: drop it.
    match section.strip_suffix(b"\r\n") {
        Some(fields) if fields.is_empty() || fields.ends_with(b"\r\n") => fields,
        _ => section,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_fold_at_spaces() {
        let mut out = String::new();
        let value = format!("smtp; 550 5.1.1 {}", "word ".repeat(40));
        field(&mut out, "Diagnostic-Code", &value);
        assert!(out.ends_with("\r\n"));
        for line in out.trim_end().split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line:?}");
        }
        let continuation = out.split("\r\n").skip(1).filter(|l| !l.is_empty());
        assert!(continuation.clone().count() > 1);
        assert!(continuation.into_iter().all(|l| l.starts_with(' ')));
        let unfolded = out.replace("\r\n", "");
        assert_eq!(
            unfolded.trim_end(),
            format!("Diagnostic-Code: {}", value.trim_end())
        );
    }

    #[test]
    fn a_long_word_is_cut_below_the_line_limit() {
        let mut out = String::new();
        field(&mut out, "Diagnostic-Code", &"x".repeat(3000));
        assert!(out.split("\r\n").all(|line| line.len() <= 998));
    }

    #[test]
    fn header_text_loses_line_breaks() {
        assert_eq!(clean_line("a\r\nInjected: yes\n"), "a Injected: yes");
        assert_eq!(ascii_text("caf\u{e9}\tok"), "caf? ok");
        assert_eq!(ascii_token("mx.test\r\nX: y"), "mx.testX:y");
    }

    #[test]
    fn non_ascii_addresses_use_the_utf8_type() {
        assert_eq!(typed_address("a@b.test"), "rfc822; a@b.test");
        assert_eq!(
            typed_address("j\u{f6}+x@b.test"),
            "utf-8; j\\x{F6}\\x{2B}x@b.test"
        );
        assert_eq!(original_recipient("rfc822;a@b.test"), "rfc822;a@b.test");
        assert_eq!(
            original_recipient("rfc822; \u{f6}@b.test"),
            "utf-8;\\x{F6}@b.test"
        );
        assert_eq!(original_recipient("a@b.test"), "rfc822;a@b.test");
    }

    #[test]
    fn bare_line_ends_become_crlf() {
        assert!(matches!(crlf_only(b"a\r\nb\r\n"), Cow::Borrowed(_)));
        assert_eq!(&*crlf_only(b"a\nb\rc\r\n\n"), b"a\r\nb\r\nc\r\n\r\n");
        assert_eq!(&*crlf_only(b"\n"), b"\r\n");
    }

    #[test]
    fn header_section_stops_at_the_blank_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_section(b"\r\nbody\r\n"), b"");
        assert_eq!(
            header_section(b"A: 1\r\nno colon\r\n\r\nbody\r\n"),
            b"A: 1\r\n"
        );
        assert_eq!(header_section(b"not a header\r\n\r\nbody\r\n"), b"");
        assert_eq!(header_section(b"A:\r\n\r\n"), b"A:\r\n");
    }
}
