//! Bounce and complaint parsing: reads a received report — an RFC 3464 DSN,
//! a bounce written for people only by an MTA that sends no DSN, or an ARF
//! complaint (RFC 5965) — into recipients, actions, statuses, remote
//! replies and a [`BounceClass`] per recipient, plus the headers that tie
//! the report to the message Carteiro sent (Message-ID, VERP Return-Path,
//! `X-Carteiro-Id`).
//!
//! Everything here is pure: bytes in, values out, no I/O, no clock. It does
//! not decide what to do with a report (suppress, record an event): callers
//! use [`BounceClass::is_hard`] for that. It never panics on any input.
//!
//! The same classifier serves synchronous failures: see [`classify`] and
//! [`classify_reply`].

mod arf;
mod classify;
mod dsn;
mod original;
mod reason;
#[cfg(test)]
mod tests;
mod text;

pub use classify::{BounceClass, classify, classify_reply};
pub use reason::{Reason, reason_of};

use crate::reply::Status;
use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use serde::{Serialize, Serializer};

/// Reports naming more recipients are cut here: a hostile report cannot
/// make the caller record unbounded events.
const MAX_RECIPIENTS: usize = 1000;
/// Remote replies are cut to this many characters.
const MAX_DIAGNOSTIC: usize = 2000;

/// What kind of report a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// An RFC 3464 delivery status notification (`message/delivery-status`).
    Dsn,
    /// A bounce recognised by its text: no machine-readable part.
    NonStandard,
    /// An ARF complaint (`message/feedback-report`).
    Complaint,
}

/// One recipient a bounce reports on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BouncedRecipient {
    /// The address delivery was attempted to (`Final-Recipient`).
    pub recipient: String,
    /// The address as the sender gave it (`Original-Recipient`), type
    /// stripped.
    pub original_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// The enhanced status, serialized as `"5.1.1"`.
    #[serde(serialize_with = "status_string")]
    pub status: Option<Status>,
    /// The host that gave the reply.
    pub remote_mta: Option<String>,
    /// The remote reply text, unfolded (`550 5.1.1 <a@b>: ... unknown`).
    pub diagnostic: Option<String>,
    /// Meaningful for `failed` and `delayed` recipients.
    pub class: BounceClass,
    /// Why, in sisimai's words (`userunknown`, `expired`, ...): finer than
    /// `class`, which alone decides suppression.
    pub reason: Reason,
}

/// An ARF complaint: someone marked a message as spam (or fraud, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Complaint {
    /// `abuse`, `fraud`, `virus`, `auth-failure`, `not-spam`, `other`, ...
    pub feedback_type: String,
    pub user_agent: Option<String>,
    /// The complaining recipient; many providers redact it, then the
    /// original's `To` or the VERP address is the only clue.
    pub original_rcpt_to: Option<String>,
    pub original_mail_from: Option<String>,
    /// As the report wrote it.
    pub arrival_date: Option<String>,
    pub reported_domain: Option<String>,
    pub source_ip: Option<String>,
}

/// What a bounce or complaint says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParsedReport {
    pub kind: ReportKind,
    /// The host that wrote the report.
    pub reporting_mta: Option<String>,
    /// Empty for complaints; may be empty for a bounce whose text names no
    /// recipient (the VERP address it came to is then the only clue).
    pub recipients: Vec<BouncedRecipient>,
    pub complaint: Option<Complaint>,
    /// From the returned original (a `message/rfc822` or
    /// `text/rfc822-headers` part, or the headers quoted in a text bounce):
    /// its `Message-ID` as written, `<id@host>`.
    pub original_message_id: Option<String>,
    /// The original's `Return-Path` address (the VERP address Carteiro set).
    pub original_return_path: Option<String>,
    /// The original's `X-Carteiro-Id` header.
    pub original_carteiro_id: Option<String>,
    /// The first address of the original's `To`.
    pub original_to: Option<String>,
    pub original_subject: Option<String>,
}

fn status_string<S: Serializer>(status: &Option<Status>, serializer: S) -> Result<S::Ok, S::Error> {
    match status {
        Some(status) => serializer.serialize_some(&status.to_string()),
        None => serializer.serialize_none(),
    }
}

