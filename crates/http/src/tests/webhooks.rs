//! `GET/POST/DELETE /api/v1/webhooks`: the secret shown once, the caller's
//! own endpoints only, refused fields named, and the backlog.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use carteiro_store::{EventKind, NewEvent};
use serde_json::{Value, json};

use super::{Answer, Harness, assert_error};

const LIST: &str = "/api/v1/webhooks";

impl Harness {
    /// `POST /api/v1/webhooks` with `key`.
    async fn create_webhook_with(&self, body: &Value, key: &str) -> Answer {
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

    /// `DELETE /api/v1/webhooks/{id}` with `key`.
    async fn delete_webhook_with(&self, id: &str, key: &str) -> Answer {
        let authorization = format!("Bearer {key}");
        self.send(
            Method::DELETE,
            &format!("{LIST}/{id}"),
            Some(&authorization),
            None,
            Body::empty(),
        )
        .await
    }
}

/// The field an `invalid field` answer names.
fn refused_field(answer: &Answer) -> &str {
    assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid field");
    answer.json["detail"]["field"].as_str().expect("field")
}

#[tokio::test]
async fn a_webhook_is_created_with_its_secret_listed_and_deleted() {
    let h = Harness::new().await;
    let empty = h.get(LIST).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.json);
    assert_eq!(empty.json, json!({"webhooks": []}));

