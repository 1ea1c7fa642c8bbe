//! The returned original inside a report: a `message/rfc822` part, a
//! `text/rfc822-headers` part, or the headers quoted in a text bounce after
//! a line such as "--- Below this line is a copy of the message.". Only the
//! few header fields that tie a report to a sent message are read.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// Header fields of the returned original.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct OriginalHeaders {
    /// As written, angle brackets included: `<id@host>`.
    pub message_id: Option<String>,
    /// The address only: `b+token@bounces.shop.test`.
    pub return_path: Option<String>,
    pub carteiro_id: Option<String>,
    /// The first address of `To:`.
    pub to: Option<String>,
    pub subject: Option<String>,
}

/// Reads the original from the report's parts, else from the text quoted
/// after the original-message marker.
pub(super) fn find(report: &Message<'_>, quoted: Option<&str>) -> OriginalHeaders {
    report
        .parts
        .iter()
        .skip(1)
        .find_map(|part| match &part.body {
            PartType::Message(original) => Some(headers_of(original)),
            PartType::Text(text) if part.is_content_type("text", "rfc822-headers") => {
                parse_headers(text.as_bytes())
            }
            PartType::Binary(bytes) | PartType::InlineBinary(bytes)
                if part.is_content_type("message", "rfc822-headers")
                    || part.is_content_type("text", "rfc822-headers") =>
            {
                parse_headers(bytes)
            }
            _ => None,
        })
        .or_else(|| quoted.and_then(|text| parse_headers(text.trim_start().as_bytes())))
        .unwrap_or_default()
}

fn parse_headers(bytes: &[u8]) -> Option<OriginalHeaders> {
    let message = MessageParser::new().parse_headers(bytes)?;
    let headers = headers_of(&message);
    (headers != OriginalHeaders::default()).then_some(headers)
}

fn headers_of(message: &Message<'_>) -> OriginalHeaders {
    OriginalHeaders {
        message_id: raw(message, "Message-ID"),
        return_path: raw(message, "Return-Path")
            .map(|value| {
                value
                    .trim_matches(|c| c == '<' || c == '>')
                    .trim()
                    .to_string()
            })
            .filter(|value| !value.is_empty()),
        carteiro_id: raw(message, "X-Carteiro-Id"),
        to: message
            .to()
            .and_then(|to| to.first())
            .and_then(|addr| addr.address())
            .map(str::to_string)
            .or_else(|| raw(message, "To")),
        subject: message.subject().map(|subject| subject.trim().to_string()),
    }
}

/// A header value unfolded and trimmed; `None` when absent or empty.
pub(super) fn raw(message: &Message<'_>, name: &str) -> Option<String> {
    let value = message.header_raw(name)?;
    let unfolded = value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!unfolded.is_empty()).then_some(unfolded)
}