/// Parses a received message as a bounce or complaint. `None` when it is
/// neither: a normal message, or an auto-reply (out of office, vacation).
pub fn parse_report(message: &[u8]) -> Option<ParsedReport> {
    let parsed = MessageParser::new().parse(message)?;
    let parts = ReportParts::find(&parsed);
    let mut human = human_text(&parsed);
    if human.trim().is_empty() {
        // A multipart whose parts cannot be found (its boundary is not the
        // one it declares): its body, read as text, is all there is.
        let end = crate::headers::summarize(message).header_end;
        human = String::from_utf8_lossy(message.get(end..).unwrap_or_default()).into_owned();
    }
    let (human, quoted) = text::split_original(&human);
    let original = original::find(&parsed, quoted);
    let build = |kind, reporting_mta, mut recipients: Vec<BouncedRecipient>, complaint| {
        recipients.iter_mut().for_each(settle);
        ParsedReport {
            kind,
            reporting_mta,
            recipients,
            complaint,
            original_message_id: original.message_id.clone(),
            original_return_path: original.return_path.clone(),
            original_carteiro_id: original.carteiro_id.clone(),
            original_to: original.to.clone(),
            original_subject: original.subject.clone(),
        }
    };

    if let Some(feedback) = &parts.feedback_report {
        let (complaint, reporting_mta) = arf::parse_feedback_report(feedback);
        return Some(build(
            ReportKind::Complaint,
            reporting_mta,
            Vec::new(),
            Some(complaint),
        ));
    }
    if let Some(status) = &parts.delivery_status {
        let (per_message, mut recipients) = dsn::parse_delivery_status(status);
        if !recipients.is_empty() {
            complete_from_text(&mut recipients, human);
            return Some(build(
                ReportKind::Dsn,
                per_message.reporting_mta,
                recipients,
                None,
            ));
        }
    }

    let headers = RootHeaders::read(&parsed);
    let structural = parts.delivery_status.is_some() || parts.is_report;
    if !structural && headers.is_auto_reply() {
        return None;
    }
    if !structural && !headers.looks_like_bounce(human) {
        return None;
    }
    let delayed = text::is_delay_notice(&headers.subject, human);
    let mut recipients = text::inline_fields(human);
    if recipients.is_empty() {
        recipients = text::recipients(human)
            .into_iter()
            .map(|found| text::into_bounced(found, delayed))
            .collect();
    }
    if recipients.is_empty() {
        recipients = headers.failed_recipients(human, delayed);
    }
    if recipients.is_empty()
        && let Some(to) = original.to.as_deref().filter(|to| text::is_address(to))
    {
        // Old Sendmails and some gateways name nobody in their text: the
        // returned original's addressee is the one that failed.
        let reply = text::first_reply_line(human).unwrap_or_default();
        recipients.push(text::into_bounced(
            text::TextRecipient {
                address: to.to_string(),
                remote_mta: text::remote_host(&reply),
                diagnostic: reply,
            },
            delayed,
        ));
    }
    Some(build(
        ReportKind::NonStandard,
        text::reporting_mta(human),
        recipients,
        None,
    ))
}

/// Gives every recipient its reason and a status: a missing one (a text bounce that
/// printed only a reply code, a DSN without `Status:`) becomes the generic
/// `X.0.0` of RFC 3463, its class from the reply code, else from the action
/// (`delayed` is 4, anything else 5). The bounce class, which decides
/// suppression, is left as it was. The status the remote reply itself
/// carries, when it has the same class, is preferred to the reporting
/// MTA's (nothing is guessed from the words: sisimai, the reference, keeps
/// a generic status then).
fn settle(recipient: &mut BouncedRecipient) {
    let status = recipient.status.unwrap_or_else(|| {
        let lower = recipient
            .diagnostic
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let class = match classify::find_code(&lower) {
            Some(code) if (400..500).contains(&code) => 4,
            Some(code) if (500..600).contains(&code) => 5,
            _ if recipient.action.eq_ignore_ascii_case("delayed") => 4,
            _ => 5,
        };
        Status(class, 0, 0)
    });
    // The remote reply's own status, of the same class, says more than
    // the reporting MTA's summary: `Status: 5.0.0` beside `550 5.1.1 ...
    // User unknown`, `Status: 4.4.7` (expired) beside the `450 4.7.1` that
    // kept it from being delivered.
    let status = recipient
        .diagnostic
        .as_deref()
        .and_then(|text| classify::find_status(&text.to_ascii_lowercase()))
        .filter(|found| found.0 == status.0 && (found.1, found.2) != (0, 0))
        .unwrap_or(status);
    recipient.status = Some(status);
    recipient.reason = reason_of(
        recipient.class,
        recipient.status,
        &recipient.action,
        recipient.diagnostic.as_deref().unwrap_or(""),
    );
}

