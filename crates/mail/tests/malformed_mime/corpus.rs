//! The malformed and hostile messages, made in code (sizes that would bloat
//! the repository, exact byte patterns) plus the files under
//! `testdata/malformed/` (cases worth reading as they are; a crash input
//! found by the fuzzers can be dropped there as a regression case).

use std::fmt::Write as _;
use std::path::Path;

/// One message of the corpus.
pub struct Case {
    pub name: String,
    pub message: Vec<u8>,
}

/// Headers of an ordinary message, for cases that break only the body.
const GOOD_HEAD: &str = "From: Alice <alice@sender.test>\r\n\
To: Bob <bob@rcpt.test>\r\n\
Subject: hello\r\n\
Date: Tue, 04 Mar 2025 10:00:00 +0000\r\n\
Message-ID: <m1@sender.test>\r\n\
MIME-Version: 1.0\r\n";

fn case(name: &str, message: impl Into<Vec<u8>>) -> Case {
    Case {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// A message whose only odd part is its `From:` value.
fn with_from(name: &str, from: &str) -> Case {
    case(
        name,
        format!("From: {from}\r\nTo: bob@rcpt.test\r\nSubject: from test\r\n\r\nbody\r\n"),
    )
}

/// A message with good headers and `content_type`, then `body`.
fn with_body(name: &str, content_type: &str, body: &str) -> Case {
    case(
        name,
        format!("{GOOD_HEAD}Content-Type: {content_type}\r\n\r\n{body}"),
    )
}

/// Every case made in code.
pub fn generated() -> Vec<Case> {
    let mut cases = vec![
        case("empty message", ""),
        case("only CRLF", "\r\n"),
        case("only LF", "\n"),
        case("only CR", "\r"),
        case("no header section", "just some text\r\nand more text\r\n"),
        case(
            "no header section but a From later",
            "hello there\r\nFrom: alice@sender.test\r\n\r\nbody\r\n",
        ),
        case(
            "only headers, no blank line",
            "From: alice@sender.test\r\nSubject: no body",
        ),
        case(
            "only headers ending in CRLF",
            "From: alice@sender.test\r\nSubject: no body\r\n",
        ),
        case(
            "folded line starts the message",
            " folded: start\r\n\tmore\r\nFrom: alice@sender.test\r\n\r\nbody\r\n",
        ),
        case(
            "tab-folded From continuation first",
            "\tFrom: alice@sender.test\r\nSubject: x\r\n\r\nbody\r\n",
        ),
        case(
            "header name with a space",
            "Fr om: alice@sender.test\r\nFrom : alice@sender.test\r\nX Y: z\r\n\r\nbody\r\n",
        ),
        case(
            "header name with 8-bit bytes",
            b"Fr\xc3\xb6m: alice@sender.test\r\nX-\xff\xfe: v\r\nFrom: alice@sender.test\r\n\r\nbody\r\n"
                .to_vec(),
        ),
        case(
            "header name with NUL",
            b"From\0: alice@sender.test\r\nX-\0: v\r\nFrom: a\0b@sender.test\r\n\r\nbody\r\n"
                .to_vec(),
        ),
        case(
            "colon-only and empty-name headers",
            ":\r\n: value\r\nFrom: alice@sender.test\r\n\r\nbody\r\n",
        ),
        case(
            "duplicate From, Subject and Message-ID",
            "From: alice@sender.test\r\nFrom: mallory@evil.test\r\nSubject: one\r\n\
             Subject: two\r\nMessage-ID: <a@x>\r\nMessage-ID: <b@x>\r\nMessage-ID:\r\n\r\nbody\r\n",
        ),
        case(
            "empty Message-ID and Date",
            "From: alice@sender.test\r\nMessage-ID:\r\nDate:\r\n\r\nbody\r\n",
        ),
        case(
            "encoded word that never ends",
            format!(
                "From: alice@sender.test\r\nSubject: =?utf-8?B?{}\r\n\r\nbody\r\n",
                "QUJD".repeat(5000)
            ),
        ),
        case(
            "many unterminated encoded words",
            format!(
                "From: alice@sender.test\r\nSubject: {}\r\n\r\nbody\r\n",
                "=?utf-8?q?a=?".repeat(5000)
            ),
        ),
        case(
            "encoded word with unknown charset and bad encoding",
            "From: =?x-unknown?Z?abc?= <alice@sender.test>\r\n\
             Subject: =?utf-8?B?####?= =?utf-8?Q?=ZZ=?= =??B??=\r\n\r\nbody\r\n",
        ),
        case(
            "binary garbage with NULs",
            (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>(),
        ),
        case(
            "NULs in headers and body",
            b"From: alice@sender.test\r\nSubject: a\0b\r\n\r\n\0\0\0\r\n".to_vec(),
        ),
        case(
            "lone LF line endings",
            "From: alice@sender.test\nSubject: lf\nDate: Tue, 04 Mar 2025 10:00:00 +0000\n\nbody\nline\n",
        ),
        case(
            "lone CR line endings",
            "From: alice@sender.test\rSubject: cr\r\rbody\rline\r",
        ),
        case(
            "mixed line endings",
            "From: alice@sender.test\r\nSubject: mixed\n\r\nbody\rline\n\r\n\n\r",
        ),
        case("CRLF reversed", "From: alice@sender.test\n\rSubject: x\n\r\n\rbody\n\r"),
    ];

    // From fields of every malformed kind.
    for (name, from) in [
        ("From unterminated quote", "\"Alice <alice@sender.test>"),
        ("From unterminated comment", "alice@sender.test (Alice"),
        ("From unterminated angle", "Alice <alice@sender.test"),
        ("From stray closing angle", "Alice alice@sender.test>"),
        (
            "From backslashes",
            "\\\\\\ \"a\\\"b\\\\\" <a\\b@sender.test> \\",
        ),
        ("From trailing backslash in quotes", "\"Alice\\"),
        ("From empty", ""),
        ("From only spaces", "   \t "),
        ("From only specials", "<>@,;:.[]()"),
        ("From domain literal garbage", "a@[1.2.3.4\r] , b@[::1"),
        (
            "From group never closed",
            "friends: alice@sender.test, bob@sender.test",
        ),
        (
            "From route never closed",
            "<@relay1,@relay2:alice@sender.test",
        ),
        ("From no domain", "alice@"),
        ("From many at signs", "a@b@c@d@sender.test"),
    ] {
        cases.push(with_from(name, from));
    }
    let mut nested = String::from("alice@sender.test ");
    nested.push_str(&"(".repeat(1000));
    nested.push_str("deep");
    nested.push_str(&")".repeat(1000));
    cases.push(with_from("From nested comments 1000 deep", &nested));
    let unclosed = format!("{}alice@sender.test", "(".repeat(1000));
    cases.push(with_from("From 1000 unclosed comments", &unclosed));
    let closers = format!("alice@sender.test {}", ")".repeat(1000));
    cases.push(with_from("From 1000 closing parentheses", &closers));
    let many: Vec<String> = (0..500)
        .map(|n| format!("User {n} <user{n}@sender.test>"))
        .collect();
    cases.push(with_from("From 500 addresses", &many.join(",\r\n ")));
    cases.push(with_from(
        "From 100 KB quoted name",
        &format!("\"{}\" <a@sender.test>", "x".repeat(100_000)),
    ));

    // Sizes.
    cases.push(case(
        "100 KB header line",
        format!(
            "From: alice@sender.test\r\nX-Long: {}\r\n\r\nbody\r\n",
            "y".repeat(100_000)
        ),
    ));
    cases.push(case(
        "100 KB Subject",
        format!(
            "From: alice@sender.test\r\nSubject: {}\r\n\r\nbody\r\n",
            "word ".repeat(20_000)
        ),
    ));
    let mut fields = String::from("From: alice@sender.test\r\n");
    for n in 0..10_000 {
        let _ = write!(fields, "X-Field-{n}: value {n}\r\n");
    }
    fields.push_str("\r\nbody\r\n");
    cases.push(case("10,000 header fields", fields));
    let mut signed_fields = String::from("From: alice@sender.test\r\n");
    for n in 0..2_000 {
        let _ = write!(signed_fields, "Subject: s{n}\r\nTo: t{n}@rcpt.test\r\n");
    }
    signed_fields.push_str("\r\nbody\r\n");
    cases.push(case("2,000 Subject and To fields", signed_fields));
    let mut folds = String::from("From: alice@sender.test\r\nSubject: start");
    for _ in 0..10_000 {
        folds.push_str("\r\n x");
    }
    folds.push_str("\r\n\r\nbody\r\n");
    cases.push(case("Subject folded 10,000 times", folds));
    let mut body = GOOD_HEAD.as_bytes().to_vec();
    body.extend_from_slice(b"\r\n");
    body.extend(std::iter::repeat_n(b'z', 5 * 1024 * 1024));
    body.extend_from_slice(b"\r\n");
    cases.push(case("5 MB body of one line", body));
    let mut no_end = GOOD_HEAD.as_bytes().to_vec();
    no_end.extend_from_slice(b"\r\n");
    no_end.extend(std::iter::repeat_n(b'q', 1024 * 1024));
    cases.push(case("1 MB body without a final line break", no_end));

    // Broken transfer encodings.
    cases.push(case(
        "broken base64 body",
        format!(
            "{GOOD_HEAD}Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             ====!!!!****\r\nQUJD=RE\r\n{}\r\n",
            "A".repeat(1001)
        ),
    ));
    cases.push(case(
        "broken quoted-printable body",
        format!(
            "{GOOD_HEAD}Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             =ZZ=4=\r\n=\r\n{}=\r\n",
            "=".repeat(3000)
        ),
    ));
    cases.push(case(
        "unknown transfer encoding",
        format!("{GOOD_HEAD}Content-Transfer-Encoding: x-rot13\r\n\r\nbody\r\n"),
    ));

    // MIME structure.
    cases.push(with_body(
        "multipart without boundary parameter",
        "multipart/mixed",
        "--x\r\nContent-Type: text/plain\r\n\r\na\r\n--x--\r\n",
    ));
    cases.push(with_body(
        "multipart boundary never appears",
        "multipart/mixed; boundary=\"abc\"",
        "no boundary here\r\n",
    ));
    cases.push(with_body(
        "multipart never closed",
        "multipart/mixed; boundary=\"abc\"",
        "--abc\r\nContent-Type: text/plain\r\n\r\npart one\r\n--abc\r\n\r\npart two\r\n",
    ));
    cases.push(with_body(
        "empty and quoted-empty boundary",
        "multipart/mixed; boundary=\"\"",
        "--\r\n\r\na\r\n----\r\n",
    ));
    let mut deep_body = String::new();
    for level in 0..200 {
        let _ = write!(
            deep_body,
            "--b{level}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n",
            level + 1
        );
    }
    deep_body.push_str("--b200\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n");
    cases.push(with_body(
        "multipart nested 200 deep, never closed",
        "multipart/mixed; boundary=\"b0\"",
        &deep_body,
    ));
    let mut closed_deep = deep_body.clone();
    for level in (0..=200).rev() {
        let _ = write!(closed_deep, "--b{level}--\r\n");
    }
    cases.push(with_body(
        "multipart nested 200 deep, closed",
        "multipart/mixed; boundary=\"b0\"",
        &closed_deep,
    ));
    let mut rfc822_deep = String::new();
    for _ in 0..200 {
        rfc822_deep.push_str("Content-Type: message/rfc822\r\n\r\nFrom: inner@sender.test\r\n");
    }
    rfc822_deep.push_str("\r\ninnermost\r\n");
    cases.push(with_body(
        "message/rfc822 nested 200 deep",
        "message/rfc822",
        &format!("From: inner@sender.test\r\n{rfc822_deep}"),
    ));
    let mut parts = String::new();
    for n in 0..10_000 {
        let _ = write!(parts, "--p\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n");
    }
    parts.push_str("--p--\r\n");
    cases.push(with_body(
        "multipart with 10,000 parts",
        "multipart/mixed; boundary=\"p\"",
        &parts,
    ));
    cases.push(with_body(
        "boundary line 100 KB long",
        &format!("multipart/mixed; boundary=\"{}\"", "b".repeat(100_000)),
        "--bbb\r\n\r\nx\r\n",
    ));
    cases.push(with_body(
        "content-type parameters garbage",
        "multipart/mixed; boundary=; boundary=\"x; charset=\"\"\"; ;;;=;=\"",
        "--x\r\n\r\nbody\r\n",
    ));
    cases.push(case(
        "dot lines and a lone dot",
        "From: alice@sender.test\r\n\r\n.\r\n..\r\n.x\r\n",
    ));
    cases.push(case(
        "DKIM-Signature already present and broken",
        "DKIM-Signature: v=1; a=rsa-sha256; d=evil.test; s=x; h=From; bh=; b=\r\n\
         From: alice@sender.test\r\n\r\nbody\r\n",
    ));
    cases
}

/// The files under `testdata/malformed/`, in name order.
pub fn from_files(dir: &Path) -> Vec<Case> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata/malformed exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| Case {
            name: format!("file {}", path.display()),
            message: std::fs::read(&path).expect("read a corpus file"),
        })
        .collect()
}
