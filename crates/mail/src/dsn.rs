//! Delivery status notifications (RFC 3464): the multipart/report that tells
//! a sender what happened to the recipients of one message.
//!
//! This module only builds bytes. It does not decide whether a DSN is due
//! (NOTIFY, null senders, suppression are the caller's business), does not
//! read clocks other than for the `Date:` header, and never re-encodes the
//! original message: it is returned as it was spooled, or its header section.

mod fields;

use crate::address::format_path;
use crate::envelope::Ret;
use crate::reply::{Reply, Status};
use fields::{clean_line, delivery_status, format_date};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use time::OffsetDateTime;

/// What happened to one recipient (RFC 3464 §2.3.3 `Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Permanent failure: the message will not be delivered.
    Failed,
    /// Not delivered yet; still being retried.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Handed to a system that does not send DSNs.
    Relayed,
    /// Delivered to an alias or list that expanded it to other recipients.
    Expanded,
}

impl Action {
    /// The value written in the `Action:` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }

    /// Orders actions by how bad they are for the sender, worst highest: the
    /// subject of a report names the worst one.
    fn severity(self) -> u8 {
        match self {
            Action::Failed => 2,
            Action::Delayed => 1,
            Action::Delivered | Action::Relayed | Action::Expanded => 0,
        }
    }
}

/// One recipient's entry in a DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The envelope address the delivery was attempted to.
    pub address: String,
    /// `ORCPT=` as kept from the envelope, e.g. `rfc822;a@b.test`.
    pub orcpt: Option<String>,
    pub action: Action,
    pub status: Status,
    /// The remote server's reply, when there was one.
    pub diagnostic: Option<Reply>,
    /// The host name of the server that gave `diagnostic`.
    pub remote_mta: Option<String>,
    pub last_attempt: Option<OffsetDateTime>,
    /// When retries stop; written only for delayed recipients.
    pub will_retry_until: Option<OffsetDateTime>,
}

/// Everything a DSN about one message says.
#[derive(Clone, Debug)]
pub struct DsnReport<'a> {
    /// Our host name (`Reporting-MTA`).
    pub reporting_mta: &'a str,
    /// The `From:` address, e.g. `MAILER-DAEMON@relay.test`.
    pub postmaster: &'a str,
    /// The original envelope sender, who receives the report. Never the null
    /// sender: the caller must not report on bounces.
    pub to: &'a str,
    /// `ENVID=` of the original message.
    pub envid: Option<&'a str>,
    pub arrival_date: OffsetDateTime,
    pub recipients: &'a [DsnRecipient],
    pub ret: Ret,
    /// The original message as spooled (CRLF line endings).
    pub original: &'a [u8],
    /// Above this size only the header section is returned, even with RET=FULL.
    pub max_original_size: usize,
    /// The report's own `Message-ID`, e.g. `<id@relay.test>`.
    pub message_id: &'a str,
}

/// Builds the whole DSN message: headers and a three-part multipart/report
/// (human text, message/delivery-status, the original or its headers).
/// Lines end in CRLF throughout and the message ends with CRLF.
pub fn build_dsn(report: &DsnReport<'_>) -> Vec<u8> {
    let status = delivery_status(report);
    let text = human_text(report);
    let (returned, returned_type) = returned_original(report);
    let returned_encoding = if returned.is_ascii() { "7bit" } else { "8bit" };
    let boundary = pick_boundary(&[text.as_bytes(), &status, &returned]);

    let status_part = MimePart::new("message/delivery-status", status)
        .transfer_encoding("7bit")
        .header("Content-Description", Raw::new("Delivery report"));
    let original_part = MimePart::new(returned_type, BodyPart::Binary(returned))
        .transfer_encoding(returned_encoding)
        .header(
            "Content-Description",
            Raw::new(if returned_type == "message/rfc822" {
                "Original message"
            } else {
                "Original message headers"
            }),
        );
    let text_part =
        MimePart::new("text/plain", text).header("Content-Description", Raw::new("Notification"));
    let body = MimePart::new(
        ContentType::new("multipart/report")
            .attribute("report-type", "delivery-status")
            .attribute("boundary", boundary),
        vec![text_part, status_part, original_part],
    );

    let message_id = clean_line(report.message_id);
    let message_id = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let mut out = Vec::new();
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            header_address(report.postmaster),
        ))
        .to(Address::new_address(
            None::<&str>,
            header_address(report.to),
        ))
        .subject(Text::new(subject(report.recipients)))
        .date(Date::new(OffsetDateTime::now_utc().unix_timestamp()))
        .message_id(MessageId::new(message_id.to_string()))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header("MIME-Version", Raw::new("1.0"))
        .body(body)
        .serialize(&mut out);
    out
}

/// Column at which the human-readable text wraps; below mail-builder's limit
/// for sending text as 7bit instead of quoted-printable.
const TEXT_WIDTH: usize = 72;

