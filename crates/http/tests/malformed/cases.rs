//! The hostile request bodies for `POST /api/v1/messages`, each with what
//! the API must answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// What the API must answer to a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `202`, and a message that passes the checks.
    Accepted,
    /// A 4xx error.
    Refused,
}

pub struct Case {
    pub name: String,
    pub body: Vec<u8>,
    pub expect: Expect,
}

fn case(name: impl Into<String>, body: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        body: body.into(),
        expect,
    }
}

/// A valid request, to be broken by each case.
pub fn valid() -> Value {
    json!({
        "from": "Shop <news@shop.example>",
        "to": ["alice@example.org"],
        "subject": "Your order",
        "text": "Thanks for your order.",
    })
}

/// `valid()` with `field` set to `value`.
fn with(field: &str, value: Value) -> Vec<u8> {
    let mut request = valid();
    request[field] = value;
    request.to_string().into_bytes()
}

/// The string fields of a request, each with a JSON value for its field
/// that puts `text` in it.
fn string_fields(text: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("from", json!(text)),
        (
            "from display name",
            json!(format!("{text} <news@shop.example>")),
        ),
        ("to", json!([text])),
        ("cc", json!(text)),
        ("bcc", json!([text])),
        ("reply_to", json!(text)),
        ("subject", json!(text)),
        ("text", json!(text)),
        ("html", json!(text)),
        ("header value", json!({"X-Custom": text})),
        ("header name", json!({text: "v"})),
        (
            "attachment filename",
            json!([{"filename": text, "content_base64": "aGk="}]),
        ),
        (
            "attachment content_type",
            json!([{"filename": "a.txt", "content_type": text, "content_base64": "aGk="}]),
        ),
        (
            "attachment content_base64",
            json!([{"filename": "a.txt", "content_base64": text}]),
        ),
        ("tags", json!([text])),
        ("metadata value", json!({"k": text})),
        ("metadata key", json!({text: 1})),
    ]
}

/// `text` in every string field: accepted in the fields named in
/// `accepted_in`, refused in the others.
fn in_every_field(cases: &mut Vec<Case>, what: &str, text: &str, accepted_in: &[&str]) {
    for (label, value) in string_fields(text) {
        let expect = if accepted_in.contains(&label) {
            Expect::Accepted
        } else {
            Expect::Refused
        };
        cases.push(case(
            format!("{what} in {label}"),
            with(field_of(label), value),
            expect,
        ));
    }
}

/// The request field a `string_fields` entry goes in.
fn field_of(label: &str) -> &str {
    match label {
        "from display name" => "from",
        "header value" | "header name" => "headers",
        label if label.starts_with("attachment") => "attachments",
        label if label.starts_with("metadata") => "metadata",
        label => label,
    }
}

