//! `GET/POST /u/{token}`: the confirmation page never unsubscribes, the
//! one-click POST does, and an unknown token is a 404 page.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use tower::ServiceExt;

use super::{Harness, UNSTORABLE_TOKEN, UNSUBSCRIBE_TOKEN};

/// An HTML answer: status, content type, body text.
struct Page {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Harness {
    async fn page(&self, method: Method, uri: &str, form: Option<&str>) -> Page {
        let mut request = Request::builder().method(method).uri(uri);
        if form.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let body = form.map_or_else(Body::empty, |f| Body::from(f.to_owned()));
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        Page {
            status,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn unsubscribed(&self) -> Vec<String> {
        self.submitter
            .unsubscribed
            .lock()
            .expect("unsubscribed lock")
            .clone()
    }
}

#[tokio::test]
async fn get_shows_a_button_and_does_not_unsubscribe() {
    let harness = Harness::new().await;
    let uri = format!("/u/{UNSUBSCRIBE_TOKEN}");
    for _ in 0..3 {
        let page = harness.page(Method::GET, &uri, None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.content_type.starts_with("text/html"),
            "{}",
            page.content_type
        );
        assert!(page.text.contains("<form method=\"post\""), "{}", page.text);
        assert!(page.text.contains("al***@shop.test"), "{}", page.text);
        assert!(
            !page.text.contains("alice@shop.test"),
            "the address is masked"
        );
    }
    assert!(
        harness.unsubscribed().is_empty(),
        "a GET never unsubscribes"
    );
}

#[tokio::test]
async fn one_click_post_unsubscribes() {
    let harness = Harness::new().await;
    let uri = format!("/u/{UNSUBSCRIBE_TOKEN}");
    let page = harness
        .page(Method::POST, &uri, Some("List-Unsubscribe=One-Click"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Unsubscribed"), "{}", page.text);
    assert_eq!(harness.unsubscribed(), ["alice@shop.test"]);
}

#[tokio::test]
async fn post_without_one_click_is_refused() {
    let harness = Harness::new().await;
    let uri = format!("/u/{UNSUBSCRIBE_TOKEN}");
    let page = harness
        .page(Method::POST, &uri, Some("something=else"))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(harness.unsubscribed().is_empty());
}

#[tokio::test]
async fn unknown_tokens_are_not_found() {
    let harness = Harness::new().await;
    for method in [Method::GET, Method::POST] {
        let page = harness
            .page(method, "/u/u-forged", Some("List-Unsubscribe=One-Click"))
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(page.content_type.starts_with("text/html"));
    }
    assert!(harness.unsubscribed().is_empty());
}

#[tokio::test]
async fn an_unsubscribe_that_cannot_be_stored_is_not_confirmed() {
    let harness = Harness::new().await;
    let page = harness
        .page(
            Method::POST,
            &format!("/u/{UNSTORABLE_TOKEN}"),
            Some("List-Unsubscribe=One-Click"),
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text
    );
    assert!(page.text.contains("try again"), "{}", page.text);
    assert!(!page.text.contains("Unsubscribed"), "{}", page.text);
}
