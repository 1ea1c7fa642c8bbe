//! Complaints: the `message/feedback-report` part of an ARF report
//! (RFC 5965, with the RFC 6650 additions).
//!
//! The fields are read with the same reader as DSN fields rather than with
//! mail-auth's ARF parser: the values are wanted as written (the arrival
//! date as the report gave it, feedback types mail-auth does not know), and
//! mail-auth 0.13 drops a field that is followed directly by the MIME
//! boundary.

use super::Complaint;
use super::dsn::{clean_address, field_groups, strip_type};

/// The complaint a feedback-report body describes, and its reporting MTA.
pub(super) fn parse_feedback_report(text: &str) -> (Complaint, Option<String>) {
    let mut complaint = Complaint {
        feedback_type: String::new(),
        user_agent: None,
        original_rcpt_to: None,
        original_mail_from: None,
        arrival_date: None,
        reported_domain: None,
        source_ip: None,
    };
    let mut reporting_mta = None;
    for field in field_groups(text).into_iter().flatten() {
        let value = field.value;
        if value.is_empty() {
            continue;
        }
        match field.name.as_str() {
            "feedback-type" if complaint.feedback_type.is_empty() => {
                complaint.feedback_type = value
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
            }
            "user-agent" => set(&mut complaint.user_agent, value),
            "original-rcpt-to" => {
                if let Some(address) = clean_address(&value) {
                    set(&mut complaint.original_rcpt_to, address);
                }
            }
            "original-mail-from" => {
                if let Some(address) = clean_address(&value) {
                    set(&mut complaint.original_mail_from, address);
                }
            }
            // Received-Date is the name early FBLs used.
            "arrival-date" | "received-date" => set(&mut complaint.arrival_date, value),
            "reported-domain" => set(&mut complaint.reported_domain, value),
            "source-ip" => set(&mut complaint.source_ip, value),
            "reporting-mta" => set(&mut reporting_mta, strip_type(&value).to_string()),
            _ => {}
        }
    }
    if complaint.feedback_type.is_empty() {
        // RFC 5965 requires the field; "other" is its catch-all type.
        complaint.feedback_type = "other".to_string();
    }
    (complaint, reporting_mta)
}

/// Keeps the first value of a field that may repeat.
fn set(slot: &mut Option<String>, value: String) {
    if slot.is_none() {
        *slot = Some(value);
    }
}