/// Every case.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();

    // Deep nesting, 10,000 levels, wherever a value can go.
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let unclosed = "[".repeat(depth);
    cases.push(case(
        "nested arrays as the body",
        arrays.clone(),
        Expect::Refused,
    ));
    cases.push(case(
        "nested objects as the body",
        objects.clone(),
        Expect::Refused,
    ));
    cases.push(case(
        "unclosed arrays as the body",
        unclosed.clone(),
        Expect::Refused,
    ));
    for field in [
        "to",
        "metadata",
        "headers",
        "attachments",
        "tags",
        "subject",
        "unknown",
    ] {
        for (shape, nested) in [
            ("arrays", &arrays),
            ("objects", &objects),
            ("unclosed", &unclosed),
        ] {
            let body = format!("{{\"{field}\": {nested}}}");
            cases.push(case(
                format!("nested {shape} in {field}"),
                body,
                Expect::Refused,
            ));
        }
    }

    // Huge strings (1 MiB) in every field.
    let huge = "x".repeat(1 << 20);
    let huge_words = "word ".repeat(200_000);
    // Runs of "x" are valid base64 too.
    in_every_field(
        &mut cases,
        "1 MiB",
        &huge,
        &["text", "html", "attachment content_base64"],
    );
    for field in ["text", "html"] {
        cases.push(case(
            format!("1 MiB of words in {field}"),
            with(field, json!(huge_words)),
            Expect::Accepted,
        ));
    }
    cases.push(case(
        "1 MiB of words in subject",
        with("subject", json!(huge_words)),
        Expect::Refused,
    ));
    cases.push(case(
        "1 MiB base64 attachment",
        with(
            "attachments",
            json!([{"filename": "big.bin", "content_base64": "QUJD".repeat(1 << 18)}]),
        ),
        Expect::Accepted,
    ));

    // Many things.
    let attachments: Vec<Value> = (0..1000)
        .map(|n| json!({"filename": format!("file{n}.txt"), "content_base64": "aGk="}))
        .collect();
    cases.push(case(
        "1,000 attachments",
        with("attachments", json!(attachments)),
        Expect::Accepted,
    ));
    let addresses =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("r{i}@example.org")).collect() };
    cases.push(case(
        "1,000 recipients",
        with("to", json!(addresses(1000))),
        Expect::Accepted,
    ));
    cases.push(case(
        "1,001 recipients",
        with("to", json!(addresses(1001))),
        Expect::Refused,
    ));
    let mut split = valid();
    split["to"] = json!(addresses(400));
    split["cc"] = json!(addresses(400));
    split["bcc"] = json!(addresses(201));
    cases.push(case(
        "1,001 recipients over to, cc and bcc",
        split.to_string(),
        Expect::Refused,
    ));
    cases.push(case(
        "100,000 recipients",
        with("to", json!(addresses(100_000))),
        Expect::Refused,
    ));
    let headers: serde_json::Map<String, Value> = (0..10_000)
        .map(|n| (format!("X-H{n}"), json!("v")))
        .collect();
    cases.push(case(
        "10,000 custom headers",
        with("headers", Value::Object(headers)),
        Expect::Accepted,
    ));
    let tags: Vec<String> = (0..10_000).map(|n| format!("t{n}")).collect();
    cases.push(case(
        "10,000 tags",
        with("tags", json!(tags)),
        Expect::Refused,
    ));

    // Unicode in its odd forms, written as JSON escapes.
    // A request written by hand, with `escaped` as the JSON text of `field`.
    let raw = |field: &str, escaped: &str| -> Vec<u8> {
        let mut members = vec![
            ("from", "news@shop.example"),
            ("to", "alice@example.org"),
            ("text", "hi"),
        ];
        members.retain(|(name, _)| *name != field);
        members.push((field, escaped));
        let members: Vec<String> = members
            .iter()
            .map(|(name, value)| format!("\"{name}\": \"{value}\""))
            .collect();
        format!("{{{}}}", members.join(", ")).into_bytes()
    };
    for field in ["subject", "text", "from", "reply_to", "to"] {
        cases.push(case(
            format!("lone high surrogate in {field}"),
            raw(field, "a\\ud800b"),
            Expect::Refused,
        ));
        cases.push(case(
            format!("lone low surrogate in {field}"),
            raw(field, "\\udc00"),
            Expect::Refused,
        ));
        cases.push(case(
            format!("reversed surrogates in {field}"),
            raw(field, "\\ude00\\ud83d"),
            Expect::Refused,
        ));
        cases.push(case(
            format!("bad escape in {field}"),
            raw(field, "\\x41\\u12"),
            Expect::Refused,
        ));
    }
    cases.push(case(
        "surrogate pair in subject",
        raw("subject", "\\ud83d\\ude00 caf\\u00e9"),
        Expect::Accepted,
    ));
    cases.push(case(
        "surrogate pair in text",
        raw("text", "\\ud83d\\ude00"),
        Expect::Accepted,
    ));
    cases.push(case(
        "surrogate pair in display name",
        raw("from", "\\ud83d\\ude00 Shop <news@shop.example>"),
        Expect::Accepted,
    ));
    cases.push(case(
        "surrogate pair in local part",
        raw("to", "\\ud83d\\ude00@example.org"),
        Expect::Accepted,
    ));
    let mut invalid_utf8 =
        b"{\"from\": \"news@shop.example\", \"to\": \"a@example.org\", \"text\": \"".to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3\x28\xed\xa0\x80");
    invalid_utf8.extend_from_slice(b"\"}");
    cases.push(case(
        "raw invalid UTF-8 in text",
        invalid_utf8,
        Expect::Refused,
    ));
    cases.push(case(
        "UTF-8 byte order mark first",
        b"\xef\xbb\xbf{}".to_vec(),
        Expect::Refused,
    ));

    // NUL and CR/LF injection in every string field.
    // Metadata values are data, not message text: anything goes there.
    let anything = ["text", "html", "metadata value"];
    in_every_field(&mut cases, "NUL", "a\u{0}b", &anything);
    for injection in [
        "x\r\nX-Injected: yes",
        "x\nX-Injected: yes",
        "x\rX-Injected: yes",
        "x\r\n\r\nX-Injected: yes",
    ] {
        in_every_field(&mut cases, &format!("{injection:?}"), injection, &anything);
    }

    // Wrong types.
    for (field, value) in [
        ("from", json!(5)),
        ("from", json!(["a@example.org"])),
        ("to", json!(5)),
        ("to", json!([1, 2])),
        ("to", json!({"a": "b"})),
        ("subject", json!(1.5)),
        ("subject", json!(true)),
        ("text", json!(["a"])),
        ("html", json!({"a": 1})),
        ("headers", json!({"X-A": 5})),
        ("headers", json!(["X-A"])),
        ("attachments", json!({"filename": "a"})),
        (
            "attachments",
            json!([{"filename": 5, "content_base64": "aGk="}]),
        ),
        (
            "attachments",
            json!([{"filename": "a", "content_base64": 5}]),
        ),
        (
            "attachments",
            json!([{"filename": "a", "content_base64": "aGk=", "x": 1}]),
        ),
        ("tags", json!("one")),
        ("tags", json!([5])),
        ("metadata", json!(5)),
        ("metadata", json!({"a": [1]})),
        ("track_opens", json!("yes")),
        ("track_clicks", json!(1)),
    ] {
        cases.push(case(
            format!("{field} = {value}"),
            with(field, value),
            Expect::Refused,
        ));
    }
    for number in [
        "1e400",
        "-1e400",
        "123456789012345678901234567890",
        "-0",
        "1.0e-400",
    ] {
        cases.push(case(
            format!("number {number} as subject"),
            format!("{{\"subject\": {number}}}"),
            Expect::Refused,
        ));
        cases.push(case(
            format!("number {number} in metadata"),
            format!(
                "{{\"from\": \"news@shop.example\", \"to\": \"a@example.org\", \"text\": \"hi\", \"metadata\": {{\"n\": {number}}}}}"
            ),
            // A number serde_json can hold is a fine metadata value.
            if number.contains("e400") { Expect::Refused } else { Expect::Accepted },
        ));
    }

    // Attachment content.
    cases.push(case(
        "base64 of 0 bytes",
        with(
            "attachments",
            json!([{"filename": "empty.bin", "content_base64": ""}]),
        ),
        Expect::Accepted,
    ));
    let garbage: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    cases.push(case(
        "base64 of binary garbage",
        with(
            "attachments",
            json!([{"filename": "garbage.bin", "content_type": "application/octet-stream",
                    "content_base64": STANDARD.encode(&garbage)}]),
        ),
        Expect::Accepted,
    ));
    for bad in ["*", "=", "A", "AB=C", "====", "QUJD\u{0}", "QUJD\u{e9}"] {
        cases.push(case(
            format!("base64 {bad:?}"),
            with(
                "attachments",
                json!([{"filename": "a", "content_base64": bad}]),
            ),
            Expect::Refused,
        ));
    }
    for content_type in [
        "multipart/mixed; boundary=x",
        "message/rfc822",
        "text/plain; charset=\"\\",
        "a/b; c",
        "/",
    ] {
        cases.push(case(
            format!("attachment content type {content_type:?}"),
            with(
                "attachments",
                json!([{"filename": "a", "content_type": content_type, "content_base64": "aGk="}]),
            ),
            Expect::Refused,
        ));
    }

    // HTML.
    let depth = 100_000;
    let nested = format!("{}x{}", "<div>".repeat(depth), "</div>".repeat(depth));
    cases.push(case(
        "html nested 100,000 deep",
        with("html", json!(nested)),
        Expect::Accepted,
    ));
    let unclosed = format!(
        "{}<b><i><table><tr><td>{}",
        "<div>".repeat(depth),
        "<!--".repeat(1000)
    );
    cases.push(case(
        "html never closed",
        with("html", json!(unclosed)),
        Expect::Accepted,
    ));

    // The empty and the trivial.
    for (name, body, expect) in [
        ("empty body", "", Expect::Refused),
        ("null", "null", Expect::Refused),
        ("empty object", "{}", Expect::Refused),
        ("a string", "\"hi\"", Expect::Refused),
        ("a number", "5", Expect::Refused),
        ("two objects", "{}{}", Expect::Refused),
        (
            "trailing garbage",
            "{\"to\": \"a@example.org\"} x",
            Expect::Refused,
        ),
        (
            "duplicate fields",
            "{\"from\": \"news@shop.example\", \"from\": \"x@y.test\", \"to\": \"a@example.org\", \"text\": \"hi\"}",
            Expect::Refused,
        ),
        ("only whitespace", "   \r\n\t ", Expect::Refused),
        ("NUL bytes", "\0\0\0", Expect::Refused),
    ] {
        cases.push(case(name, body, expect));
    }
    cases
}
