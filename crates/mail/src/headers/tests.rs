use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const RECEIVED: &str = "Received: from client.test ([192.0.2.7])\r\n\tby relay.test (Carteiro) with ESMTPSA\r\n\tid 01abc;\r\n\tTue, 04 Mar 2025 10:15:00 +0000\r\n";

/// A message as it reaches `summarize` after SMTP: our Received, then the
/// client's header section with `from` as the From value.
fn with_from(from: &str) -> Vec<u8> {
    format!(
        "{RECEIVED}From: {from}\r\nTo: bob@b.test\r\nSubject: hi\r\n\r\nFrom: body@evil.test\r\n"
    )
    .into_bytes()
}

#[test]
fn from_variants() {
    let cases: &[(&str, Option<&str>)] = &[
        ("alice@shop.example", Some("alice@shop.example")),
        ("Alice <alice@shop.example>", Some("alice@shop.example")),
        ("<alice@shop.example>", Some("alice@shop.example")),
        (
            "\"Smith, Alice\" <alice@shop.example>",
            Some("alice@shop.example"),
        ),
        (
            "\"Alice \\\"Al\\\" <x@evil.test>\" <alice@shop.example>",
            Some("alice@shop.example"),
        ),
        ("Alice\r\n <alice@shop.example>", Some("alice@shop.example")),
        ("\r\n\talice@shop.example\r\n ", Some("alice@shop.example")),
        (
            "alice@shop.example (Alice Smith)",
            Some("alice@shop.example"),
        ),
        (
            "(c) Alice (x (nested) y) <alice@shop.example> (after, comma)",
            Some("alice@shop.example"),
        ),
        (
            "=?utf-8?B?QWxpY2Ugw6k=?= <alice@shop.example>",
            Some("alice@shop.example"),
        ),
        (
            "=?iso-8859-1?Q?Andr=E9?= <andre@shop.example>",
            Some("andre@shop.example"),
        ),
        (
            "Team: alice@shop.example, bob@b.test;",
            Some("alice@shop.example"),
        ),
        ("Nobody:;, alice@shop.example", Some("alice@shop.example")),
        (
            "<@relay.test,@other.test:alice@shop.example>",
            Some("alice@shop.example"),
        ),
        ("\"john doe\"@shop.example", Some("john doe@shop.example")),
        (
            "\"a@evil.test\"@shop.example",
            Some("a@evil.test@shop.example"),
        ),
        (
            "Álvaro <álvaro@bücher.example>",
            Some("álvaro@bücher.example"),
        ),
        ("alice @ shop . example", Some("alice@shop.example")),
        (
            "John Q. Public <john@shop.example>",
            Some("john@shop.example"),
        ),
        ("Doe, John <john@shop.example>", Some("john@shop.example")),
        (
            "Doe, John (Sales), <john@shop.example>",
            Some("john@shop.example"),
        ),
        ("a@-bad.example, <john@shop.example>", None),
        ("alice@[192.0.2.1]", Some("alice@[192.0.2.1]")),
        ("first@a.example, second@b.example", Some("first@a.example")),
        (
            "alice.smith+tag@shop.example",
            Some("alice.smith+tag@shop.example"),
        ),
        // Malformed: no address, or one that parsers could disagree on.
        ("", None),
        ("Alice", None),
        ("Alice <alice@shop.example", None),
        ("\"unterminated <alice@shop.example>", None),
        ("Alice (unclosed <alice@shop.example>", None),
        ("alice@", None),
        ("@shop.example", None),
        ("Alice Smith alice@shop.example", None),
        ("<>", None),
        ("alice@-bad.example", None),
        ("alice@shop..example", None),
        ("alice..x@shop.example", None),
        ("Group:;", None),
        ("alice@shop.example>", None),
        ("<alice@<shop.example>>", None),
        ("alice\u{1}@shop.example", None),
        ("alice@[300.1.1.1]", None),
        ("alice@[192.0.2.1", None),
    ];
    for (value, expected) in cases {
        let summary = summarize(&with_from(value));
        assert_eq!(summary.from.as_deref(), *expected, "From: {value:?}");
        assert_eq!(summary.from_count, 1, "From: {value:?}");
        assert_eq!(
            summary.from_domain.is_some(),
            expected.is_some(),
            "From: {value:?}"
        );
    }
}

#[test]
fn a_backslash_outside_quotes_ends_the_scan_instead_of_looping() {
    // Found by the proptest: the lexer returned an empty atom for `\`
    // without moving on, forever, growing a token list until memory ran out.
    for value in [
        "a\\b@c.example",
        "\\",
        "x \\ <a@b.example>",
        "=?utf-8?B?\\a@b.example",
    ] {
        assert_eq!(summarize(&with_from(value)).from, None, "From: {value:?}");
    }
}

