//! `GET/POST/DELETE /api/v1/suppressions`: the caller's own list, the
//! reasons an API user may give, paging, the audit actor, and errors in the
//! one shape.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use carteiro_store::SuppressionReason;
use serde_json::{Value, json};

use super::{Answer, Harness, assert_error};

const LIST: &str = "/api/v1/suppressions";

impl Harness {
    /// `POST /api/v1/suppressions` with `key`.
    async fn add_with(&self, body: &Value, key: &str) -> Answer {
        let authorization = format!("Bearer {key}");
        self.send(
            Method::POST,
            LIST,
            Some(&authorization),
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    /// `POST /api/v1/suppressions` with this account's key.
    async fn add(&self, body: &Value) -> Answer {
        self.add_with(body, &self.key).await
    }

    /// `DELETE /api/v1/suppressions/{address}` with `key`.
    async fn delete_with(&self, address: &str, key: &str) -> Answer {
        let authorization = format!("Bearer {key}");
        self.send(
            Method::DELETE,
            &format!("{LIST}/{address}"),
            Some(&authorization),
            None,
            Body::empty(),
        )
        .await
    }

    /// The addresses of `GET /api/v1/suppressions{query}`.
    async fn listed(&self, query: &str) -> Vec<String> {
        let answer = self.get(&format!("{LIST}{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        addresses(&answer.json)
    }
}

fn addresses(json: &Value) -> Vec<String> {
    json["suppressions"]
        .as_array()
        .expect("a suppressions array")
        .iter()
        .map(|e| e["address"].as_str().expect("address").to_owned())
        .collect()
}

/// The field an `invalid field` answer names.
fn refused_field(answer: &Answer) -> &str {
    assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid field");
    answer.json["detail"]["field"].as_str().expect("field")
}

#[tokio::test]
async fn an_added_address_is_listed_found_and_removed() {
    let h = Harness::new().await;
    let empty = h.get(LIST).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.json);
    assert_eq!(empty.json, json!({"suppressions": [], "next_cursor": null}));

    let added = h
        .add(&json!({"address": "Bob@Example.COM", "detail": "asked by phone"}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.json);
    let entry = &added.json;
    assert_eq!(entry["address"], "bob@example.com");
    assert_eq!(entry["reason"], "manual");
    assert_eq!(entry["source_message_id"], Value::Null);
    assert_eq!(entry["detail"], "asked by phone");
    let created = entry["created_at"].as_str().expect("created_at");
    assert!(
        created.len() == 24 && created.ends_with('Z'),
        "RFC 3339 with milliseconds: {created}"
    );

    let list = h.get(LIST).await;
    assert_eq!(
        list.json,
        json!({"suppressions": [entry.clone()], "next_cursor": null})
    );
    // Any case, percent-encoded or not.
    for path in ["BOB@example.com", "bob%40example.com"] {
        let one = h.get(&format!("{LIST}/{path}")).await;
        assert_eq!(one.status, StatusCode::OK, "{path}: {}", one.json);
        assert_eq!(&one.json, entry);
    }

    let removed = h.delete_with("Bob@Example.com", &h.key).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.json);
    assert_eq!(removed.json, json!({"removed": true}));
    let again = h.delete_with("bob@example.com", &h.key).await;
    assert_error(&again, StatusCode::NOT_FOUND, "address not suppressed");
    let gone = h.get(&format!("{LIST}/bob@example.com")).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "address not suppressed");
    assert!(h.listed("").await.is_empty());

    // Both changes are audited as the API's.
    let log = h
        .store
        .suppression_history(h.account_id, None, 0, 100)
        .await
        .expect("history");
    let summary: Vec<_> = log.iter().map(|c| (c.added, c.actor.as_str())).collect();
    assert_eq!(summary, [(true, "api"), (false, "api")]);
}

#[tokio::test]
async fn adding_an_address_already_there_answers_the_entry_unchanged() {
    let h = Harness::new().await;
    h.store
        .add_suppression(
            h.account_id,
            "bob@example.com",
            SuppressionReason::HardBounce,
            Some("01JCWQ6ZQ3T4V2X7Y8Z9A0B1C2"),
            Some("550 5.1.1 no such user"),
            "bounce",
        )
        .await
        .expect("bounce");
    let answer = h
        .add(&json!({"address": "BOB@example.com", "reason": "unsubscribe", "detail": "x"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["reason"], "hard_bounce");
    assert_eq!(
        answer.json["source_message_id"],
        "01JCWQ6ZQ3T4V2X7Y8Z9A0B1C2"
    );
    assert_eq!(answer.json["detail"], "550 5.1.1 no such user");
    let unsubscribed = h
        .add(&json!({"address": "carol@example.com", "reason": "unsubscribe"}))
        .await;
    assert_eq!(unsubscribed.status, StatusCode::CREATED);
    assert_eq!(unsubscribed.json["reason"], "unsubscribe");
    assert_eq!(unsubscribed.json["detail"], Value::Null);
    assert_eq!(
        h.store
            .suppression_history(h.account_id, None, 0, 100)
            .await
            .expect("history")
            .len(),
        2,
        "the repeated add wrote no audit row"
    );
}

#[tokio::test]
async fn refused_additions_name_their_field() {
    let h = Harness::new().await;
    for (body, field) in [
        (json!({}), "address"),
        (json!({"address": 5}), "address"),
        (json!({"address": "no-at-sign"}), "address"),
        (json!({"address": "bob@exa mple.com"}), "address"),
        (json!({"address": "bob@"}), "address"),
        (
            json!({"address": format!("{}@example.com", "a".repeat(250))}),
            "address",
        ),
        (
            json!({"address": "a@example.com", "reason": "hard_bounce"}),
            "reason",
        ),
        (
            json!({"address": "a@example.com", "reason": "complaint"}),
            "reason",
        ),
        (
            json!({"address": "a@example.com", "reason": "spam"}),
            "reason",
        ),
        (json!({"address": "a@example.com", "detail": 7}), "detail"),
    ] {
        let answer = h.add(&body).await;
        assert_eq!(refused_field(&answer), field, "{body}: {}", answer.json);
    }
    let hard = h
        .add(&json!({"address": "a@example.com", "reason": "hard_bounce"}))
        .await;
    let message = hard.json["detail"]["message"].as_str().expect("message");
    assert!(message.contains("manual"), "{message}");

    let unknown = h
        .add(&json!({"address": "a@example.com", "note": "x"}))
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "unknown field");
    assert_eq!(unknown.json["detail"]["field"], "note");

    let authorization = format!("Bearer {}", h.key);
    for (content_type, body, status, error) in [
        (
            Some("application/json"),
            "{not json",
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            Some("application/json"),
            "[\"a@example.com\"]",
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            Some("text/plain"),
            "{\"address\": \"a@example.com\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
        ),
        (
            None,
            "{\"address\": \"a@example.com\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
        ),
    ] {
        let answer = h
            .send(Method::POST, LIST, Some(&authorization), content_type, body)
            .await;
        assert_error(&answer, status, error);
    }
    let huge = json!({"address": "a@example.com", "detail": "x".repeat(64 * 1024)});
    let answer = h.add(&huge).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload too large");
    assert!(h.listed("").await.is_empty(), "nothing was added");
}

#[tokio::test]
async fn the_list_pages_by_address_and_filters_by_reason() {
    let h = Harness::new().await;
    for (address, reason) in [
        ("erin@example.com", SuppressionReason::HardBounce),
        ("alice@example.com", SuppressionReason::Complaint),
        ("dave@example.com", SuppressionReason::HardBounce),
        ("bob@example.com", SuppressionReason::Manual),
        ("carol@example.com", SuppressionReason::HardBounce),
    ] {
        h.store
            .add_suppression(h.account_id, address, reason, None, None, "bounce")
            .await
            .expect("add");
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let answer = h.get(&format!("{LIST}{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let page = addresses(&answer.json);
        assert!(page.len() <= 2);
        seen.extend(page);
        pages += 1;
        match answer.json["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
            "dave@example.com",
            "erin@example.com"
        ]
    );
    assert_eq!(
        h.listed("?reason=hard_bounce").await,
        ["carol@example.com", "dave@example.com", "erin@example.com"]
    );
    assert_eq!(
        h.listed("?reason=hard_bounce&cursor=carol%40example.com&limit=1")
            .await,
        ["dave@example.com"]
    );
    assert!(h.listed("?reason=unsubscribe").await.is_empty());

    for (query, parameter) in [
        ("?reason=bounce", "reason"),
        ("?limit=0", "limit"),
        ("?limit=ten", "limit"),
        ("?status=manual", "status"),
        ("?cursor=a&cursor=b", "cursor"),
    ] {
        let answer = h.get(&format!("{LIST}{query}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid parameter");
        assert_eq!(answer.json["detail"]["parameter"], parameter, "{query}");
    }
}

#[tokio::test]
async fn an_account_sees_and_changes_only_its_own_list() {
    let h = Harness::new().await;
    let (other_id, other_key) = h.other_account("beta").await;
    let mine = h.add(&json!({"address": "bob@example.com"})).await;
    assert_eq!(mine.status, StatusCode::CREATED);

    let theirs = h.get_with(LIST, &other_key).await;
    assert_eq!(theirs.json["suppressions"], json!([]));
    let one = h
        .get_with(&format!("{LIST}/bob@example.com"), &other_key)
        .await;
    assert_error(&one, StatusCode::NOT_FOUND, "address not suppressed");
    let delete = h.delete_with("bob@example.com", &other_key).await;
    assert_error(&delete, StatusCode::NOT_FOUND, "address not suppressed");

    // The same address on the other list is a new, separate entry.
    let added = h
        .add_with(&json!({"address": "bob@example.com"}), &other_key)
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.json);
    let removed = h.delete_with("bob@example.com", &other_key).await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(h.listed("").await, ["bob@example.com"]);
    assert!(
        h.store
            .suppression(other_id, "bob@example.com")
            .await
            .expect("lookup")
            .is_none()
    );
}

#[tokio::test]
async fn every_suppression_route_needs_a_key() {
    let h = Harness::new().await;
    for (method, uri) in [
        (Method::GET, LIST.to_owned()),
        (Method::POST, LIST.to_owned()),
        (Method::GET, format!("{LIST}/bob@example.com")),
        (Method::DELETE, format!("{LIST}/bob@example.com")),
    ] {
        let answer = h
            .send(
                method.clone(),
                &uri,
                None,
                Some("application/json"),
                "{\"address\": \"bob@example.com\"}",
            )
            .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "missing API key");
        let answer = h
            .send(
                method.clone(),
                &uri,
                Some("Bearer crt_wrongwrongwrongwrongwrongwrongwrongwrong"),
                Some("application/json"),
                "{\"address\": \"bob@example.com\"}",
            )
            .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid API key");
    }
    let put = h
        .send(
            Method::PUT,
            LIST,
            Some(&format!("Bearer {}", h.key)),
            None,
            Body::empty(),
        )
        .await;
    assert_error(&put, StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    assert!(h.listed("").await.is_empty());
}
