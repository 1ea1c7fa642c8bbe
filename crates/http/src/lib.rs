//! Carteiro's JSON HTTP API (axum): `POST /api/v1/messages` to send,
//! `GET /api/v1/messages[/{id}]` to read message records, `GET /api/v1/events`
//! to read the event log, `GET/POST/DELETE /api/v1/suppressions[/{address}]`
//! for the suppression list, `GET/POST/DELETE /api/v1/webhooks[/{id}]` for
//! webhook endpoints, `GET/POST /u/{token}` for one-click unsubscribe
//! (RFC 8058, no key: the signed token is the credential), `GET /t/o/{token}`
//! and `GET /t/c/{token}` for open and click tracking (no key either), and
//! `GET /healthz`. Every `/api/v1` request carries
//! `Authorization: Bearer <api key>`, and sees only its own account's data
//! (another account's message answers 404, like a missing one).
//!
//! This crate checks requests, composes messages and shapes answers. It does
//! not queue, sign, spool or record anything itself: sending goes through the
//! [`Submitter`] the binary implements (which answers only once the message
//! is durable, so `202` keeps the same promise as SMTP's `250`), and reads
//! and suppression list changes go to the [`Store`](carteiro_store::Store).
//! It never logs API keys or message content.
//!
//! Layout: `submit` is the contract with the binary, `auth` checks keys
//! (`throttle` counts wrong ones per client IP),
//! `error` is the one error shape, `send` (with `send/request.rs`) handles
//! sending, `read` the message lookups, `events` the event log,
//! `suppressions` the suppression list, `webhooks` the webhook endpoints,
//! `unsubscribe` the one-click
//! unsubscribe pages, `tracking` the pixel and tracked links, `stats` the
//! statistics (`GET /api/v1/stats`), `metrics` the Prometheus `GET /metrics`
//! (no key; the binary renders it), `params` the query strings, `wire`
//! the JSON shapes of records, `log` the request log.

mod auth;
mod error;
mod events;
mod log;
mod metrics;
mod params;
mod read;
mod send;
mod stats;
mod submit;
mod suppressions;
mod throttle;
mod tracking;
mod ui;
mod unsubscribe;
mod webhooks;
mod wire;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use metrics::{RenderMetrics, metrics_router};
pub use submit::{
    AccountRef, DomainCheck, QueuedMessage, QueuedRecipient, Submission, SubmitError, Submitter,
};
pub use suppressions::ApiSuppression;
pub use webhooks::ApiWebhook;
pub use wire::{ApiEvent, ApiMessage, ApiRecipient, WebhookWireEvent, format_timestamp};

/// Extra room in the request body limit for the JSON around the message: the
/// field names, the text and html bodies, headers and metadata.
const BODY_OVERHEAD: u64 = 64 * 1024;

/// What the API's handlers share.
pub struct ApiState<S> {
    /// Keys, message records and events.
    pub store: carteiro_store::Store,
    /// Sends accepted messages on (policy, spool, queue, record).
    pub submitter: Arc<S>,
    /// The daemon's configuration: `hostname` for Message-IDs,
    /// `smtp.max_message_size` for the body limit.
    pub config: Arc<carteiro_config::Config>,
}

// Not derived: a derive would require `S: Clone`, and only the `Arc` is cloned.
impl<S> Clone for ApiState<S> {
    fn clone(&self) -> Self {
        ApiState {
            store: self.store.clone(),
            submitter: Arc::clone(&self.submitter),
            config: Arc::clone(&self.config),
        }
    }
}

/// The largest request body accepted: `smtp.max_message_size` grown by a
/// third (attachments arrive base64-encoded) plus room for the JSON around.
pub fn body_limit(config: &carteiro_config::Config) -> usize {
    let limit = config
        .smtp
        .max_message_size
        .saturating_mul(4)
        .div_ceil(3)
        .saturating_add(BODY_OVERHEAD);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The API's routes, with JSON answers for unknown paths (404) and methods
/// (405), the body limit, and a debug log line per request.
pub fn router<S: Submitter>(state: ApiState<S>) -> Router {
    let limit = body_limit(&state.config);
    let throttle = Arc::new(throttle::KeyThrottle::new(
        state.config.http.auth_max_failures,
        state.config.http.auth_failure_window,
    ));
    Router::new()
        .route("/healthz", get(health))
        .route(
            "/api/v1/messages",
            get(read::search::<S>).post(send::send::<S>),
        )
        .route("/api/v1/messages/{id}", get(read::message::<S>))
        .route("/api/v1/events", get(events::events::<S>))
        .route("/api/v1/stats", get(stats::stats::<S>))
        .route(
            "/api/v1/suppressions",
            get(suppressions::list::<S>)
                .post(suppressions::add::<S>)
                .layer(DefaultBodyLimit::max(suppressions::BODY_LIMIT)),
        )
        .route(
            "/api/v1/suppressions/{address}",
            get(suppressions::one::<S>).delete(suppressions::remove::<S>),
        )
        .route(
            "/api/v1/webhooks",
            get(webhooks::list::<S>)
                .post(webhooks::add::<S>)
                .delete(webhooks::remove_matching::<S>)
                .layer(DefaultBodyLimit::max(webhooks::BODY_LIMIT)),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::one::<S>).delete(webhooks::remove::<S>),
        )
        .route("/t/o/{token}", get(tracking::open::<S>))
        .route("/t/c/{token}", get(tracking::click::<S>))
        .route(
            "/u/{token}",
            get(unsubscribe::confirm::<S>)
                .post(unsubscribe::one_click::<S>)
                .layer(DefaultBodyLimit::max(unsubscribe::BODY_LIMIT)),
        )
        .merge(ui::routes::<S>(&state.config).layer(DefaultBodyLimit::max(ui::FORM_LIMIT)))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(log::log_request))
        .layer(axum::Extension(throttle))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for the requests in progress to finish (a `POST` being
/// made durable is answered, not cut off). Requests carry their peer's
/// address (`ConnectInfo`) for the throttle of wrong keys.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// `GET /healthz`: the process answers. No key needed, nothing checked.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}