    let created = h
        .create_webhook_with(
            &json!({"url": "https://hooks.acme.test/carteiro", "events": ["delivered", "bounced"]}),
            &h.key,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let hook = &created.json;
    let secret = hook["secret"].as_str().expect("a secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(hook["url"], "https://hooks.acme.test/carteiro");
    assert_eq!(hook["events"], json!(["delivered", "bounced"]));
    assert_eq!(hook["status"], "active");
    assert_eq!(hook["backlog"], 0);
    assert_eq!(hook["last_error"], Value::Null);
    assert_eq!(hook["last_success_at"], Value::Null);
    assert!(
        hook["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let id = hook["id"].as_i64().expect("a numeric id").to_string();

    let listed = h.get(LIST).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.json);
    let entries = listed.json["webhooks"].as_array().expect("array");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], hook["id"]);
    assert!(
        entries[0].get("secret").is_none(),
        "the secret is shown only once: {}",
        entries[0]
    );
    let one = h.get(&format!("{LIST}/{id}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.json);
    assert_eq!(&one.json, &entries[0]);

    // No types: every type.
    let all = h
        .create_webhook_with(&json!({"url": "http://127.0.0.1:9/hook"}), &h.key)
        .await;
    assert_eq!(all.status, StatusCode::CREATED, "{}", all.json);
    assert_eq!(all.json["events"], json!([]));
    assert_ne!(all.json["secret"], hook["secret"]);

    let deleted = h.delete_webhook_with(&id, &h.key).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.json);
    assert_eq!(deleted.json, json!({"deleted": true}));
    assert_error(
        &h.get(&format!("{LIST}/{id}")).await,
        StatusCode::NOT_FOUND,
        "webhook not found",
    );
    assert_error(
        &h.delete_webhook_with(&id, &h.key).await,
        StatusCode::NOT_FOUND,
        "webhook not found",
    );
    assert_eq!(
        h.get(LIST).await.json["webhooks"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn another_accounts_webhook_is_not_found() {
    let h = Harness::new().await;
    let (_, other_key) = h.other_account("other").await;
    let created = h
        .create_webhook_with(&json!({"url": "https://hooks.acme.test/"}), &h.key)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let id = created.json["id"].as_i64().expect("id").to_string();

    assert_eq!(
        h.get_with(LIST, &other_key).await.json,
        json!({"webhooks": []})
    );
    assert_error(
        &h.get_with(&format!("{LIST}/{id}"), &other_key).await,
        StatusCode::NOT_FOUND,
        "webhook not found",
    );
    assert_error(
        &h.delete_webhook_with(&id, &other_key).await,
        StatusCode::NOT_FOUND,
        "webhook not found",
    );
    // Still there for its owner.
    assert_eq!(h.get(&format!("{LIST}/{id}")).await.status, StatusCode::OK);
    for id in ["abc", "-1", "99999999999999999999"] {
        assert_error(
            &h.get(&format!("{LIST}/{id}")).await,
            StatusCode::NOT_FOUND,
            "webhook not found",
        );
    }
    let anonymous = h.send(Method::GET, LIST, None, None, Body::empty()).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "missing API key");
}

#[tokio::test]
async fn refused_fields_are_named() {
    let h = Harness::new().await;
    for url in [
        json!("ftp://x.test/"),
        json!("/hook"),
        json!(null),
        json!(["https://x.test/"]),
    ] {
        let answer = h.create_webhook_with(&json!({"url": url}), &h.key).await;
        assert_eq!(refused_field(&answer), "url", "{url}");
    }
    let answer = h
        .create_webhook_with(
            &json!({"url": "https://x.test/", "events": ["delivered", "sent"]}),
            &h.key,
        )
        .await;
    assert_eq!(refused_field(&answer), "events");
    let message = answer.json["detail"]["message"].as_str().expect("message");
    assert!(message.contains("\"sent\""), "{message}");

    let answer = h
        .create_webhook_with(&json!({"url": "https://x.test/", "secret": "mine"}), &h.key)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "unknown field");
    let answer = h
        .send(
            Method::POST,
            LIST,
            Some(&format!("Bearer {}", h.key)),
            Some("text/plain"),
            "{}",
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported media type",
    );
    assert_eq!(
        h.get(LIST).await.json,
        json!({"webhooks": []}),
        "nothing made"
    );
}

#[tokio::test]
async fn an_account_has_a_bounded_number_of_webhooks() {
    let h = Harness::new().await;
    for n in 0..crate::webhooks::MAX_WEBHOOKS {
        let answer = h
            .create_webhook_with(&json!({"url": format!("https://x.test/{n}")}), &h.key)
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    }
    let answer = h
        .create_webhook_with(&json!({"url": "https://x.test/one-more"}), &h.key)
        .await;
    assert_eq!(refused_field(&answer), "url");
}

#[tokio::test]
async fn the_backlog_counts_wanted_events_after_creation() {
    let h = Harness::new().await;
    let event = |kind| NewEvent {
        account_id: h.account_id,
        message_id: "01jcmessage".to_owned(),
        recipient: Some("r@x.test".to_owned()),
        kind,
        timestamp_ms: 1_795_685_400_000,
        details: carteiro_store::EventDetails::None,
    };
    h.writer.event(event(EventKind::Delivered));
    h.writer.flush().await;
    let created = h
        .create_webhook_with(
            &json!({"url": "https://x.test/", "events": ["bounced"]}),
            &h.key,
        )
        .await;
    let id = created.json["id"].as_i64().expect("id");
    for kind in [EventKind::Bounced, EventKind::Delivered, EventKind::Bounced] {
        h.writer.event(event(kind));
    }
    h.writer.flush().await;
    let one = h.get(&format!("{LIST}/{id}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.json);
    assert_eq!(one.json["backlog"], 2, "two bounces since: {}", one.json);
}

#[tokio::test]
async fn the_collection_deletes_by_id_or_url() {
    let h = Harness::new().await;
    let (_, other_key) = h.other_account("other").await;
    let mut ids = Vec::new();
    for url in ["https://x.test/a", "https://x.test/b", "https://x.test/b"] {
        let created = h.create_webhook_with(&json!({"url": url}), &h.key).await;
        ids.push(created.json["id"].as_i64().expect("id"));
    }
    let delete = |body: Value, key: String| {
        let h = &h;
        async move {
            h.send(
                Method::DELETE,
                LIST,
                Some(&format!("Bearer {key}")),
                Some("application/json"),
                body.to_string(),
            )
            .await
        }
    };
    // Another account's id or URL matches nothing.
    assert_error(
        &delete(json!({"id": ids[0]}), other_key.clone()).await,
        StatusCode::NOT_FOUND,
        "webhook not found",
    );
    assert_error(
        &delete(json!({"url": "https://x.test/b"}), other_key).await,
        StatusCode::NOT_FOUND,
        "webhook not found",
    );
    let by_url = delete(json!({"url": "https://x.test/b"}), h.key.clone()).await;
    assert_eq!(by_url.status, StatusCode::OK, "{}", by_url.json);
    assert_eq!(
        by_url.json,
        json!({"deleted": true, "ids": [ids[1], ids[2]]})
    );
    let by_id = delete(json!({"id": ids[0].to_string()}), h.key.clone()).await;
    assert_eq!(by_id.json, json!({"deleted": true, "ids": [ids[0]]}));
    assert_eq!(h.get(LIST).await.json, json!({"webhooks": []}));
    for body in [
        json!({}),
        json!({"id": 1, "url": "https://x.test/"}),
        json!({"id": [1]}),
    ] {
        let answer = delete(body.clone(), h.key.clone()).await;
        assert_eq!(refused_field(&answer), "id", "{body}");
    }
}

/// The URLs of internal services a webhook must not reach by default, and
/// the address and class each refusal names.
const PRIVATE_TARGETS: [(&str, &str); 6] = [
    (
        "http://169.254.169.254/latest",
        "169.254.169.254 is a link-local address",
    ),
    ("http://127.0.0.1:9/", "127.0.0.1 is a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    (
        "http://[::ffff:127.0.0.1]:8080/",
        "::ffff:127.0.0.1 is a loopback address",
    ),
    // Resolved through /etc/hosts: no query leaves the machine. Which
    // loopback address comes first depends on the machine.
    ("http://localhost:9/hook", "localhost resolves to "),
];

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let h = Harness::with_config(|_| {}).await;
    for (url, reason) in PRIVATE_TARGETS {
        let answer = h.create_webhook_with(&json!({"url": url}), &h.key).await;
        assert_eq!(refused_field(&answer), "url", "{url}");
        let message = answer.json["detail"]["message"].as_str().expect("message");
        assert!(message.starts_with(reason), "{url}: {message}");
        assert!(message.contains(" address; "), "{url}: {message}");
        assert!(
            message
                .ends_with("webhook targets must be public (see webhooks.allow_private_targets)"),
            "{url}: {message}"
        );
    }
    assert_eq!(
        h.get(LIST).await.json,
        json!({"webhooks": []}),
        "nothing made"
    );
    // A public address is fine (a literal: nothing is looked up or sent).
    let public = h
        .create_webhook_with(&json!({"url": "https://93.184.216.34/hook"}), &h.key)
        .await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.json);
}

#[tokio::test]
async fn private_targets_are_accepted_when_allowed() {
    let everything = Harness::new().await;
    let listed = Harness::with_config(|config| {
        let networks = ["169.254.169.254/32", "127.0.0.0/8", "::1/128", "10.0.0.0/8"];
        config.webhooks.allow_private_targets = carteiro_config::PrivateTargets::Networks(
            networks
                .iter()
                .map(|n| n.parse().expect("network"))
                .collect(),
        );
    })
    .await;
    for h in [&everything, &listed] {
        for (url, _) in PRIVATE_TARGETS {
            let answer = h.create_webhook_with(&json!({"url": url}), &h.key).await;
            assert_eq!(answer.status, StatusCode::CREATED, "{url}: {}", answer.json);
        }
    }

    // Only what the list holds.
    let other = Harness::with_config(|config| {
        config.webhooks.allow_private_targets =
            carteiro_config::PrivateTargets::Networks(vec!["10.1.0.0/16".parse().expect("net")]);
    })
    .await;
    let allowed = other
        .create_webhook_with(&json!({"url": "http://10.1.2.3/hook"}), &other.key)
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.json);
    for (url, reason) in PRIVATE_TARGETS {
        let answer = other
            .create_webhook_with(&json!({"url": url}), &other.key)
            .await;
        assert_eq!(refused_field(&answer), "url", "{url}");
        let message = answer.json["detail"]["message"].as_str().expect("message");
        assert!(message.starts_with(reason), "{url}: {message}");
    }
}
