//! `GET /api/v1/messages/{id}`: the caller's own message with its
//! recipients and events; everything else is "message not found".

use axum::http::StatusCode;
use carteiro_store::{DeliveryDetails, EventDetails, EventKind, NewEvent};
use serde_json::{Value, json};

use super::{Harness, assert_error, valid_request};
use crate::format_timestamp;

#[tokio::test]
async fn a_message_shows_its_recipients_and_events_in_order() {
    let h = Harness::new().await;
    let mut request = valid_request();
    request["tags"] = json!(["orders"]);
    request["metadata"] = json!({"order": 7});
    let sent = h.post(&request).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.json);
    let id = sent.json["id"].as_str().expect("id").to_owned();
    let submission = h.submitter.submissions().remove(0);
    let received_ms = i64::try_from(submission.id.timestamp_millis()).expect("ms");
    let event = |recipient: &str, kind, ms, details: EventDetails| NewEvent {
        account_id: h.account_id,
        message_id: id.clone(),
        recipient: Some(recipient.to_owned()),
        kind,
        timestamp_ms: ms,
        details,
    };
    h.writer.event(event(
        "alice@example.org",
        EventKind::Delivered,
        received_ms + 1500,
        EventDetails::Delivery(DeliveryDetails {
            attempt: 1,
            remote_host: Some("mx.example.org".into()),
            reply: Some("250 2.0.0 ok".into()),
            ..DeliveryDetails::default()
        }),
    ));
    h.writer.event(event(
        "bob@example.net",
        EventKind::Deferred,
        received_ms + 2500,
        EventDetails::Delivery(DeliveryDetails {
            attempt: 1,
            reply: Some("451 4.7.1 try later".into()),
            ..DeliveryDetails::default()
        }),
    ));
    h.writer.flush().await;

    let answer = h.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let m = &answer.json;
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["account"], "acme");
    assert_eq!(m["from"], "news@shop.example");
    assert_eq!(m["subject"], "Your order");
    assert_eq!(
        m["message_id_header"],
        format!("<{id}@relay.carteiro.test>")
    );
    assert_eq!(m["tags"], json!(["orders"]));
    assert_eq!(m["metadata"], json!({"order": 7}));
    assert_eq!(m["source"], "api");
    assert_eq!(m["size"], submission.message.len());
    assert_eq!(m["received_at"], format_timestamp(received_ms));
    // The header section as queued, without the empty line that ends it.
    let composed = String::from_utf8(submission.message.to_vec()).expect("text");
    let (section, _) = composed.split_once("\r\n\r\n").expect("a header section");
    assert_eq!(
        m["headers"],
        json!({"raw": format!("{section}\r\n"), "size": section.len() + 2, "truncated": false})
    );
    assert_eq!(
        m["recipients"],
        json!([
            {"id": format!("{id}-0"), "address": "alice@example.org", "state": "delivered",
             "updated_at": format_timestamp(received_ms + 1500)},
            {"id": format!("{id}-1"), "address": "bob@example.net", "state": "deferred",
             "updated_at": format_timestamp(received_ms + 2500)},
        ])
    );
    let events = m["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds, ["received", "delivered", "deferred"]);
    let ids: Vec<u64> = events
        .iter()
        .map(|e| {
            e["id"]
                .as_str()
                .expect("a string id")
                .parse()
                .expect("decimal")
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        events[1],
        json!({
            "id": ids[1].to_string(), "type": "delivered",
            "timestamp": format_timestamp(received_ms + 1500), "account": "acme",
            "message_id": id, "recipient": "alice@example.org",
            "details": {"attempt": 1, "remote_host": "mx.example.org", "mx": null,
                        "reply": "250 2.0.0 ok", "reply_code": null, "status": null},
        })
    );
    assert_eq!(events[0]["recipient"], Value::Null);
    assert_eq!(events[0]["details"], json!({}));

    // Ids are case-insensitive.
    let upper = h
        .get(&format!("/api/v1/messages/{}", id.to_uppercase()))
        .await;
    assert_eq!(upper.status, StatusCode::OK);
    assert_eq!(upper.json["id"], id.as_str());
}

#[tokio::test]
async fn other_accounts_unknown_and_malformed_ids_are_not_found() {
    let h = Harness::new().await;
    let sent = h.post(&valid_request()).await;
    let id = sent.json["id"].as_str().expect("id").to_owned();
    h.writer.flush().await;
    assert_eq!(
        h.get(&format!("/api/v1/messages/{id}")).await.status,
        StatusCode::OK
    );

    let (_, other_key) = h.other_account("globex").await;
    let answer = h
        .get_with(&format!("/api/v1/messages/{id}"), &other_key)
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "message not found");
    assert_eq!(
        answer.json,
        json!({"error": "message not found", "detail": null})
    );

    let unknown = carteiro_mail::MessageId::generate().to_string();
    for bad in [
        unknown.as_str(),
        "nope",
        "8zzzzzzzzzzzzzzzzzzzzzzzzz",
        "%FF%FE",
    ] {
        let answer = h.get(&format!("/api/v1/messages/{bad}")).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "message not found");
    }
}