#[test]
fn from_domain_is_lowercased_and_count_is_kept() {
    let summary = summarize(&with_from("Alice <Alice@SHOP.Example>"));
    assert_eq!(summary.from.as_deref(), Some("Alice@SHOP.Example"));
    assert_eq!(summary.from_domain.as_deref(), Some("shop.example"));

    let message =
        b"FROM: first@a.example\r\nfrom : second@b.example\r\nFrom:\r\n third@c.example\r\n\r\n";
    let summary = summarize(message);
    assert_eq!(summary.from_count, 3);
    assert_eq!(summary.from.as_deref(), Some("first@a.example"));
    assert_eq!(summary.from_domain.as_deref(), Some("a.example"));
}

#[test]
fn from_in_the_body_does_not_count() {
    let summary = summarize(b"To: b@b.test\r\n\r\nFrom: alice@shop.example\r\n");
    assert_eq!(summary.from_count, 0);
    assert_eq!(summary.from, None);
    assert_eq!(summary.from_domain, None);
}

fn subject_of(value: &str) -> Option<String> {
    summarize(format!("{RECEIVED}Subject:{value}\r\n\r\nbody").as_bytes()).subject
}

#[test]
fn subjects_are_unfolded_and_decoded() {
    let cases: &[(&str, &str)] = &[
        (" plain words", "plain words"),
        (" =?utf-8?B?w6lsw6h2ZQ==?=", "élève"),
        (" =?UTF-8?b?w6lsw6h2ZQ==?=", "élève"),
        (" =?iso-8859-1?Q?Caf=E9_cr=E8me?=", "Café crème"),
        (" Re: =?utf-8?Q?na=C3=AFve?= plan", "Re: naïve plan"),
        (" =?utf-8?Q?a?= =?utf-8?Q?b?=", "ab"),
        (" =?utf-8?Q?a?=\r\n =?utf-8?Q?b?=", "ab"),
        (" Hello\r\n world", "Hello world"),
        (" Olá mundo, 8-bit", "Olá mundo, 8-bit"),
        ("   padded   ", "padded"),
        ("", ""),
        (" =?bogus", "=?bogus"),
    ];
    for (value, expected) in cases {
        assert_eq!(
            subject_of(value).as_deref(),
            Some(*expected),
            "Subject:{value:?}"
        );
    }
    assert_eq!(summarize(b"To: b@b.test\r\n\r\n").subject, None);
    // The first Subject wins; a header-only message has no final line end.
    let summary = summarize(b"Subject: one\r\nSubject: two\r\n\r\n");
    assert_eq!(summary.subject.as_deref(), Some("one"));
    let summary = summarize(b"Subject: =?utf-8?Q?caf=C3=A9?=");
    assert_eq!(summary.subject.as_deref(), Some("café"));
}

#[test]
fn message_id_date_and_mime_version_are_seen() {
    let summary = summarize(
        b"Message-ID:\r\n <x@y.example>\r\nDATE: Tue, 4 Mar 2025 10:15:00 +0000\r\nMime-Version: 1.0\r\n\r\n",
    );
    assert_eq!(summary.message_id.as_deref(), Some("<x@y.example>"));
    assert!(summary.has_date);
    assert!(summary.has_mime_version);

    let summary = summarize(b"message-id: <a@b>\r\nMessage-ID: <c@d>\r\n\r\nDate: no\r\n");
    assert_eq!(summary.message_id.as_deref(), Some("<a@b>"));
    assert!(!summary.has_date);
    assert!(!summary.has_mime_version);

    // An empty Message-ID still exists: adding one would make two.
    let summary = summarize(b"Message-ID:\r\n\r\n");
    assert_eq!(summary.message_id.as_deref(), Some(""));
    // Names that only start like ours are other fields.
    let summary = summarize(b"Message-IDs: <a@b>\r\nDated: x\r\nX-Date: y\r\n\r\n");
    assert_eq!(summary.message_id, None);
    assert!(!summary.has_date);
}

