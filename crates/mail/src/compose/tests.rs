use super::*;
use mail_parser::{Message, MessageParser, MimeHeaders};
use time::macros::datetime;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A request with one recipient and a text body; tests change what they need.
fn request<'a>(to: &'a [String], headers: &'a [(String, String)]) -> ComposeRequest<'a> {
    ComposeRequest {
        from: "Alice <alice@shop.example>",
        to,
        cc: &[],
        bcc: &[],
        reply_to: None,
        subject: "Your order",
        text: Some("Hello,\r\nyour order has shipped.\r\n"),
        html: None,
        headers,
        attachments: &[],
        message_id: "<01abc@relay.test>",
        date: datetime!(2025-03-04 10:15:00 UTC),
    }
}

fn parse(message: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(message)
        .expect("message parses")
}

/// Every line ends in CRLF and has at most 998 octets before it.
fn assert_wire_clean(message: &[u8]) {
    assert!(message.ends_with(b"\r\n"));
    for (at, &b) in message.iter().enumerate() {
        if b == b'\n' {
            assert_eq!(
                message.get(at.wrapping_sub(1)),
                Some(&b'\r'),
                "bare LF at {at}"
            );
        }
        if b == b'\r' {
            assert_eq!(message.get(at + 1), Some(&b'\n'), "bare CR at {at}");
        }
    }
    for line in message.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "line of {} octets", line.len());
    }
}

fn content_type_of(part: &mail_parser::MessagePart<'_>) -> String {
    let ct = part.content_type().expect("content type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
}

#[test]
fn text_only_is_text_plain() {
    let to = strings(&["bob@b.test"]);
    let composed = compose(&request(&to, &[])).unwrap();
    assert_wire_clean(&composed.message);
    let message = parse(&composed.message);
    assert_eq!(content_type_of(message.root_part()), "text/plain");
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("Hello,\r\nyour order has shipped.\r\n")
    );
    assert_eq!(message.subject(), Some("Your order"));
    assert_eq!(message.message_id(), Some("01abc@relay.test"));
    assert_eq!(
        message.date().map(|d| d.to_timestamp()),
        Some(datetime!(2025-03-04 10:15:00 UTC).unix_timestamp())
    );
    let from = message.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.name(), Some("Alice"));
    assert_eq!(from.address(), Some("alice@shop.example"));
    assert_eq!(composed.envelope_from, "alice@shop.example");
    assert_eq!(composed.recipients, ["bob@b.test"]);
    assert!(!composed.needs_smtputf8);
    let text = String::from_utf8(composed.message).unwrap();
    assert!(text.contains("MIME-Version: 1.0\r\n"));
}

#[test]
fn html_only_is_text_html() {
    let to = strings(&["bob@b.test"]);
    let mut req = request(&to, &[]);
    req.text = None;
    req.html = Some("<p>Ol\u{e1}, <b>mundo</b></p>");
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    let message = parse(&composed.message);
    assert_eq!(content_type_of(message.root_part()), "text/html");
    // A single-part message gets the final CRLF every message needs.
    assert_eq!(
        message.body_html(0).as_deref(),
        Some("<p>Ol\u{e1}, <b>mundo</b></p>\r\n")
    );
}

#[test]
fn text_and_html_are_alternatives() {
    let to = strings(&["bob@b.test"]);
    let mut req = request(&to, &[]);
    req.html = Some("<p>Hello</p>");
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    let message = parse(&composed.message);
    assert_eq!(
        content_type_of(message.root_part()),
        "multipart/alternative"
    );
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("Hello,\r\nyour order has shipped.\r\n")
    );
    assert_eq!(message.body_html(0).as_deref(), Some("<p>Hello</p>"));
    assert_eq!(message.attachment_count(), 0);
}

