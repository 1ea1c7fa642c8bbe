//! Non-standard bounces: reports written for people only, with no
//! `message/delivery-status` part. Recipients are found in the text by the
//! shapes the common MTAs print:
//!
//! - an address at the start of a line, alone or followed by the reason:
//!   Postfix (`<a@b>: host mx[ip] said: 550 ...`), qmail and Yahoo
//!   (`<a@b>:` then the reply lines), Exim (`  a@b` then indented lines),
//!   GMX (`"a@b":`), Sendmail (`<a@b>... User unknown`), Exchange, Domino,
//!   GroupWise and Zoho (`a@b (reason)`, `a@b Invalid Address, ...`);
//! - a sentence naming it (Gmail: "Your message wasn't delivered to a@b
//!   because ...");
//! - RFC 3464 fields printed inline in the text (Barracuda and others);
//! - Exim's `X-Failed-Recipients` header, as a last resort.
//!
//! The reason is the text that follows the address, up to the next address,
//! a section line, or the blank line after the remote reply. This module
//! only reads text; deciding whether a message is a bounce at all is the
//! caller's business.

use super::BouncedRecipient;
use super::classify::{classify, find_code, find_status};

/// A recipient found in the text, with the lines that explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TextRecipient {
    pub address: String,
    pub diagnostic: String,
    pub remote_mta: Option<String>,
}

/// Lines that introduce the returned original in a text bounce.
const ORIGINAL_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "this is a copy of the message",
    "header of the original message is following",
    "original message headers",
    "original message follows",
    "message header follows",
    "unsent message below",
    "unsent message follows",
    "included is a copy of the message header",
];

/// Splits the human-readable text at the line that introduces the returned
/// original: the text before it and the original (headers and maybe body)
/// after it.
pub(super) fn split_original(text: &str) -> (&str, Option<&str>) {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let trimmed = line.trim();
        let lower = trimmed.to_ascii_lowercase();
        let marker = trimmed.len() < 120
            && (ORIGINAL_MARKERS.iter().any(|marker| lower.contains(marker))
                || lower == "original message:"
                || (lower.starts_with('-')
                    && (lower.contains("original message") || lower.contains("returned message"))));
        if marker {
            return (
                text.get(..start).unwrap_or(text),
                text.get(end..).filter(|rest| !rest.trim().is_empty()),
            );
        }
        start = end;
    }
    // Some MTAs (Zoho) append the original's header without a marker line.
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let lower = line.to_ascii_lowercase();
        if start > 0
            && ORIGINAL_FIRST_FIELDS
                .iter()
                .any(|field| lower.starts_with(field))
        {
            return (text.get(..start).unwrap_or(text), text.get(start..));
        }
        start += line.len();
    }
    (text, None)
}

/// Fields that open a returned header section appended without a marker.
const ORIGINAL_FIRST_FIELDS: &[&str] = &[
    "return-path:",
    "received: from ",
    "dkim-signature:",
    "message-id:",
    "x-carteiro-id:",
];