#[test]
fn header_end_positions() {
    let cases: &[(&[u8], usize)] = &[
        (b"A: b\r\n\r\nbody", 8),
        (b"A: b\r\n\r\n", 8),
        (b"A: b\r\n", 6),
        (b"A: b", 4),
        (b"A: b\r\n c\r\n\r\nbody", 12),
        (b"A: b\n\nbody", 6),
        (b"\r\nbody", 2),
        (b"", 0),
        // No header at all: the body starts immediately.
        (b"Hello world\r\n\r\nFrom: a@b.example\r\n", 0),
        (b" A: b\r\n\r\n", 0),
        (b": no name\r\n\r\n", 0),
        // A line that is not a field ends the header section before it.
        (b"A: b\r\nnot a header\r\n\r\nmore", 6),
        (b"A: b\r\nFrom alice@x Tue Mar  4\r\n\r\n", 6),
        (b"A: b\r\n\rX: y\r\n\r\n", 6),
    ];
    for (message, expected) in cases {
        assert_eq!(
            summarize(message).header_end,
            *expected,
            "{:?}",
            String::from_utf8_lossy(message)
        );
    }
    let message = with_from("a@b.example");
    let end = summarize(&message).header_end;
    assert!(message[..end].ends_with(b"\r\n\r\n"));
    assert_eq!(&message[end..], b"From: body@evil.test\r\n");
}

#[test]
fn missing_headers_adds_only_what_is_missing() {
    let now = datetime!(2025-03-04 10:15:00 UTC);
    let none = summarize(b"From: a@b.example\r\n\r\n");
    assert_eq!(
        missing_headers(&none, "01abc", "relay.test", now),
        "Message-ID: <01abc@relay.test>\r\nDate: Tue, 04 Mar 2025 10:15:00 +0000\r\n"
    );
    let dated = summarize(b"Date: Tue, 04 Mar 2025 10:15:00 +0000\r\n\r\n");
    assert_eq!(
        missing_headers(&dated, "01abc", "relay.test", now),
        "Message-ID: <01abc@relay.test>\r\n"
    );
    let with_id = summarize(b"Message-ID: <x@y>\r\n\r\n");
    assert_eq!(
        missing_headers(&with_id, "01abc", "relay.test", now),
        "Date: Tue, 04 Mar 2025 10:15:00 +0000\r\n"
    );
    let both = summarize(b"Message-ID: <x@y>\r\nDate: x\r\n\r\n");
    assert_eq!(missing_headers(&both, "01abc", "relay.test", now), "");
}

#[test]
fn insert_at_copies_once_into_an_exact_buffer() {
    let message = b"Received: x\r\nFrom: a@b.example\r\n\r\nbody";
    let out = insert_at(message, 13, &[b"Date: d\r\n", b"Message-ID: <m@h>\r\n"]);
    assert_eq!(
        out,
        b"Received: x\r\nDate: d\r\nMessage-ID: <m@h>\r\nFrom: a@b.example\r\n\r\nbody"
    );
    assert_eq!(out.capacity(), out.len());
    assert_eq!(
        insert_at(message, 1000, &[b"X: y\r\n"]).len(),
        message.len() + 6
    );
    assert_eq!(insert_at(message, 0, &[]), message);
}

