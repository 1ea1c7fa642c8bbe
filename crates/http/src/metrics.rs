//! `GET /metrics`: the Prometheus text exposition format, without an API
//! key (series carry account names and counts, nothing more; an operator
//! who wants it private binds it to another address with
//! `http.metrics_listen`). This crate only serves the text; the binary owns
//! the recorder and renders it.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Renders the current series in the text format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A router with `GET /metrics` alone: merged into the API's router, or
/// served on its own listener.
pub fn metrics_router(render: RenderMetrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let render = Arc::clone(&render);
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render()).into_response() }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn metrics_answer_the_rendered_text_without_a_key() {
        let router = metrics_router(Arc::new(|| "carteiro_up 1\n".to_owned()));
        let request = Request::get("/metrics")
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"carteiro_up 1\n");
    }
}
