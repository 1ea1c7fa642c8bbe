//! `POST /api/v1/messages`: what is accepted, what the submitter receives,
//! and every refusal.

use axum::http::{Method, StatusCode};
use mail_parser::MessageParser;
use serde_json::{Value, json};

use super::{Harness, MAX_MESSAGE_SIZE, Mode, assert_error, assert_unavailable, valid_request};

#[tokio::test]
async fn a_valid_message_is_accepted_composed_and_submitted() {
    let h = Harness::new().await;
    let request = json!({
        "from": "Shop <news@shop.example>",
        "to": ["alice@example.org", "Bob <bob@example.net>"],
        "cc": "carol@example.org",
        "bcc": ["hidden@example.com", "ALICE@example.org"],
        "reply_to": "support@shop.example",
        "subject": "Your order",
        "text": "Thanks for your order.",
        "html": "<p>Thanks for your order.</p>",
        "headers": {"X-Campaign": "autumn"},
        "attachments": [{"filename": "invoice.txt", "content_type": "text/plain",
                         "content_base64": "aW52b2ljZSAjNDI="}],
        "tags": ["orders", "autumn:2026"],
        "metadata": {"order": 42, "vip": true},
        "track_opens": true,
    });
    let answer = h.post(&request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    let id = answer.json["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 26);
    let addresses = [
        "alice@example.org",
        "bob@example.net",
        "carol@example.org",
        "hidden@example.com",
    ];
    let expected: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"address": a, "id": format!("{id}-{i}")}))
        .collect();
    assert_eq!(answer.json["recipients"], Value::Array(expected));

    let submissions = h.submitter.submissions();
    assert_eq!(submissions.len(), 1);
    let s = &submissions[0];
    assert_eq!(s.id.to_string(), id);
    assert_eq!((s.account.id, &*s.account.name), (h.account_id, "acme"));
    assert_eq!(s.envelope_from, "news@shop.example");
    assert_eq!(s.recipients, addresses);
    assert_eq!(s.header_message_id, format!("<{id}@relay.carteiro.test>"));
    assert_eq!(s.subject.as_deref(), Some("Your order"));
    assert_eq!(s.tags, ["orders", "autumn:2026"]);
    assert_eq!(s.metadata, json!({"order": 42, "vip": true}));
    assert_eq!((s.track_opens, s.track_clicks), (Some(true), None));
    assert!(!s.needs_smtputf8);

    let text = String::from_utf8(s.message.clone()).expect("utf-8");
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "bare LF in the message"
    );
    assert!(!text.to_ascii_lowercase().contains("bcc:"), "{text}");
    assert!(!text.contains("hidden@example.com"), "{text}");
    let parsed = MessageParser::default()
        .parse(&s.message)
        .expect("a MIME message");
    assert_eq!(parsed.subject(), Some("Your order"));
    assert_eq!(
        parsed.message_id(),
        Some(format!("{id}@relay.carteiro.test").as_str())
    );
    assert!(parsed.date().is_some());
    assert_eq!(
        parsed.header_raw("X-Campaign").map(str::trim),
        Some("autumn")
    );
    assert_eq!(parsed.attachment_count(), 1);
    assert_eq!(
        parsed.attachment(0).map(|a| a.contents()),
        Some(&b"invoice #42"[..])
    );
    assert!(
        parsed
            .body_text(0)
            .is_some_and(|t| t.contains("Thanks for your order."))
    );
}

#[tokio::test]
async fn a_single_address_may_be_a_string() {
    let h = Harness::new().await;
    let answer = h
        .post(&json!({"from": "a@shop.example", "to": "b@example.org", "html": "<b>hi</b>"}))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    assert_eq!(answer.json["recipients"][0]["address"], "b@example.org");
    let s = &h.submitter.submissions()[0];
    assert_eq!(s.recipients, ["b@example.org"]);
    assert_eq!(
        (s.subject.as_deref(), &s.metadata, s.tags.len()),
        (None, &Value::Null, 0)
    );
}

#[tokio::test]
async fn malformed_json_is_refused_with_its_position() {
    let h = Harness::new().await;
    for body in [
        "{\"to\": [",
        "not json",
        "",
        "{\"to\": 5}",
        "{\"track_opens\": \"yes\"}",
        "[1]",
        "[]",
    ] {
        let answer = h.post_raw(body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "malformed JSON");
        let detail = answer.json["detail"].as_str().expect("a message");
        assert!(detail.contains("line 1 column"), "{body:?}: {detail}");
    }
    assert!(h.submitter.submissions().is_empty());
}

