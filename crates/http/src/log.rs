//! One debug line per request: method, path, status and duration. The query
//! string (addresses), headers (the API key) and bodies are never logged.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use carteiro_mail::LogSafe;
use tokio::time::Instant;

/// The logging middleware.
pub(crate) async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        path = %LogSafe(&path),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "http request"
    );
    response
}