#[test]
fn attachments_make_multipart_mixed_and_round_trip() {
    let to = strings(&["bob@b.test"]);
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let attachments = [
        Attachment {
            filename: "invoice.pdf".into(),
            content_type: "application/pdf".into(),
            content: binary.clone(),
        },
        Attachment {
            filename: "notas de ação.txt".into(),
            content_type: "text/plain; charset=\"utf-8\"".into(),
            content: "linha um\r\nlinha dois sem fim".as_bytes().to_vec(),
        },
        Attachment {
            filename: "data.csv".into(),
            content_type: "".into(),
            content: b"a,b\nc,d\n".to_vec(),
        },
    ];
    let mut req = request(&to, &[]);
    req.html = Some("<p>Hello</p>");
    req.attachments = &attachments;
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    let message = parse(&composed.message);
    assert_eq!(content_type_of(message.root_part()), "multipart/mixed");
    assert_eq!(message.body_html(0).as_deref(), Some("<p>Hello</p>"));
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("Hello,\r\nyour order has shipped.\r\n")
    );
    let parts: Vec<_> = message.attachments().collect();
    assert_eq!(parts.len(), 3);
    let expected_types = ["application/pdf", "text/plain", "application/octet-stream"];
    for ((part, attachment), expected_type) in parts.iter().zip(&attachments).zip(expected_types) {
        assert_eq!(part.attachment_name(), Some(attachment.filename.as_str()));
        assert_eq!(content_type_of(part), expected_type);
        assert_eq!(part.contents(), attachment.content.as_slice());
    }
    assert_eq!(
        parts[1]
            .content_type()
            .and_then(|ct| ct.attribute("charset")),
        Some("utf-8")
    );
}

#[test]
fn text_with_attachment_only() {
    let to = strings(&["bob@b.test"]);
    let attachments = [Attachment {
        filename: "a.bin".into(),
        content_type: "application/octet-stream".into(),
        content: vec![0, 1, 2, 3],
    }];
    let mut req = request(&to, &[]);
    req.attachments = &attachments;
    let composed = compose(&req).unwrap();
    let message = parse(&composed.message);
    assert_eq!(content_type_of(message.root_part()), "multipart/mixed");
    assert!(message.body_text(0).is_some());
    assert_eq!(message.attachment(0).unwrap().contents(), [0, 1, 2, 3]);
}

#[test]
fn bcc_never_appears_and_recipients_are_deduplicated() {
    let to = strings(&["Bob <bob@b.test>", "carol@c.test"]);
    let cc = strings(&["BOB@B.TEST", "dave@d.test"]);
    let bcc = strings(&["secret@hidden.test", "Carol@C.test"]);
    let mut req = request(&to, &[]);
    req.cc = &cc;
    req.bcc = &bcc;
    let composed = compose(&req).unwrap();
    assert_eq!(
        composed.recipients,
        [
            "bob@b.test",
            "carol@c.test",
            "dave@d.test",
            "secret@hidden.test"
        ]
    );
    let text = String::from_utf8(composed.message.clone()).unwrap();
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("bcc:"));
    let message = parse(&composed.message);
    assert_eq!(message.to().map(|a| a.iter().count()), Some(2));
    assert_eq!(message.cc().map(|a| a.iter().count()), Some(2));
    assert!(message.bcc().is_none());

    // Only Bcc recipients: To says so without naming anyone.
    let none: Vec<String> = Vec::new();
    let mut req = request(&none, &[]);
    req.bcc = &bcc;
    let composed = compose(&req).unwrap();
    let text = String::from_utf8(composed.message).unwrap();
    assert!(
        text.contains("To: \"undisclosed-recipients\":;\r\n")
            || text.contains("To: undisclosed-recipients:;\r\n"),
        "{text}"
    );
    assert!(!text.contains("secret"));
    assert_eq!(composed.recipients, ["secret@hidden.test", "Carol@C.test"]);
}