#[tokio::test]
async fn an_unknown_field_is_refused_by_name() {
    let h = Harness::new().await;
    let mut request = valid_request();
    request["tgas"] = json!(["x"]);
    let answer = h.post(&request).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "unknown field");
    assert_eq!(answer.json["detail"]["field"], "tgas");
    assert!(
        answer.json["detail"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("tags"))
    );
    assert!(h.submitter.submissions().is_empty());
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let h = Harness::new().await;
    // (field named, request key, new value or None to remove it)
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        (
            "to[1]",
            "to",
            Some(json!(["alice@example.org", "not an address"])),
        ),
        ("from", "from", Some(json!("nobody"))),
        ("from", "from", None),
        ("to", "to", Some(json!([]))),
        ("text", "text", None),
        (
            "attachments[0].content_base64",
            "attachments",
            Some(json!([{"filename": "a.bin", "content_base64": "@@@"}])),
        ),
        (
            "attachments[1].filename",
            "attachments",
            Some(json!([{"filename": "a", "content_base64": "YQ=="}, {"content_base64": "YQ=="}])),
        ),
        ("tags[3]", "tags", Some(json!(["a", "b", "c", "no spaces"]))),
        (
            "tags",
            "tags",
            Some(Value::Array(
                (0..21).map(|i| json!(format!("t{i}"))).collect(),
            )),
        ),
        ("metadata", "metadata", Some(json!("a string"))),
        (
            "metadata",
            "metadata",
            Some(json!({"big": "x".repeat(9000)})),
        ),
        (
            "metadata.nested",
            "metadata",
            Some(json!({"nested": {"a": 1}})),
        ),
        (
            "headers.Bcc",
            "headers",
            Some(json!({"Bcc": "x@example.org"})),
        ),
        ("subject", "subject", Some(json!("line\r\nX-Injected: 1"))),
    ];
    for (field, key, value) in cases {
        let mut request = valid_request();
        let object = request.as_object_mut().expect("an object");
        match value {
            Some(value) => object.insert(key.to_owned(), value),
            None => object.remove(key),
        };
        let answer = h.post(&request).await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid field");
        assert_eq!(answer.json["detail"]["field"], field, "{}", answer.json);
        assert!(
            answer.json["detail"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            answer.json
        );
    }
    assert!(h.submitter.submissions().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_the_limit() {
    let h = Harness::new().await;
    let limit = MAX_MESSAGE_SIZE * 4 / 3 + 64 * 1024;
    let mut request = valid_request();
    request["text"] = json!("x".repeat(usize::try_from(limit).expect("usize")));
    let answer = h.post(&request).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload too large");
    assert_eq!(answer.json["detail"], json!({"limit": limit}));
    // Just under the limit is fine (the text itself is not limited here).
    request["text"] = json!("x".repeat(usize::try_from(limit).expect("usize") - 1000));
    assert_eq!(h.post(&request).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn only_json_bodies_are_taken() {
    let h = Harness::new().await;
    let authorization = format!("Bearer {}", h.key);
    let body = valid_request().to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let answer = h
            .send(
                Method::POST,
                "/api/v1/messages",
                Some(&authorization),
                content_type,
                body.clone(),
            )
            .await;
        assert_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
        );
    }
    let answer = h
        .send(
            Method::POST,
            "/api/v1/messages",
            Some(&authorization),
            Some("Application/JSON; charset=utf-8"),
            body,
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
}

#[tokio::test]
async fn submitter_refusals_are_passed_on() {
    let h = Harness::new().await;
    h.submitter.set_mode(Mode::Refuse {
        field: "from".to_owned(),
        message: "shop.example is not a sending domain of this account".to_owned(),
    });
    let answer = h.post(&valid_request()).await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid field");
    assert_eq!(
        answer.json["detail"],
        json!({"field": "from", "message": "shop.example is not a sending domain of this account"})
    );

    h.submitter.set_mode(Mode::Unavailable);
    let answer = h.post(&valid_request()).await;
    assert_unavailable(&answer);

    h.submitter.set_mode(Mode::Fail);
    let answer = h.post(&valid_request()).await;
    assert_error(&answer, StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    assert!(
        !answer.json.to_string().contains("disk on fire"),
        "internal detail leaked"
    );
    assert!(h.submitter.submissions().is_empty());
}
