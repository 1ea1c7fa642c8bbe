use super::*;
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};
use time::macros::datetime;

const ORIGINAL: &[u8] = b"From: Alice <alice@sender.test>\r\n\
To: bob@b.test, carol@c.test\r\n\
Subject: quarterly numbers\r\n\
Message-ID: <orig-1@sender.test>\r\n\
\r\n\
The secret body text.\r\n\
Second line.\r\n";

fn failed_bob() -> DsnRecipient {
    DsnRecipient {
        address: "bob@b.test".into(),
        orcpt: Some("rfc822;Bob@B.test".into()),
        action: Action::Failed,
        status: Status(5, 1, 1),
        diagnostic: Some(Reply::new(
            550,
            Some(Status(5, 1, 1)),
            "<bob@b.test>: Recipient address rejected: User unknown in virtual mailbox table",
        )),
        remote_mta: Some("mx.b.test".into()),
        last_attempt: Some(datetime!(2025-03-04 10:15:00 UTC)),
        will_retry_until: None,
    }
}

fn delayed_carol() -> DsnRecipient {
    DsnRecipient {
        address: "carol@c.test".into(),
        orcpt: None,
        action: Action::Delayed,
        status: Status(4, 4, 1),
        diagnostic: None,
        remote_mta: None,
        last_attempt: Some(datetime!(2025-03-04 10:16:00 UTC)),
        will_retry_until: Some(datetime!(2025-03-09 10:00:00 UTC)),
    }
}

fn report<'a>(recipients: &'a [DsnRecipient], ret: Ret, original: &'a [u8]) -> DsnReport<'a> {
    DsnReport {
        reporting_mta: "relay.test",
        postmaster: "MAILER-DAEMON@relay.test",
        to: "alice@sender.test",
        envid: Some("QQ314159"),
        arrival_date: datetime!(2025-03-04 10:00:00 UTC),
        recipients,
        ret,
        original,
        max_original_size: 1_000_000,
        message_id: "<dsn-1@relay.test>",
    }
}