#[test]
fn non_ascii_subject_and_names_round_trip() {
    let to = strings(&["Zoë Ångström <zoe@b.test>", "\"Doe, John\" <john@b.test>"]);
    let mut req = request(&to, &[]);
    req.from = "José da Silva <jose@shop.example>";
    req.subject = "Promoção de março: 20% em tudo — só hoje! 🎉";
    req.reply_to = Some("Atendimento Ção <help@shop.example>");
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    assert!(composed.message.is_ascii(), "headers are encoded");
    let message = parse(&composed.message);
    assert_eq!(message.subject(), Some(req.subject));
    let from = message.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.name(), Some("José da Silva"));
    let to: Vec<_> = message.to().unwrap().iter().map(|a| a.name()).collect();
    assert_eq!(to, [Some("Zoë Ångström"), Some("Doe, John")]);
    let reply_to = message.reply_to().and_then(|a| a.first()).unwrap();
    assert_eq!(reply_to.name(), Some("Atendimento Ção"));
    assert_eq!(reply_to.address(), Some("help@shop.example"));
}

#[test]
fn long_ascii_subject_is_folded_not_encoded() {
    let to = strings(&["bob@b.test"]);
    let subject = "word ".repeat(60);
    let subject = subject.trim_end();
    let mut req = request(&to, &[]);
    req.subject = subject;
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    let text = String::from_utf8(composed.message.clone()).unwrap();
    assert!(!text.contains("=?"), "{text}");
    assert_eq!(parse(&composed.message).subject(), Some(subject));
    // One 998-character word cannot be folded: it is encoded instead.
    let word = "x".repeat(998);
    req.subject = &word;
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    assert_eq!(parse(&composed.message).subject(), Some(word.as_str()));
}

#[test]
fn utf8_local_parts_need_smtputf8() {
    let to = strings(&["josé@b.test"]);
    let composed = compose(&request(&to, &[])).unwrap();
    assert!(composed.needs_smtputf8);
    assert_eq!(composed.recipients, ["josé@b.test"]);
    let to = strings(&["\"john doe\"@b.test"]);
    let composed = compose(&request(&to, &[])).unwrap();
    assert!(!composed.needs_smtputf8);
    assert_eq!(composed.recipients, ["john doe@b.test"]);
    let text = String::from_utf8(composed.message).unwrap();
    assert!(text.contains("<\"john doe\"@b.test>"), "{text}");
}

#[test]
fn long_html_line_is_wrapped_and_crlf_only() {
    let to = strings(&["bob@b.test"]);
    let html = format!("<p>{}</p>", "é and a".repeat(800));
    assert!(html.chars().count() >= 5000);
    let mut req = request(&to, &[]);
    req.text = Some("bare\nline feeds\rand\r\ncarriage returns\n");
    req.html = Some(&html);
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    let message = parse(&composed.message);
    assert_eq!(message.body_html(0).as_deref(), Some(html.as_str()));
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("bare\r\nline feeds\r\nand\r\ncarriage returns\r\n")
    );
    // Plain ASCII too.
    let html = "a".repeat(5000);
    req.html = Some(&html);
    let composed = compose(&req).unwrap();
    assert_wire_clean(&composed.message);
    assert_eq!(
        parse(&composed.message).body_html(0).as_deref(),
        Some(html.as_str())
    );
}

#[test]
fn custom_headers_are_written_and_checked() {
    let to = strings(&["bob@b.test"]);
    let long_url = format!("<https://shop.example/u/{}>", "a".repeat(150));
    let headers = vec![
        ("X-Campaign".to_string(), "spring-2025".to_string()),
        ("List-Unsubscribe".to_string(), long_url.clone()),
        (
            "In-Reply-To".to_string(),
            "<parent@shop.example>".to_string(),
        ),
        (
            "References".to_string(),
            "<a@shop.example> <b@shop.example>".to_string(),
        ),
        ("X-Note".to_string(), "Olá".to_string()),
    ];
    let composed = compose(&request(&to, &headers)).unwrap();
    assert_wire_clean(&composed.message);
    let message = parse(&composed.message);
    assert_eq!(
        message.header_raw("X-Campaign").map(str::trim),
        Some("spring-2025")
    );
    let text = String::from_utf8(composed.message.clone()).unwrap();
    assert!(
        text.contains(&format!("List-Unsubscribe: {long_url}\r\n")),
        "{text}"
    );
    assert_eq!(message.in_reply_to().as_text(), Some("parent@shop.example"));
    // mail-parser leaves unknown fields undecoded: decode it here.
    let raw = format!("{}\r\n", message.header_raw("X-Note").unwrap());
    let decoded = mail_parser::parsers::MessageStream::new(raw.as_bytes()).parse_unstructured();
    assert_eq!(decoded.as_text(), Some("Olá"));
}

