//! The machine-readable part of a DSN (`message/delivery-status`, RFC 3464
//! §2.2–2.3) and the field syntax it shares with ARF reports: header-like
//! `Name: value` lines, folded continuation lines, groups separated by blank
//! lines.
//!
//! Real reports bend the syntax: groups without blank lines between them,
//! lowercase names, values without the `rfc822;` type, trailing comments.
//! The reader accepts all of these and skips lines it cannot read; it never
//! fails, it only finds fewer recipients.

use super::BouncedRecipient;
use super::classify::{classify, find_status};
use crate::reply::Status;

/// One `Name: value` field; the name lowercased, the value unfolded (each
/// line break and the whitespace around it become one space) and trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Field {
    pub name: String,
    pub value: String,
}

/// Reads `text` as groups of fields. Lines that are neither a field nor a
/// continuation are skipped and end the field before them.
pub(super) fn field_groups(text: &str) -> Vec<Vec<Field>> {
    let mut groups = Vec::new();
    let mut group: Vec<Field> = Vec::new();
    let mut continuing = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
            continuing = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if continuing && let Some(last) = group.last_mut() {
                let piece = line.trim();
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(piece);
            }
            continue;
        }
        match split_field(line) {
            Some((name, value)) => {
                group.push(Field {
                    name: name.to_ascii_lowercase(),
                    value: value.trim().to_string(),
                });
                continuing = true;
            }
            None => continuing = false,
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// `Name: value` with a name of printable ASCII without spaces.
fn split_field(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    valid.then_some((name, value))
}

/// The value after a `type;` prefix (`rfc822; a@b`, `dns; mx.b`,
/// `smtp; 550 ...`), or the whole value when there is none.
pub(super) fn strip_type(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest))
            if !kind.trim().is_empty()
                && kind.trim().len() <= 20
                && !kind.trim().contains([' ', '<', '@']) =>
        {
            rest.trim()
        }
        _ => value.trim(),
    }
}

/// An address from an address field: the type stripped, then angle
/// brackets and a trailing comment.
pub(super) fn clean_address(value: &str) -> Option<String> {
    let value = strip_type(value);
    let value = value
        .split_whitespace()
        .find(|word| word.contains('@'))
        .or_else(|| value.split_whitespace().next())?;
    let value = value
        .trim_matches(|c: char| matches!(c, '<' | '>' | '"' | '\'' | ',' | ';'))
        .trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Per-message fields (RFC 3464 §2.2) that matter here.
#[derive(Debug, Default)]
pub(super) struct PerMessage {
    pub reporting_mta: Option<String>,
}

#[derive(Debug, Default)]
struct RawRecipient {
    final_recipient: Option<String>,
    original_recipient: Option<String>,
    action: Option<String>,
    status: Option<String>,
    remote_mta: Option<String>,
    diagnostic: Option<String>,
}

impl RawRecipient {
    fn is_empty(&self) -> bool {
        self.final_recipient.is_none() && self.original_recipient.is_none()
    }
}

/// Reads a delivery-status body: the per-message fields and one entry per
/// recipient that names an address. A new recipient starts at a blank line
/// or where a `Final-Recipient`/`Original-Recipient` repeats within a group
/// (some MTAs leave out the blank lines).
pub(super) fn parse_delivery_status(text: &str) -> (PerMessage, Vec<BouncedRecipient>) {
    let mut message = PerMessage::default();
    let mut raws: Vec<RawRecipient> = Vec::new();
    for group in field_groups(text) {
        let mut current = RawRecipient::default();
        // Whether the current entry got its action or status after its
        // Final-Recipient (Amazon SES writes Action first).
        let mut completed = false;
        for field in group {
            let value = field.value;
            match field.name.as_str() {
                "reporting-mta" => {
                    message
                        .reporting_mta
                        .get_or_insert_with(|| strip_type(&value).to_string());
                }
                "final-recipient" | "original-recipient" => {
                    let is_final = field.name == "final-recipient";
                    // Postfix writes Final then Original, others the
                    // reverse: an Original after a complete entry starts
                    // the next one.
                    let slot_taken = if is_final {
                        current.final_recipient.is_some()
                    } else {
                        current.original_recipient.is_some() || completed
                    };
                    if slot_taken {
                        raws.push(std::mem::take(&mut current));
                        completed = false;
                    }
                    if is_final {
                        current.final_recipient = Some(value);
                    } else {
                        current.original_recipient = Some(value);
                    }
                }
                "action" => {
                    completed |= current.final_recipient.is_some();
                    current.action = Some(value);
                }
                "status" => {
                    completed |= current.final_recipient.is_some();
                    current.status = Some(value);
                }
                "remote-mta" => current.remote_mta = Some(value),
                "diagnostic-code" => current.diagnostic = Some(value),
                _ => {}
            }
        }
        if !current.is_empty() {
            raws.push(current);
        }
    }
    let recipients = raws
        .into_iter()
        .filter_map(into_recipient)
        .take(super::MAX_RECIPIENTS)
        .collect();
    (message, recipients)
}

fn into_recipient(raw: RawRecipient) -> Option<BouncedRecipient> {
    let original_recipient = raw.original_recipient.as_deref().and_then(clean_address);
    let recipient = raw
        .final_recipient
        .as_deref()
        .and_then(clean_address)
        .or_else(|| original_recipient.clone())?;
    let diagnostic = raw
        .diagnostic
        .as_deref()
        .map(|value| super::cap(strip_type(value)))
        .filter(|value| !value.is_empty());
    let status = raw
        .status
        .as_deref()
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| Status::parse(value.trim_end_matches([';', ','])))
        .or_else(|| {
            diagnostic
                .as_deref()
                .and_then(|text| find_status(&text.to_ascii_lowercase()))
        });
    let action = raw
        .action
        .as_deref()
        .and_then(|value| value.split_whitespace().next())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| action_for(status).to_string());
    // `dns; mx.b. (192.0.2.1, the server for the domain b.)`: the host only.
    let remote_mta = raw
        .remote_mta
        .as_deref()
        .and_then(|value| strip_type(value).split_whitespace().next())
        .map(|host| host.trim_end_matches('.').to_string())
        .filter(|host| !host.is_empty());
    let class = classify_diagnostic(status, diagnostic.as_deref());
    Some(BouncedRecipient {
        recipient,
        original_recipient,
        action,
        status,
        remote_mta,
        diagnostic,
        class,
        reason: super::Reason::Undefined,
    })
}

/// The action a report without an `Action` field implies.
pub(super) fn action_for(status: Option<Status>) -> &'static str {
    match status {
        Some(Status(4, _, _)) => "delayed",
        Some(Status(2, _, _)) => "delivered",
        _ => "failed",
    }
}

/// Classifies a recipient from its status and remote reply text.
pub(super) fn classify_diagnostic(
    status: Option<Status>,
    diagnostic: Option<&str>,
) -> super::BounceClass {
    classify(None, status, diagnostic.unwrap_or(""))
}