/// Builds the DSN, checks what every DSN must satisfy (CRLF only, parses as
/// a three-part multipart/report) and returns the bytes.
fn check(report: &DsnReport<'_>) -> Vec<u8> {
    let dsn = build_dsn(report);
    assert!(dsn.ends_with(b"\r\n"));
    for (i, &b) in dsn.iter().enumerate() {
        if b == b'\n' {
            assert_eq!(dsn.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF at {i}");
        }
        if b == b'\r' {
            assert_eq!(dsn.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    let message = parse(&dsn);
    let root = message.root_part().content_type().expect("content type");
    assert_eq!(root.ctype(), "multipart");
    assert_eq!(root.subtype(), Some("report"));
    assert_eq!(root.attribute("report-type"), Some("delivery-status"));
    assert_eq!(sub_parts(&message).len(), 3);
    dsn
}

fn parse(dsn: &[u8]) -> Message<'_> {
    MessageParser::default().parse(dsn).expect("dsn parses")
}

fn sub_parts<'m>(message: &'m Message<'_>) -> Vec<&'m MessagePart<'m>> {
    message
        .root_part()
        .sub_parts()
        .expect("multipart")
        .iter()
        .map(|&id| message.part(id).expect("part"))
        .collect()
}

/// The undecoded body bytes of part `index` (0-based among the report's parts).
fn raw_body(dsn: &[u8], index: usize) -> &[u8] {
    let message = parse(dsn);
    let part = sub_parts(&message)[index];
    let (start, end) = (
        part.raw_body_offset() as usize,
        part.raw_end_offset() as usize,
    );
    &dsn[start..end]
}

fn content_type(part: &MessagePart<'_>) -> String {
    let ct = part.content_type().expect("content type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
}

fn transfer_encoding(part: &MessagePart<'_>) -> Option<String> {
    part.content_transfer_encoding().map(str::to_string)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn two_recipient_report_has_headers_parts_and_fields() {
    let recipients = [failed_bob(), delayed_carol()];
    let dsn = check(&report(&recipients, Ret::Full, ORIGINAL));
    let message = parse(&dsn);

    assert_eq!(
        message.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    let from = message.from().and_then(|a| a.first()).expect("from");
    assert_eq!(from.name(), Some("Mail Delivery System"));
    assert_eq!(from.address(), Some("MAILER-DAEMON@relay.test"));
    let to = message.to().and_then(|a| a.first()).expect("to");
    assert_eq!(to.address(), Some("alice@sender.test"));
    assert_eq!(message.message_id(), Some("dsn-1@relay.test"));
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert!(message.date().is_some());

    let parts = sub_parts(&message);
    assert_eq!(content_type(parts[0]), "text/plain");
    let human = parts[0].text_contents().expect("text");
    assert!(human.contains("This is the mail system at host relay.test."));
    assert!(human.contains(
        "\r\n<bob@b.test>: host mx.b.test said: 550 5.1.1 <bob@b.test>: Recipient\r\n    \
         address rejected: User unknown in virtual mailbox table\r\n"
    ));
    assert!(human.lines().all(|line| line.len() <= TEXT_WIDTH));
    assert_eq!(transfer_encoding(parts[0]).as_deref(), Some("7bit"));
    assert!(human.contains("<carol@c.test>: delivery delayed (status 4.4.1)"));

    assert_eq!(content_type(parts[1]), "message/delivery-status");
    assert_eq!(transfer_encoding(parts[1]).as_deref(), Some("7bit"));
    let status = std::str::from_utf8(raw_body(&dsn, 1)).expect("ascii");
    let status = status.trim_end_matches("\r\n");
    let blocks: Vec<&str> = status.split("\r\n\r\n").collect();
    assert_eq!(
        blocks,
        [
            "Reporting-MTA: dns; relay.test\r\n\
             Original-Envelope-Id: QQ314159\r\n\
             Arrival-Date: Tue, 04 Mar 2025 10:00:00 +0000",
            "Original-Recipient: rfc822;Bob@B.test\r\n\
             Final-Recipient: rfc822; bob@b.test\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; mx.b.test\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <bob@b.test>: Recipient address rejected:\r\n \
             User unknown in virtual mailbox table\r\n\
             Last-Attempt-Date: Tue, 04 Mar 2025 10:15:00 +0000",
            "Final-Recipient: rfc822; carol@c.test\r\n\
             Action: delayed\r\n\
             Status: 4.4.1\r\n\
             Last-Attempt-Date: Tue, 04 Mar 2025 10:16:00 +0000\r\n\
             Will-Retry-Until: Sun, 09 Mar 2025 10:00:00 +0000",
        ]
    );

    assert_eq!(content_type(parts[2]), "message/rfc822");
    assert_eq!(transfer_encoding(parts[2]).as_deref(), Some("7bit"));
    let returned = parts[2].message().expect("nested message");
    assert_eq!(returned.subject(), Some("quarterly numbers"));
    assert!(raw_body(&dsn, 2).starts_with(ORIGINAL));
}

#[test]
fn ret_hdrs_returns_only_the_header_section() {
    let recipients = [failed_bob()];
    let dsn = check(&report(&recipients, Ret::Headers, ORIGINAL));
    let message = parse(&dsn);
    let parts = sub_parts(&message);
    assert_eq!(content_type(parts[2]), "text/rfc822-headers");
    assert!(raw_body(&dsn, 2).starts_with(b"From: Alice <alice@sender.test>\r\n"));
    assert!(contains(&dsn, b"Message-ID: <orig-1@sender.test>\r\n"));
    assert!(!contains(&dsn, b"The secret body text."));
}

#[test]
fn too_large_original_falls_back_to_headers() {
    let recipients = [failed_bob()];
    let mut report = report(&recipients, Ret::Full, ORIGINAL);
    report.max_original_size = ORIGINAL.len() - 1;
    let dsn = check(&report);
    let message = parse(&dsn);
    assert_eq!(content_type(sub_parts(&message)[2]), "text/rfc822-headers");
    assert!(!contains(&dsn, b"The secret body text."));

    report.max_original_size = ORIGINAL.len();
    let dsn = check(&report);
    assert!(contains(&dsn, b"The secret body text."));
}

#[test]
fn injected_line_breaks_do_not_create_header_lines() {
    let mut bob = failed_bob();
    bob.diagnostic = Some(Reply::new(
        550,
        Some(Status(5, 1, 1)),
        "no such user\r\nX-Injected: reply\r\n\r\nBody-Injected",
    ));
    bob.remote_mta = Some("mx.b.test\r\nX-Injected: host".into());
    bob.address = "bob@b.test\r\nX-Injected: address".into();
    let recipients = [bob];
    let mut report = report(&recipients, Ret::Headers, ORIGINAL);
    report.to = "alice@sender.test\r\nBcc: victim@else.test";
    report.envid = Some("id\r\nX-Injected: envid");
    let dsn = check(&report);
    let text = String::from_utf8_lossy(&dsn);
    for line in text.split("\r\n") {
        assert!(!line.starts_with("X-Injected"), "{line:?}");
        assert!(!line.starts_with("Bcc"), "{line:?}");
        assert!(!line.starts_with("Body-Injected"), "{line:?}");
    }
    let message = parse(&dsn);
    assert!(message.header_raw("Bcc").is_none());
    let status = std::str::from_utf8(raw_body(&dsn, 1)).expect("ascii");
    assert!(status.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user / X-Injected: reply"));
}

#[test]
fn eight_bit_original_is_returned_verbatim_as_8bit() {
    let original =
        "From: Jo\u{e3}o <joao@sender.test>\r\nSubject: Ol\u{e1}\r\n\r\nCora\u{e7}\u{e3}o\r\n";
    let recipients = [failed_bob()];
    let dsn = check(&report(&recipients, Ret::Full, original.as_bytes()));
    let message = parse(&dsn);
    let parts = sub_parts(&message);
    assert_eq!(transfer_encoding(parts[2]).as_deref(), Some("8bit"));
    assert!(raw_body(&dsn, 2).starts_with(original.as_bytes()));

    let dsn = check(&report(&recipients, Ret::Headers, original.as_bytes()));
    let message = parse(&dsn);
    assert_eq!(
        transfer_encoding(sub_parts(&message)[2]).as_deref(),
        Some("8bit")
    );
    assert!(!contains(&dsn, "Cora\u{e7}\u{e3}o".as_bytes()));
}

#[test]
fn bare_line_feeds_in_the_original_become_crlf() {
    let recipients = [failed_bob()];
    let dsn = check(&report(&recipients, Ret::Full, b"Subject: x\n\nbody\n"));
    assert!(contains(&dsn, b"Subject: x\r\n\r\nbody\r\n"));
}

#[test]
fn subject_names_the_worst_action() {
    let mut delivered = delayed_carol();
    delivered.action = Action::Delivered;
    delivered.status = Status(2, 0, 0);
    let mut relayed = delivered.clone();
    relayed.action = Action::Relayed;
    let subject_of = |recipients: &[DsnRecipient]| {
        let dsn = check(&report(recipients, Ret::Headers, ORIGINAL));
        parse(&dsn).subject().map(str::to_string)
    };
    assert_eq!(
        subject_of(&[delivered.clone(), relayed.clone()]).as_deref(),
        Some("Successful Mail Delivery Report")
    );
    assert_eq!(
        subject_of(&[delivered.clone(), delayed_carol()]).as_deref(),
        Some("Delayed Mail (still being retried)")
    );
    assert_eq!(
        subject_of(&[delayed_carol(), failed_bob(), delivered]).as_deref(),
        Some("Undelivered Mail Returned to Sender")
    );
}

#[test]
fn will_retry_until_is_written_for_delayed_recipients_only() {
    let mut bob = failed_bob();
    bob.will_retry_until = Some(datetime!(2025-03-09 10:00:00 UTC));
    let recipients = [bob];
    let dsn = check(&report(&recipients, Ret::Headers, ORIGINAL));
    assert!(!contains(&dsn, b"Will-Retry-Until"));
    assert!(!contains(&dsn, b"Original-Envelope-Id: \r\n"));
}