#[test]
fn header_injection_and_reserved_headers_are_refused() {
    let to = strings(&["bob@b.test"]);
    let cases: &[(&str, &str, &str)] = &[
        ("X-Foo", "a\r\nBcc: victim@x.test", "headers.X-Foo"),
        ("X-Foo", "a\nb", "headers.X-Foo"),
        ("X-Foo", "a\rb", "headers.X-Foo"),
        ("X-Foo", "a\u{0}b", "headers.X-Foo"),
        ("X Foo", "a", "headers.X Foo"),
        ("X-Foo:", "a", "headers.X-Foo:"),
        ("", "a", "headers."),
        ("X-Ção", "a", "headers.X-Ção"),
        ("bcc", "victim@x.test", "headers.bcc"),
        ("From", "a@b.test", "headers.From"),
        ("CONTENT-TYPE", "text/html", "headers.CONTENT-TYPE"),
        ("Dkim-Signature", "v=1", "headers.Dkim-Signature"),
        ("Return-Path", "<a@b.test>", "headers.Return-Path"),
        ("Reply-To", "a@b.test", "headers.Reply-To"),
        ("Message-Id", "<x@y>", "headers.Message-Id"),
        ("Received", "x", "headers.Received"),
    ];
    for (name, value, field) in cases {
        let headers = vec![(name.to_string(), value.to_string())];
        let err = compose(&request(&to, &headers)).unwrap_err();
        assert_eq!(err.field(), *field, "{name}: {value:?} -> {err}");
    }
    let headers = vec![("X-Long".to_string(), "y".repeat(1000))];
    let err = compose(&request(&to, &headers)).unwrap_err();
    assert!(matches!(err, ComposeError::TooLarge { .. }), "{err}");
}

