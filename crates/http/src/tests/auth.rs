//! API keys and the answers outside the endpoints: `/healthz`, unknown
//! paths and methods.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use super::{Harness, assert_error, assert_unavailable, valid_request};

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let h = Harness::new().await;
    let body = valid_request().to_string();
    let json = Some("application/json");
    let missing = [
        None,
        Some("Basic YWxpY2U6c2VjcmV0"),
        Some("Bearer"),
        Some("Bearer   "),
    ];
    for authorization in missing {
        let answer = h
            .send(
                Method::POST,
                "/api/v1/messages",
                authorization,
                json,
                body.clone(),
            )
            .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "missing API key");
        assert_eq!(
            answer
                .headers
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }
    let mut wrong = h.key.clone();
    wrong.replace_range(43.., if h.key.ends_with('a') { "b" } else { "a" });
    for key in [wrong.as_str(), "crt_short", "something else"] {
        let answer = h.get_with("/api/v1/messages", key).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid API key");
        assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
    }
    // The scheme is case-insensitive.
    let answer = h
        .send(
            Method::GET,
            "/api/v1/events",
            Some(&format!("bearer {}", h.key)),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert!(h.submitter.submissions().is_empty());
}

#[tokio::test]
async fn a_revoked_key_is_refused() {
    let h = Harness::new().await;
    assert_eq!(h.get("/api/v1/events").await.status, StatusCode::OK);
    assert!(h.store.revoke_api_key(&h.key[..12]).await.expect("revoke"));
    let answer = h.get("/api/v1/events").await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid API key");
    let answer = h.post(&valid_request()).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid API key");
}

#[tokio::test]
async fn health_needs_no_key() {
    let h = Harness::new().await;
    let answer = h
        .send(Method::GET, "/healthz", None, None, Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let h = Harness::new().await;
    for path in [
        "/",
        "/api/v2/messages",
        "/api/v1/nothing",
        "/api/v1/messages/a/b",
    ] {
        let answer = h.get(path).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not found");
    }
    let authorization = format!("Bearer {}", h.key);
    let answer = h
        .send(
            Method::DELETE,
            "/api/v1/messages",
            Some(&authorization),
            None,
            Body::empty(),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    );
    let allow = answer
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow:?}"
    );
    let answer = h
        .send(Method::POST, "/healthz", None, None, Body::empty())
        .await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    );
    let answer = h
        .send(Method::PUT, "/api/v1/events", None, None, Body::empty())
        .await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    );
}

#[tokio::test]
async fn wrong_keys_from_one_ip_get_429_before_the_key_is_checked() {
    let h = Harness::with_config(|config| config.http.auth_max_failures = 3).await;
    let attacker = "192.0.2.66:40000";
    for n in 0..3 {
        let answer = h
            .get_from("/api/v1/events", &format!("crt_guess{n}"), attacker)
            .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid API key");
    }
    // Past the limit even the right key waits, and no key is looked up.
    for key in ["crt_guess9", h.key.as_str()] {
        let answer = h.get_from("/api/v1/events", key, "192.0.2.66:40001").await;
        assert_error(
            &answer,
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentications",
        );
        let retry: u64 = answer.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(answer.json["detail"]["retry_after"], retry);
    }
    // The right key from elsewhere works; so does a missing key's 401.
    let answer = h
        .get_from("/api/v1/events", &h.key, "198.51.100.1:5000")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    // Pages without a key are not throttled.
    let answer = h
        .send(Method::GET, "/healthz", None, None, Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn a_right_key_does_not_clear_the_count() {
    let h = Harness::with_config(|config| config.http.auth_max_failures = 2).await;
    let ip = "203.0.113.5:1";
    h.get_from("/api/v1/events", "crt_wrong", ip).await;
    let ok = h.get_from("/api/v1/events", &h.key, ip).await;
    assert_eq!(ok.status, StatusCode::OK);
    h.get_from("/api/v1/events", "crt_wrong", ip).await;
    let answer = h.get_from("/api/v1/events", &h.key, ip).await;
    assert_error(
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed authentications",
    );
}

#[tokio::test]
async fn an_unreachable_store_is_503_with_retry_after_not_a_wrong_key() {
    let h = Harness::new().await;
    // What a node sees when its database is gone: every query fails with a
    // transient error.
    h.store.close().await;
    for uri in ["/api/v1/events", "/api/v1/messages"] {
        let answer = h.get(uri).await;
        assert_unavailable(&answer);
    }
}
