//! `GET /t/o/{token}` and `GET /t/c/{token}`: the pixel is always the same
//! GIF and records only genuine tokens; a tracked link redirects to its URL
//! or answers 404, never a redirect elsewhere; no API key is needed.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt;

use super::{CLICK_TOKEN, CLICK_URL, Harness, OPEN_TOKEN};
use crate::tracking::PIXEL_GIF;

struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Harness {
    async fn raw(&self, method: Method, uri: &str, user_agent: Option<&str>) -> Raw {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(agent) = user_agent {
            request = request.header(header::USER_AGENT, agent);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Raw {
            status,
            headers,
            body,
        }
    }

    fn engagements(&self) -> Vec<(String, Option<String>)> {
        self.submitter
            .engagements
            .lock()
            .expect("engagements lock")
            .clone()
    }
}

fn header_of(raw: &Raw, name: header::HeaderName) -> &str {
    raw.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_pixel_is_always_the_gif_and_records_genuine_tokens_only() {
    let harness = Harness::new().await;
    for token in [OPEN_TOKEN, "forged", OPEN_TOKEN, CLICK_TOKEN] {
        let raw = harness
            .raw(Method::GET, &format!("/t/o/{token}"), Some("Mail/1.0"))
            .await;
        assert_eq!(raw.status, StatusCode::OK, "{token}");
        assert_eq!(raw.body, PIXEL_GIF, "{token}");
        assert_eq!(header_of(&raw, header::CONTENT_TYPE), "image/gif");
        assert!(header_of(&raw, header::CACHE_CONTROL).contains("no-store"));
    }
    assert_eq!(
        harness.engagements(),
        [
            (OPEN_TOKEN.to_owned(), Some("Mail/1.0".to_owned())),
            (OPEN_TOKEN.to_owned(), Some("Mail/1.0".to_owned())),
        ]
    );
}

#[tokio::test]
async fn a_genuine_link_redirects_to_its_url_and_records() {
    let harness = Harness::new().await;
    let raw = harness
        .raw(Method::GET, &format!("/t/c/{CLICK_TOKEN}"), None)
        .await;
    assert_eq!(raw.status, StatusCode::FOUND);
    assert_eq!(header_of(&raw, header::LOCATION), CLICK_URL);
    assert_eq!(header_of(&raw, header::CACHE_CONTROL), "no-store");
    assert_eq!(header_of(&raw, header::REFERRER_POLICY), "no-referrer");
    assert_eq!(harness.engagements(), [(CLICK_TOKEN.to_owned(), None)]);
}

#[tokio::test]
async fn a_forged_link_is_a_404_page_without_redirect() {
    let harness = Harness::new().await;
    for token in [
        "forged",
        OPEN_TOKEN,
        "valid-click-token.aHR0cHM6Ly9ldmlsLnRlc3Qv",
    ] {
        let raw = harness
            .raw(Method::GET, &format!("/t/c/{token}"), None)
            .await;
        assert_eq!(raw.status, StatusCode::NOT_FOUND, "{token}");
        assert!(raw.headers.get(header::LOCATION).is_none());
        assert!(header_of(&raw, header::CONTENT_TYPE).starts_with("text/html"));
        assert!(String::from_utf8_lossy(&raw.body).contains("not valid"));
    }
    assert!(harness.engagements().is_empty());
}

#[tokio::test]
async fn tracking_routes_take_get_only_and_need_no_key() {
    let harness = Harness::new().await;
    let raw = harness
        .raw(Method::POST, &format!("/t/c/{CLICK_TOKEN}"), None)
        .await;
    assert_eq!(raw.status, StatusCode::METHOD_NOT_ALLOWED);
    let raw = harness.raw(Method::GET, "/t/c/", None).await;
    assert_eq!(raw.status, StatusCode::NOT_FOUND);
    assert!(harness.engagements().is_empty());
}

/// Link checkers and proxies look with HEAD: they get the answer a reader
/// would (the pixel, the redirect or the 404) and nothing is recorded.
#[tokio::test]
async fn head_requests_answer_like_get_and_record_nothing() {
    let harness = Harness::new().await;
    let raw = harness
        .raw(Method::HEAD, &format!("/t/o/{OPEN_TOKEN}"), Some("Scanner"))
        .await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(header_of(&raw, header::CONTENT_TYPE), "image/gif");
    let raw = harness
        .raw(
            Method::HEAD,
            &format!("/t/c/{CLICK_TOKEN}"),
            Some("Scanner"),
        )
        .await;
    assert_eq!(raw.status, StatusCode::FOUND);
    assert_eq!(header_of(&raw, header::LOCATION), CLICK_URL);
    let raw = harness
        .raw(Method::HEAD, "/t/c/forged", Some("Scanner"))
        .await;
    assert_eq!(raw.status, StatusCode::NOT_FOUND);
    assert!(raw.headers.get(header::LOCATION).is_none());
    assert!(
        harness.engagements().is_empty(),
        "HEAD is not an open or a click"
    );
}