#[test]
fn each_validation_error_names_its_field() {
    let to = strings(&["bob@b.test", "carol@c.test", "not an address"]);
    let err = compose(&request(&to, &[])).unwrap_err();
    assert_eq!(err.field(), "to[2]");
    assert!(
        err.to_string().starts_with("to[2]: invalid address"),
        "{err}"
    );

    let ok = strings(&["bob@b.test"]);
    let base = || request(&ok, &[]);
    expect_field(
        ComposeRequest {
            from: "alice",
            ..base()
        },
        "from",
    );
    expect_field(
        ComposeRequest {
            from: "Alice <alice@-shop.example>",
            ..base()
        },
        "from",
    );
    expect_field(
        ComposeRequest {
            from: "Alice <alice@shop.example",
            ..base()
        },
        "from",
    );
    expect_field(
        ComposeRequest {
            from: "alice@shop.example\r\nBcc: x@y.test",
            ..base()
        },
        "from",
    );
    expect_field(
        ComposeRequest {
            reply_to: Some("nobody"),
            ..base()
        },
        "reply_to",
    );
    expect_field(
        ComposeRequest {
            subject: "a\r\nBcc: x@y.test",
            ..base()
        },
        "subject",
    );
    expect_field(
        ComposeRequest {
            subject: "a\nb",
            ..base()
        },
        "subject",
    );
    expect_field(
        ComposeRequest {
            message_id: "no-brackets@x",
            ..base()
        },
        "message_id",
    );
    expect_field(
        ComposeRequest {
            text: None,
            html: Some(""),
            ..base()
        },
        "text",
    );
    let long_subject = "s".repeat(999);
    expect_field(
        ComposeRequest {
            subject: &long_subject,
            ..base()
        },
        "subject",
    );
    let cc = strings(&["x@y.test", "Bad <@y.test>"]);
    expect_field(ComposeRequest { cc: &cc, ..base() }, "cc[1]");
    let bcc = strings(&["x@y..test"]);
    expect_field(
        ComposeRequest {
            bcc: &bcc,
            ..base()
        },
        "bcc[0]",
    );
    let none: Vec<String> = Vec::new();
    expect_field(
        ComposeRequest {
            to: &none,
            ..base()
        },
        "to",
    );

    let many: Vec<String> = (0..600).map(|i| format!("r{i}@b.test")).collect();
    expect_field(
        ComposeRequest {
            to: &many,
            cc: &many,
            ..base()
        },
        "cc[400]",
    );

    let attachment = |filename: &str, content_type: &str| Attachment {
        filename: filename.into(),
        content_type: content_type.into(),
        content: b"x".to_vec(),
    };
    let attachments = [
        attachment("ok.txt", "text/plain"),
        attachment("bad", "textplain"),
    ];
    expect_field(
        ComposeRequest {
            attachments: &attachments,
            ..base()
        },
        "attachments[1].content_type",
    );
    let attachments = [attachment("m.eml", "message/rfc822")];
    expect_field(
        ComposeRequest {
            attachments: &attachments,
            ..base()
        },
        "attachments[0].content_type",
    );
    let attachments = [attachment("a\r\nb", "text/plain")];
    expect_field(
        ComposeRequest {
            attachments: &attachments,
            ..base()
        },
        "attachments[0].filename",
    );
}

fn expect_field(request: ComposeRequest<'_>, field: &str) {
    let err = compose(&request).unwrap_err();
    assert_eq!(err.field(), field, "{err}");
    assert!(!err.reason().is_empty());
    assert_eq!(err.to_string(), format!("{field}: {}", err.reason()));
}

#[test]
fn mailboxes_are_parsed() {
    let ok: &[(&str, Option<&str>, &str)] = &[
        ("alice@shop.example", None, "alice@shop.example"),
        (
            "  Alice <alice@shop.example>  ",
            Some("Alice"),
            "alice@shop.example",
        ),
        ("<alice@shop.example>", None, "alice@shop.example"),
        (
            "\"Doe, John\" <john@shop.example>",
            Some("Doe, John"),
            "john@shop.example",
        ),
        (
            "\"A \\\"B\\\" <c>\" <d@shop.example>",
            Some("A \"B\" <c>"),
            "d@shop.example",
        ),
        (
            "Zoë <zoë@bücher.example>",
            Some("Zoë"),
            "zoë@bücher.example",
        ),
        ("\"a b\"@shop.example", None, "a b@shop.example"),
        ("x@[192.0.2.1]", None, "x@[192.0.2.1]"),
    ];
    for (text, name, addr) in ok {
        let (got_name, got_addr) = parse_mailbox(text).unwrap();
        assert_eq!(got_name.as_deref(), *name, "{text}");
        assert_eq!(got_addr, *addr, "{text}");
    }
    let bad = [
        "",
        "alice",
        "alice@",
        "@shop.example",
        "a b@shop.example",
        "a..b@shop.example",
        ".a@shop.example",
        "a@b@shop.example",
        "Alice alice@shop.example>",
        "\"Alice <alice@shop.example>",
        "Al\"ice <alice@shop.example>",
        "alice@shop.example\n",
        "alice@shop_example",
        &format!("{}@shop.example", "l".repeat(65)),
    ];
    for text in bad {
        let err = parse_mailbox(text).unwrap_err();
        assert_eq!(err.field(), "address", "{text}");
        assert!(matches!(err, ComposeError::InvalidAddress { .. }));
    }
}