/// Recipients named in the human-readable text, each with its reason.
pub(super) fn recipients(human: &str) -> Vec<TextRecipient> {
    let lines: Vec<&str> = human
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let mut found: Vec<TextRecipient> = Vec::new();
    let mut previous = "";
    let mut at = 0;
    while let Some(&line) = lines.get(at) {
        let start = leading_address(line).or_else(|| sentence_address(line).map(|a| (a, line)));
        let Some((address, first)) = start else {
            if !line.trim().is_empty() {
                previous = line;
            }
            at += 1;
            continue;
        };
        // Exim's report to a third party names the sender first:
        // "A message sent by\n\n  <sender@x>\n\ncould not be delivered".
        if previous.trim().to_ascii_lowercase().ends_with("sent by") {
            previous = line;
            at += 1;
            continue;
        }
        let mut diagnostic = clean_rest(first).to_string();
        let mut next = at + 1;
        let mut content_lines = 0;
        while let Some(&line) = lines.get(next) {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                // The blank line after the remote reply ends the reason;
                // before it, the reason may still follow (Domino, Gmail).
                if has_reply(&diagnostic) {
                    break;
                }
                next += 1;
                continue;
            }
            // A line naming the same address continues the reason (a
            // folded Postfix line, "Sorry, your message to a@b ...").
            let new_recipient = leading_address(line)
                .map(|(found, _)| found)
                .or_else(|| sentence_address(line))
                .is_some_and(|found| !found.eq_ignore_ascii_case(&address));
            if new_recipient || is_section_line(trimmed) || content_lines >= 12 {
                break;
            }
            if !diagnostic.is_empty() {
                diagnostic.push(' ');
            }
            diagnostic.push_str(trimmed);
            content_lines += 1;
            next += 1;
        }
        // Lotus Notes prints the reason on the line before the address.
        let before = previous.trim();
        if diagnostic.is_empty()
            && !before.is_empty()
            && !before.ends_with(':')
            && !is_section_line(before)
            && leading_address(before).is_none()
        {
            diagnostic = before.to_string();
        }
        merge(&mut found, address, super::cap(&diagnostic));
        previous = line;
        at = next.max(at + 1);
        if found.len() >= super::MAX_RECIPIENTS {
            break;
        }
    }
    if found.is_empty() {
        found = transcript_recipients(&lines);
    }
    let only = found.len() == 1;
    for recipient in &mut found {
        // The reply line names the address (Sendmail's transcript), or, for
        // the only recipient, is the only reply in the text (MailMarshal).
        let reply = reply_line_for(&lines, &recipient.address)
            .or_else(|| only.then(|| first_reply_line(human)).flatten());
        if !has_reply(&recipient.diagnostic)
            && let Some(reply) = reply
        {
            if !recipient.diagnostic.is_empty() {
                recipient.diagnostic.push(' ');
            }
            recipient.diagnostic.push_str(&reply);
        }
        recipient.remote_mta = remote_host(&recipient.diagnostic);
    }
    found
}

/// Recipients named only in a session transcript's failure replies
/// (`Received >>> 550 5.1.1 <a@b>... user unknown`, `<<< 550 <a@b>: ...`):
/// a 4xx or 5xx reply that names an address in angle brackets. A last
/// resort, for reports that name their recipients nowhere else.
fn transcript_recipients(lines: &[&str]) -> Vec<TextRecipient> {
    let mut found: Vec<TextRecipient> = Vec::new();
    for line in lines {
        let trimmed = line.trim();
        let lower = trimmed.to_ascii_lowercase();
        if !find_code(&lower).is_some_and(|code| (400..600).contains(&code)) {
            continue;
        }
        let Some(address) = trimmed
            .split('<')
            .skip(1)
            .filter_map(|rest| rest.split_once('>').map(|(inner, _)| inner.trim()))
            .find(|inner| is_address(inner))
        else {
            continue;
        };
        let reply = trimmed
            .trim_start_matches(|c: char| c.is_ascii_alphabetic() || matches!(c, '<' | '>' | ' '))
            .to_string();
        merge(&mut found, address.to_string(), super::cap(&reply));
        if found.len() >= super::MAX_RECIPIENTS {
            break;
        }
    }
    found
}

/// Adds a recipient, or completes the one already found with the same
/// address (Exchange names each recipient twice, the reply only once).
fn merge(found: &mut Vec<TextRecipient>, address: String, diagnostic: String) {
    if let Some(known) = found
        .iter_mut()
        .find(|known| known.address.eq_ignore_ascii_case(&address))
    {
        if !has_reply(&known.diagnostic) && has_reply(&diagnostic) {
            known.diagnostic = diagnostic;
        }
        return;
    }
    found.push(TextRecipient {
        address,
        diagnostic,
        remote_mta: None,
    });
}

/// A line of the text that mentions `address` and carries a reply code, as
/// in Sendmail's session transcript (`<<< 550 5.1.1 <a@b>... User unknown`).
fn reply_line_for(lines: &[&str], address: &str) -> Option<String> {
    let needle = address.to_ascii_lowercase();
    lines.iter().find_map(|line| {
        let trimmed = line.trim();
        let lower = trimmed.to_ascii_lowercase();
        (!lower.starts_with(">>>") && lower.contains(&needle) && has_reply(&lower))
            .then(|| trimmed.trim_start_matches(['<', ' ']).to_string())
    })
}