/// Pieces of header syntax that random combination turns into nasty inputs.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..8),
        prop::sample::select(vec![
            "From:",
            "from :",
            "Subject:",
            "Message-ID:",
            "Date:",
            "\r\n",
            "\n",
            "\r",
            " ",
            "\t",
            "<",
            ">",
            "@",
            ".",
            ",",
            ";",
            ":",
            "(",
            ")",
            "\\",
            "\"",
            "[",
            "]",
            "=?",
            "?=",
            "=?utf-8?B?",
            "=?iso-8859-1?Q?",
            "a@b.example",
            "é",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

proptest! {
    #[test]
    fn summarize_never_panics_on_bytes(message in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let summary = summarize(&message);
        prop_assert!(summary.header_end <= message.len());
    }

    #[test]
    fn summarize_never_panics_on_header_like_input(parts in proptest::collection::vec(fragment(), 0..80)) {
        let message = parts.concat();
        let summary = summarize(&message);
        prop_assert!(summary.header_end <= message.len());
        if let Some(from) = &summary.from {
            prop_assert!(split_address(from).is_some());
            prop_assert!(summary.from_domain.is_some());
        }
    }
}

/// A realistic 4 KiB message: trace fields, a DKIM signature, the usual
/// fields of a newsletter, a multipart body.
fn realistic_message() -> Vec<u8> {
    let mut message = String::from(RECEIVED);
    message.push_str(
        "Received: from mail.shop.example (mail.shop.example [198.51.100.4])\r\n\
         \tby mx.shop.example with ESMTPS id 4Z1abc2defG3;\r\n\
         \tTue, 04 Mar 2025 10:14:58 +0000 (UTC)\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=shop.example;\r\n\
         \ts=s2025; t=1741083298; h=from:to:subject:date:message-id:mime-version:\r\n\
         \tcontent-type:list-unsubscribe; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\
         \tb=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR\r\n\
         \tKF2fUMaFbm3OKV7kyFpzRZW3ZJ58N0l3TdMC07Zpmw8uL7aZWq7FoKkYhhx0CZ1E3Xs\r\n\
         \txRe8Sr9Pmq84W0Jvd9zEWPBkPZ0cCDPlqHMF1vBsdnuC3l2HVIL9LqeqFfTkTfxnAfu\r\n\
         From: =?utf-8?Q?Loja_do_Z=C3=A9?= <news@shop.example>\r\n\
         To: \"Customer Name\" <customer@example.net>\r\n\
         Subject: =?utf-8?B?UHJvbW/Dp8OjbyBkZSBtYXLDp286IDIwJSBlbSB0dWRv?=\r\n\
         Date: Tue, 04 Mar 2025 10:14:57 +0000\r\n\
         Message-ID: <20250304101457.4f2a9c@shop.example>\r\n\
         MIME-Version: 1.0\r\n\
         List-Unsubscribe: <https://shop.example/u/4f2a9c0e7b>,\r\n\
         \t<mailto:unsubscribe@shop.example?subject=4f2a9c0e7b>\r\n\
         List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
         X-Campaign: spring-2025\r\n\
         Content-Type: multipart/alternative; boundary=\"b1_4f2a9c0e7b\"\r\n\r\n",
    );
    message.push_str("--b1_4f2a9c0e7b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    let end = "\r\n--b1_4f2a9c0e7b--\r\n";
    while message.len() + end.len() < 4096 {
        message.push_str("Ola! Esta semana temos 20% em tudo na loja.\r\n");
    }
    message.truncate(4096 - end.len());
    message.push_str(end);
    message.into_bytes()
}

#[test]
fn realistic_message_is_summarized() {
    let message = realistic_message();
    let summary = summarize(&message);
    assert_eq!(summary.from.as_deref(), Some("news@shop.example"));
    assert_eq!(summary.from_domain.as_deref(), Some("shop.example"));
    assert_eq!(
        summary.subject.as_deref(),
        Some("Promoção de março: 20% em tudo")
    );
    assert_eq!(
        summary.message_id.as_deref(),
        Some("<20250304101457.4f2a9c@shop.example>")
    );
    assert!(summary.has_date && summary.has_mime_version);
    assert!(message[..summary.header_end].ends_with(b"\"b1_4f2a9c0e7b\"\r\n\r\n"));
}

/// `cargo test --release -p carteiro-mail headers -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_summarize() {
    let message = realistic_message();
    let rounds = 200_000u32;
    for _ in 0..10_000 {
        std::hint::black_box(summarize(std::hint::black_box(&message)));
    }
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(summarize(std::hint::black_box(&message)));
    }
    let elapsed = start.elapsed();
    println!(
        "summarize: {} ns per {}-byte message",
        elapsed.as_nanos() / u128::from(rounds),
        message.len()
    );
}

#[test]
fn has_field_looks_only_at_the_header_section() {
    let message = b"Received: x\r\nList-Unsubscribe : <mailto:a@b>\r\n\r\nList-Id: body\r\n";
    assert!(has_field(message, b"list-unsubscribe"));
    assert!(has_field(message, b"received"));
    assert!(!has_field(message, b"list-id"));
    assert!(!has_field(message, b"list"));
}

#[test]
fn field_value_is_the_trimmed_first_line() {
    let message = b"Subject: hi\r\nX-Bulk:  Yes \r\n\tmore\r\n\r\nX-Bulk: no\r\n";
    assert_eq!(field_value(message, b"x-bulk"), Some(&b"Yes"[..]));
    assert_eq!(field_value(message, b"subject"), Some(&b"hi"[..]));
    assert_eq!(field_value(message, b"x-other"), None);
    assert_eq!(field_value(b"X-Bulk:\r\n\r\n", b"x-bulk"), Some(&b""[..]));
}

#[test]
fn remove_fields_takes_out_every_instance_with_its_continuations() {
    let message =
        b"Subject: hi\r\nX-Bulk: yes\r\n\tfolded\r\nTo: a@b\r\nx-bulk : again\r\n\r\nX-Bulk: body\r\n";
    let out = remove_fields(message, b"x-bulk").expect("removed");
    assert_eq!(out, b"Subject: hi\r\nTo: a@b\r\n\r\nX-Bulk: body\r\n");
    assert_eq!(
        remove_fields(&out, b"x-bulk"),
        None,
        "nothing left to remove"
    );
    assert_eq!(remove_fields(b"X-Bulky: 1\r\n\r\n", b"x-bulk"), None);
    // The last field of a message without a body, and bare LF lines.
    assert_eq!(
        remove_fields(b"To: a@b\nX-Bulk: yes\n \tmore", b"x-bulk").as_deref(),
        Some(&b"To: a@b\n"[..])
    );
}