/// The machine-readable parts of a report, as text.
struct ReportParts {
    delivery_status: Option<String>,
    feedback_report: Option<String>,
    /// The top-level type is `multipart/report`.
    is_report: bool,
}

impl ReportParts {
    fn find(message: &Message<'_>) -> ReportParts {
        let mut found = ReportParts {
            delivery_status: None,
            feedback_report: None,
            is_report: message.is_content_type("multipart", "report"),
        };
        // The returned original's own parts live inside its
        // `PartType::Message`, so a bounce of a bounce is not read twice.
        for part in &message.parts {
            let Some(content_type) = part.content_type() else {
                continue;
            };
            if !content_type.ctype().eq_ignore_ascii_case("message") {
                continue;
            }
            let subtype = content_type.subtype().unwrap_or("").to_ascii_lowercase();
            let slot = match subtype.as_str() {
                "delivery-status" | "global-delivery-status" => &mut found.delivery_status,
                "feedback-report" => &mut found.feedback_report,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(part_text(&part.body));
            }
        }
        found
    }
}

/// A part's content as text, whatever mail-parser made of it (the report
/// types come back as binary parts).
fn part_text(body: &PartType<'_>) -> String {
    match body {
        PartType::Text(text) => text.to_string(),
        PartType::Html(html) => html_to_text(html),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        PartType::Message(message) => String::from_utf8_lossy(message.raw_message()).into_owned(),
        PartType::Multipart(_) => String::new(),
    }
}

/// The text meant for people: every text body part, HTML converted.
fn human_text(message: &Message<'_>) -> String {
    let mut out = String::new();
    for id in &message.text_body {
        if let Some(part) = message.parts.get(*id as usize) {
            let text = match &part.body {
                PartType::Text(_) | PartType::Html(_) => part_text(&part.body),
                _ => continue,
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&text);
        }
    }
    out
}

/// DSN recipients without a remote reply or host get them from the human
/// text when it names the same address.
fn complete_from_text(recipients: &mut [BouncedRecipient], human: &str) {
    if recipients
        .iter()
        .all(|r| r.diagnostic.is_some() && r.remote_mta.is_some())
    {
        return;
    }
    let found = text::recipients(human);
    for recipient in recipients.iter_mut() {
        let Some(known) = found
            .iter()
            .find(|known| known.address.eq_ignore_ascii_case(&recipient.recipient))
        else {
            continue;
        };
        if recipient.diagnostic.is_none() && !known.diagnostic.is_empty() {
            recipient.diagnostic = Some(known.diagnostic.clone());
            recipient.class =
                dsn::classify_diagnostic(recipient.status, recipient.diagnostic.as_deref());
        }
        if recipient.remote_mta.is_none() {
            recipient.remote_mta.clone_from(&known.remote_mta);
        }
    }
}

/// Subjects bounces use (lowercase substrings), in the languages seen most.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail",
    "undeliverable",
    "undelivered",
    "delivery status notification",
    "mail delivery failed",
    "mail delivery failure",
    "mail failure",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "failure notice",
    "returned mail",
    "returned to sender",
    "could not be delivered",
    "couldn't be delivered",
    "not delivered",
    "non-delivery",
    "nondeliverable",
    "delivery notification",
    "message status - undeliverable",
    "delayed mail",
    "mail system error",
    "non remis",
    "unzustellbar",
    "nicht zustellbar",
    "no se puede entregar",
    "warning: message",
    "error sending your mail",
    // Japanese: "mail error notification", "cannot deliver the message".
    "メールエラー",
    "配信できません",
];