fn has_reply(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    find_code(&lower).is_some() || find_status(&lower).is_some()
}

/// Lines that end a recipient's reason without naming another recipient.
fn is_section_line(trimmed: &str) -> bool {
    let lower = trimmed.to_ascii_lowercase();
    lower.starts_with("---")
        || lower.starts_with("===")
        || lower.starts_with("___")
        || lower.starts_with("reporting-mta:")
        || lower.contains("diagnostic information for administrators")
        || lower.contains("transcript of session")
}

/// The address a line starts with, and the rest of the line.
fn leading_address(line: &str) -> Option<(String, &str)> {
    // A list item ("   * a@b", "- a@b") names its address the same way.
    let trimmed = line.trim_start();
    let trimmed = match trimmed.strip_prefix(['*', '-', '\u{2022}']) {
        Some(item) if item.starts_with([' ', '\t']) => item.trim_start(),
        _ => trimmed,
    };
    // A labelled line ("Recipient: <a@b>", au's EZweb).
    let trimmed = match trimmed.get(..10) {
        Some(label) if label.eq_ignore_ascii_case("recipient:") => trimmed[10..].trim_start(),
        _ => trimmed,
    };
    let (candidate, rest) = if let Some(inner) = trimmed.strip_prefix('<') {
        let end = inner.find('>')?;
        (inner.get(..end)?, inner.get(end + 1..)?)
    } else if let Some(inner) = trimmed.strip_prefix('"') {
        let end = inner.find('"')?;
        (inner.get(..end)?, inner.get(end + 1..)?)
    } else {
        let end = trimmed
            .find(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '(' | '<' | ';'))
            .unwrap_or(trimmed.len());
        (trimmed.get(..end)?, trimmed.get(end..)?)
    };
    let address = candidate.trim().trim_end_matches(['.', ',', ';']);
    is_address(address).then(|| (address.to_string(), rest))
}

/// Phrases after which a sentence names the failed recipient.
const SENTENCE_PHRASES: &[&str] = &[
    "wasn't delivered to ",
    "was not delivered to ",
    "could not be delivered to ",
    "couldn't be delivered to ",
    "your message to ",
    "unable to deliver your message to ",
    "failed to deliver to ",
    "delivery to ",
    "delivering your mail to ",
    "unknown user: ",
    "returned permanent errors: ",
    "undeliverable to ",
];

/// The recipient a sentence names ("Your message wasn't delivered to a@b
/// because ...").
fn sentence_address(line: &str) -> Option<String> {
    let lower = line.to_ascii_lowercase();
    SENTENCE_PHRASES.iter().find_map(|phrase| {
        // "delivered to a@b" and "delivered to: <a@b>" alike.
        let phrase = phrase.trim_end();
        let at = lower.find(phrase)? + phrase.len();
        let rest = line.get(at..)?;
        if !rest.starts_with([' ', '\t', ':']) {
            return None;
        }
        let word = rest
            .trim_start_matches([':', ' ', '\t'])
            .split_whitespace()
            .next()?;
        let address = word
            .trim_matches(|c: char| matches!(c, '<' | '>' | '"' | '\'' | '(' | ')'))
            .trim_end_matches(['.', ',', ';', ':', '>']);
        is_address(address).then(|| address.to_string())
    })
}

/// What follows the address on its line, without the separator.
fn clean_rest(rest: &str) -> &str {
    rest.trim_start_matches([':', '.', ',', ';', ' ', '\t'])
        .trim_end()
}

/// A plausible mailbox: one `@`, a local part, a dotted domain, no spaces
/// or brackets.
pub(super) fn is_address(candidate: &str) -> bool {
    let Some((local, domain)) = candidate.rsplit_once('@') else {
        return false;
    };
    (1..=320).contains(&candidate.len())
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !candidate.contains(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '"' | '\\'
                )
        })
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

