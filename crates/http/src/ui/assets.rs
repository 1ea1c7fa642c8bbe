//! `GET /ui/static/{file}`: the dashboard's stylesheet and script, and the
//! vendored chart library (uPlot 1.6.32, MIT, `static/vendor/`), compiled
//! into the binary so the dashboard works offline and from any node.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Name, content type, bytes.
const FILES: [(&str, &str, &[u8]); 5] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    (
        "uPlot.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/vendor/uPlot.min.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
    ),
];

/// A static file, cached for five minutes (they change only with the binary).
pub(crate) async fn file(Path(name): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(n, ..)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut response = (*bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