/// Phrases of bounce texts, for messages from a mailer daemon whose
/// subject says nothing.
const BOUNCE_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "wasn't delivered",
    "was not delivered",
    "undeliverable",
    "delivery has failed",
    "delivery failed",
    "permanent error",
    "failed permanently",
    "unable to deliver",
    "not yet been delivered",
    "has been delayed",
    "not been delivered",
    "delivery to the following",
    "trouble delivering",
    "returned permanent errors",
    "did not reach the following",
];

/// Subjects of vacation and out-of-office replies.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out-of-office",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto:",
    "vacation",
    "away from",
    "on leave",
    "abwesenheit",
    "automatische antwort",
    "réponse automatique",
    "reponse automatique",
    "respuesta automática",
    "risposta automatica",
];

/// What the report's own header says about it.
struct RootHeaders {
    subject: String,
    from_daemon: bool,
    null_return_path: bool,
    auto_replied: bool,
    failed_recipients: Option<String>,
}

impl RootHeaders {
    fn read(message: &Message<'_>) -> RootHeaders {
        let from = message.from().and_then(|from| from.first());
        let address = from
            .and_then(|addr| addr.address())
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = from
            .and_then(|addr| addr.name())
            .unwrap_or("")
            .to_ascii_lowercase();
        let local = address.split('@').next().unwrap_or("");
        let from_daemon = matches!(
            local,
            "mailer-daemon" | "mailerdaemon" | "mail-daemon" | "postmaster" | "mail.delivery"
        ) || name.contains("mail delivery")
            || name.contains("mailer-daemon")
            || name.contains("postmaster");
        let header = |name: &str| original::raw(message, name).map(|v| v.to_ascii_lowercase());
        let auto_replied = header("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied"))
            || header("X-Autoreply").is_some()
            || header("X-Autorespond").is_some()
            || header("Precedence").is_some_and(|v| v.contains("auto_reply"));
        RootHeaders {
            subject: message.subject().unwrap_or("").to_string(),
            from_daemon,
            null_return_path: header("Return-Path").is_some_and(|v| v == "<>"),
            auto_replied,
            failed_recipients: original::raw(message, "X-Failed-Recipients"),
        }
    }

    fn bounce_subject(&self) -> bool {
        let subject = self.subject.to_lowercase();
        BOUNCE_SUBJECTS
            .iter()
            .any(|pattern| subject.contains(pattern))
    }

    /// An auto-reply that is not a bounce: it says nothing about delivery.
    fn is_auto_reply(&self) -> bool {
        let subject = self.subject.to_lowercase();
        let vacation = AUTO_REPLY_SUBJECTS
            .iter()
            .any(|pattern| subject.contains(pattern));
        // Exim marks its bounces `Auto-Submitted: auto-replied` too; one
        // that names failed recipients is a bounce.
        (self.auto_replied || vacation)
            && !self.bounce_subject()
            && self.failed_recipients.is_none()
    }

    fn looks_like_bounce(&self, human: &str) -> bool {
        if self.bounce_subject() || self.failed_recipients.is_some() {
            return true;
        }
        let human = human.to_ascii_lowercase();
        (self.from_daemon || self.null_return_path)
            && BOUNCE_PHRASES.iter().any(|phrase| human.contains(phrase))
    }

    /// Exim's `X-Failed-Recipients`, when the text names no recipient.
    fn failed_recipients(&self, human: &str, delayed: bool) -> Vec<BouncedRecipient> {
        let Some(list) = &self.failed_recipients else {
            return Vec::new();
        };
        let reply = text::first_reply_line(human).unwrap_or_default();
        list.split(',')
            .map(str::trim)
            .filter(|address| text::is_address(address))
            .take(MAX_RECIPIENTS)
            .map(|address| {
                text::into_bounced(
                    text::TextRecipient {
                        address: address.to_string(),
                        diagnostic: reply.clone(),
                        remote_mta: text::remote_host(&reply),
                    },
                    delayed,
                )
            })
            .collect()
    }
}

/// `text` cut to [`MAX_DIAGNOSTIC`] characters.
fn cap(text: &str) -> String {
    match text.char_indices().nth(MAX_DIAGNOSTIC) {
        Some((end, _)) => text.get(..end).unwrap_or(text).to_string(),
        None => text.to_string(),
    }
}
