//! The human form of the records: what an operator reads and pastes into a
//! zone editor or a zone file. It explains; it does not decide anything the
//! JSON form does not already say.

use super::{DnsRecord, RecordPurpose, RecordType};
use std::fmt::Write;

/// The most bytes one character-string of a TXT record holds (RFC 1035 §3.3).
const TXT_STRING_MAX: usize = 255;

/// The TTL written in zone-file lines: an hour, short enough to fix a
/// mistake the same day.
const ZONE_TTL: u32 = 3600;

/// Splits a TXT value into the character-strings of at most 255 bytes that a
/// zone file (or a DNS server) must use for it; receivers join them again
/// without separators. Splits fall on character boundaries.
pub fn split_txt_value(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = value;
    while rest.len() > TXT_STRING_MAX {
        let mut cut = TXT_STRING_MAX;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// The record as a zone-file entry (BIND syntax, fully qualified name),
/// with long TXT values split into several quoted strings inside
/// parentheses.
pub fn zone_file_entry(record: &DnsRecord) -> String {
    let name = format!("{}.", record.name.trim_end_matches('.'));
    let head = format!("{name} {ZONE_TTL} IN {}", record.kind.as_str());
    match record.kind {
        RecordType::Txt => {
            let parts: Vec<String> = split_txt_value(&record.value)
                .into_iter()
                .map(|part| format!("\"{}\"", part.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            match parts.as_slice() {
                [one] => format!("{head} {one}"),
                _ => format!("{head} ( {} )", parts.join("\n    ")),
            }
        }
        RecordType::Mx | RecordType::Cname => {
            // Targets are host names: qualify them so the zone's origin is
            // not appended.
            let mut words: Vec<&str> = record.value.split_whitespace().collect();
            let target = words.pop().unwrap_or_default().trim_end_matches('.');
            let mut value = words.join(" ");
            if !value.is_empty() {
                value.push(' ');
            }
            format!("{head} {value}{target}.")
        }
    }
}

/// The records as an operator reads them: for each, a one-line explanation,
/// the type, name and value to enter in a zone editor (TXT values as one
/// string), and the zone-file form, split where a value exceeds 255 bytes.
pub fn render_text(records: &[DnsRecord]) -> String {
    let mut out = String::new();
    let domain = records
        .iter()
        .find(|r| r.purpose == RecordPurpose::Spf)
        .map(|r| r.name.as_str());
    match domain {
        Some(domain) => {
            let _ = writeln!(out, "DNS records to publish for {domain}");
        }
        None => out.push_str("DNS records to publish\n"),
    }
    out.push_str(
        "Names are shown in full; a zone editor that appends the domain itself wants only \
         the part before it.\n",
    );
    for (n, record) in records.iter().enumerate() {
        let _ = writeln!(out, "\n{}. {}", n + 1, title(record));
        let _ = writeln!(out, "   {}", explanation(record));
        let _ = writeln!(out, "   Type:  {}", record.kind.as_str());
        let _ = writeln!(out, "   Name:  {}", record.name);
        let _ = writeln!(out, "   Value: {}", record.value);
        for line in notes(record) {
            let _ = writeln!(out, "   {line}");
        }
        let entry = zone_file_entry(record);
        if record.kind == RecordType::Txt && record.value.len() > TXT_STRING_MAX {
            let _ = writeln!(
                out,
                "   The value is {} characters long. Zone editors take it as one string; in a \
                 zone file a TXT value over 255 characters must be split into several quoted \
                 strings, which receivers join again:",
                record.value.len()
            );
        } else {
            out.push_str("   Zone file:\n");
        }
        for line in entry.lines() {
            let _ = writeln!(out, "     {line}");
        }
    }
    out
}

fn title(record: &DnsRecord) -> String {
    match (record.purpose, record.kind) {
        (RecordPurpose::Dkim, _) => {
            let selector = record.name.split("._domainkey.").next().unwrap_or_default();
            let algorithm = dkim_tag(&record.value, "k").unwrap_or("rsa");
            format!("DKIM key, selector {selector} ({algorithm})")
        }
        (RecordPurpose::Spf, _) => "SPF".to_string(),
        (RecordPurpose::Dmarc, _) => "DMARC".to_string(),
        (RecordPurpose::ReturnPath, RecordType::Mx) => "Return path: MX".to_string(),
        (RecordPurpose::ReturnPath, _) => "Return path: SPF".to_string(),
    }
}

fn explanation(record: &DnsRecord) -> String {
    let domain = record.name.split("._domainkey.").last().unwrap_or_default();
    let relay = spf_host(&record.value).unwrap_or("the relay");
    match (record.purpose, record.kind) {
        (RecordPurpose::Dkim, _) => format!(
            "Receivers check the DKIM signature Carteiro adds to mail from {domain} with this \
             public key."
        ),
        (RecordPurpose::Spf, _) => format!(
            "Lets {relay} send mail as {}: receivers check SPF against this record.",
            record.name
        ),
        (RecordPurpose::Dmarc, _) => {
            let domain = record.name.trim_start_matches("_dmarc.");
            format!(
                "Tells receivers what to do with mail claiming to be from {domain} that fails \
                 authentication; p=none only asks for reports, sent to dmarc-reports@{domain} \
                 (make sure that mailbox exists)."
            )
        }
        (RecordPurpose::ReturnPath, RecordType::Mx) => format!(
            "Mail Carteiro sends has its envelope sender at {}, so bounces are addressed \
             there; this MX brings them back to Carteiro.",
            record.name
        ),
        (RecordPurpose::ReturnPath, _) => format!(
            "Receivers check SPF against the envelope sender at {}: this lets {relay} use it.",
            record.name
        ),
    }
}

fn notes(record: &DnsRecord) -> Vec<String> {
    let relay = spf_host(&record.value).unwrap_or("the relay");
    match (record.purpose, record.kind) {
        (RecordPurpose::Spf, _) | (RecordPurpose::ReturnPath, RecordType::Txt) => vec![
            format!(
                "If {} already has a TXT record starting with v=spf1, do not add a second one",
                record.name
            ),
            format!(
                "(two SPF records make receivers fail SPF): add a:{relay} to the existing record, \
                 before its all term."
            ),
        ],
        (RecordPurpose::Dmarc, _) => vec![
            "If a DMARC record exists already, keep it (one record only): Carteiro's mail passes \
             DMARC through DKIM."
                .to_string(),
            "Once the reports show that all mail from the domain passes, p=quarantine or \
             p=reject stops forgeries."
                .to_string(),
        ],
        _ => Vec::new(),
    }
}

/// The value of a `tag=value;` tag in a DKIM key record.
fn dkim_tag<'a>(value: &'a str, tag: &str) -> Option<&'a str> {
    value.split(';').find_map(|part| {
        let (name, value) = part.split_once('=')?;
        (name.trim() == tag).then_some(value.trim())
    })
}

/// The host of the first `a:HOST` term of an SPF value.
fn spf_host(value: &str) -> Option<&str> {
    value
        .split_ascii_whitespace()
        .find_map(|term| term.strip_prefix("a:"))
}