/// The subject names the worst thing that happened.
fn subject(recipients: &[DsnRecipient]) -> &'static str {
    match recipients.iter().map(|r| r.action.severity()).max() {
        Some(2) => "Undelivered Mail Returned to Sender",
        Some(1) => "Delayed Mail (still being retried)",
        _ => "Successful Mail Delivery Report",
    }
}

/// An address for a `From:`/`To:` header: quoted where needed and stripped of
/// anything that could end the header line.
fn header_address(address: &str) -> String {
    format_path(&clean_line(address)).replace(['<', '>'], "")
}

/// The explanation for people, in the manner of Postfix's bounce text.
fn human_text(report: &DsnReport<'_>) -> String {
    let mut text = format!(
        "This is the mail system at host {}.\r\n",
        clean_line(report.reporting_mta)
    );
    let groups: [(&[Action], &str); 3] = [
        (
            &[Action::Failed],
            "Your message could not be delivered to the recipients below.\r\n\
             The delivery failed permanently; the mail system will not try again.",
        ),
        (
            &[Action::Delayed],
            "Your message has not yet been delivered to the recipients below.\r\n\
             The mail system will keep trying; you do not need to send it again.",
        ),
        (
            &[Action::Delivered, Action::Relayed, Action::Expanded],
            "Your message was delivered to the recipients below.",
        ),
    ];
    for (actions, intro) in groups {
        let mut members = report
            .recipients
            .iter()
            .filter(|r| actions.contains(&r.action))
            .peekable();
        if members.peek().is_none() {
            continue;
        }
        text.push_str("\r\n");
        text.push_str(intro);
        text.push_str("\r\n\r\n");
        for recipient in members {
            wrap_into(&mut text, &recipient_line(recipient));
        }
    }
    text.push_str(match report.ret {
        Ret::Full if report.original.len() <= report.max_original_size => {
            "\r\nThe delivery report and the original message are attached.\r\n"
        }
        _ => "\r\nThe delivery report and the headers of the original message are attached.\r\n",
    });
    text
}

/// `<address>: what happened`, one line.
fn recipient_line(recipient: &DsnRecipient) -> String {
    let mut line = format!("<{}>: ", clean_line(&recipient.address));
    match (&recipient.diagnostic, &recipient.remote_mta) {
        (Some(reply), Some(host)) => {
            line.push_str(&format!(
                "host {} said: {}",
                clean_line(host),
                clean_line(&reply.to_string())
            ));
        }
        (Some(reply), None) => line.push_str(&clean_line(&reply.to_string())),
        (None, _) => line.push_str(&match recipient.action {
            Action::Failed => format!("delivery failed (status {})", recipient.status),
            Action::Delayed => format!("delivery delayed (status {})", recipient.status),
            Action::Delivered => format!("delivered (status {})", recipient.status),
            Action::Relayed => "relayed to a system that does not send delivery reports".into(),
            Action::Expanded => "delivered to an alias or list that expanded it".into(),
        }),
    }
    if recipient.action == Action::Delayed
        && let Some(until) = recipient.will_retry_until
    {
        line.push_str(&format!("; retries continue until {}", format_date(until)));
    }
    line
}

/// Appends `line` wrapped at spaces to [`TEXT_WIDTH`] columns, continuation
/// lines indented, each ending in CRLF: short lines keep the part readable
/// and let it travel as 7bit when it is ASCII.
fn wrap_into(text: &mut String, line: &str) {
    let mut column = 0;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let width = word.chars().count();
        if column > 0 && column + 1 + width > TEXT_WIDTH {
            text.push_str("\r\n    ");
            column = 4;
        } else if column > 0 {
            text.push(' ');
            column += 1;
        }
        text.push_str(word);
        column += width;
    }
    text.push_str("\r\n");
}

/// The third part: the whole original, or only its header section when the
/// sender asked for headers or the message is too large to send back.
fn returned_original<'a>(report: &DsnReport<'a>) -> (Cow<'a, [u8]>, &'static str) {
    let original = fields::crlf_only(report.original);
    if report.ret == Ret::Full && report.original.len() <= report.max_original_size {
        return (original, "message/rfc822");
    }
    let headers = match &original {
        Cow::Borrowed(bytes) => Cow::Borrowed(fields::header_section(bytes)),
        Cow::Owned(bytes) => Cow::Owned(fields::header_section(bytes).to_vec()),
    };
    (headers, "text/rfc822-headers")
}

/// A boundary that appears in none of the parts. The `=_` in it can never
/// occur in quoted-printable output, and the random part makes a collision
/// with the (sender-controlled) original practically impossible; the check
/// makes it impossible.
fn pick_boundary(parts: &[&[u8]]) -> String {
    loop {
        let boundary = format!("=_carteiro_{:032x}", rand::random::<u128>());
        let needle = boundary.as_bytes();
        if !parts
            .iter()
            .any(|part| part.windows(needle.len()).any(|window| window == needle))
        {
            return boundary;
        }
    }
}

#[cfg(test)]
mod tests;
