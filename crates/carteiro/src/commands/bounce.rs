//! `carteiro bounce parse FILE [--json]`: the bounce parser on one message,
//! for operators checking how a provider's bounce is read, and for building
//! the fixture corpus.

use crate::cli::BounceCommand;
use anyhow::Context;
use carteiro_mail::bounce::{ParsedReport, ReportKind, parse_report};
use std::io::Read;

/// The most read from a file: bounces quote at most the original message.
const MAX_INPUT: u64 = 64 * 1024 * 1024;

pub fn run(cmd: BounceCommand) -> anyhow::Result<()> {
    match cmd {
        BounceCommand::Parse { file, json } => {
            let mut message = Vec::new();
            if file.as_os_str() == "-" {
                std::io::stdin()
                    .take(MAX_INPUT)
                    .read_to_end(&mut message)
                    .context("cannot read standard input")?;
            } else {
                std::fs::File::open(&file)
                    .and_then(|f| f.take(MAX_INPUT).read_to_end(&mut message))
                    .with_context(|| format!("cannot read {}", file.display()))?;
            }
            let report = parse_report(&message);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", describe(report.as_ref()));
            }
            Ok(())
        }
    }
}

fn describe(report: Option<&ParsedReport>) -> String {
    let Some(report) = report else {
        return "not a bounce or complaint (a normal message or an auto-reply)\n".into();
    };
    let mut out = String::new();
    let kind = match report.kind {
        ReportKind::Dsn => "delivery status notification (RFC 3464)",
        ReportKind::NonStandard => "bounce (non-standard text)",
        ReportKind::Complaint => "complaint (ARF, RFC 5965)",
    };
    out.push_str(&format!("kind: {kind}\n"));
    let line = |out: &mut String, name: &str, value: &Option<String>| {
        if let Some(value) = value {
            out.push_str(&format!("{name}: {value}\n"));
        }
    };
    line(&mut out, "reporting mta", &report.reporting_mta);
    if let Some(complaint) = &report.complaint {
        out.push_str(&format!("feedback type: {}\n", complaint.feedback_type));
        line(&mut out, "user agent", &complaint.user_agent);
        line(&mut out, "original recipient", &complaint.original_rcpt_to);
        line(&mut out, "original sender", &complaint.original_mail_from);
        line(&mut out, "source ip", &complaint.source_ip);
    }
    for r in &report.recipients {
        out.push_str(&format!(
            "recipient: {}\n  action: {}\n  class: {} ({})\n  reason: {}\n",
            r.recipient,
            r.action,
            r.class.as_str(),
            if r.class.is_hard() {
                "hard: the address is suppressed"
            } else {
                "not about the address: not suppressed"
            },
            r.reason.as_str()
        ));
        if let Some(status) = r.status {
            out.push_str(&format!("  status: {status}\n"));
        }
        line(&mut out, "  remote mta", &r.remote_mta);
        line(&mut out, "  reply", &r.diagnostic);
    }
    line(&mut out, "original message-id", &report.original_message_id);
    line(
        &mut out,
        "original return-path",
        &report.original_return_path,
    );
    line(
        &mut out,
        "original x-carteiro-id",
        &report.original_carteiro_id,
    );
    line(&mut out, "original to", &report.original_to);
    line(&mut out, "original subject", &report.original_subject);
    out
}