/// The remote server a reason names: Postfix and Exim `host mx.b[ip]`, GMX
/// `host: mx.b`, qmail `192.0.2.1 does not like recipient`.
pub(super) fn remote_host(diagnostic: &str) -> Option<String> {
    let lower = diagnostic.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = lower.get(search..).and_then(|rest| rest.find("host")) {
        let at = search + found;
        search = at + 4;
        let word_start = at == 0
            || lower
                .as_bytes()
                .get(at - 1)
                .is_some_and(u8::is_ascii_whitespace);
        if !word_start {
            continue;
        }
        let rest = diagnostic
            .get(at + 4..)?
            .trim_start_matches([':', ' ', '\t']);
        let token = rest
            .split(|c: char| c.is_whitespace() || matches!(c, '[' | ':' | ',' | '(' | ']'))
            .next()
            .unwrap_or("")
            .trim_end_matches(['.', ';']);
        if is_host_name(token) {
            return Some(token.to_string());
        }
    }
    let at = lower.find(" does not like recipient")?;
    let token = diagnostic.get(..at)?.split_whitespace().last()?;
    is_host_name(token).then(|| token.to_string())
}

fn is_host_name(token: &str) -> bool {
    token.contains('.')
        && token.len() <= 255
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Whether the text reports a delay (the MTA keeps trying) rather than a
/// failure.
pub(super) fn is_delay_notice(subject: &str, human: &str) -> bool {
    let subject = subject.to_ascii_lowercase();
    if subject.contains("delay") || subject.starts_with("warning:") {
        return true;
    }
    let human = human.to_ascii_lowercase();
    const DELAY: &[&str] = &[
        "has been delayed",
        "has not yet been delivered",
        "have not yet been delivered",
        "not been delivered yet",
        "will be retried",
        "will keep trying",
        "will continue trying",
        "still trying",
        "this is a warning message only",
        "you do not need to resend",
        "delivery attempts will continue",
    ];
    DELAY.iter().any(|phrase| human.contains(phrase)) && !human.contains("permanent")
}

/// The reporting host a text bounce names about itself.
pub(super) fn reporting_mta(human: &str) -> Option<String> {
    let lower = human.to_ascii_lowercase();
    const PHRASES: &[&str] = &[
        "mail system at host ",
        "qmail-send program at ",
        "generating server: ",
        "reporting-mta: dns;",
    ];
    PHRASES.iter().find_map(|phrase| {
        let at = lower.find(phrase)? + phrase.len();
        let token = human.get(at..)?.split_whitespace().next()?;
        let token = token.trim_end_matches(['.', ':', ',']);
        is_host_name(token).then(|| token.to_string())
    })
}

/// The first line of the text that carries a reply code or status, for
/// recipients known only from a header.
pub(super) fn first_reply_line(human: &str) -> Option<String> {
    human.lines().find_map(|line| {
        let trimmed = line.trim().trim_start_matches(['<', ' ']);
        (!trimmed.starts_with(">>>") && has_reply(trimmed)).then(|| super::cap(trimmed))
    })
}

/// RFC 3464 fields printed in the text: recipients read as from a DSN.
pub(super) fn inline_fields(human: &str) -> Vec<BouncedRecipient> {
    let has_fields = human.lines().any(|line| {
        line.trim_start()
            .to_ascii_lowercase()
            .starts_with("final-recipient:")
    });
    if !has_fields {
        return Vec::new();
    }
    super::dsn::parse_delivery_status(human).1
}

/// A recipient found in the text, as reported (`parse_report` then settles
/// its status and reason).
pub(super) fn into_bounced(recipient: TextRecipient, delayed: bool) -> BouncedRecipient {
    let status = find_status(&recipient.diagnostic.to_ascii_lowercase());
    let class = classify(None, status, &recipient.diagnostic);
    BouncedRecipient {
        recipient: recipient.address,
        original_recipient: None,
        action: if delayed { "delayed" } else { "failed" }.to_string(),
        status,
        remote_mta: recipient.remote_mta,
        diagnostic: Some(recipient.diagnostic).filter(|text| !text.is_empty()),
        class,
        reason: super::Reason::Undefined,
    }
}
