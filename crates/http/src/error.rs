//! Every failure the API answers, in one JSON shape:
//! `{"error": "<what>", "detail": <more, or null>}`.
//!
//! Handlers return [`ApiError`]; this module picks the status, the headers
//! (`WWW-Authenticate`, `Retry-After` after a `503` or `429`) and the body. Internal failures are
//! logged here and shown to the client only as "internal error".

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::submit::SubmitError;

/// Seconds a client is asked to wait after a `503`.
const RETRY_AFTER_SECONDS: &str = "60";

/// A failed request.
#[derive(Debug, PartialEq)]
pub(crate) enum ApiError {
    /// No `Authorization: Bearer` header.
    MissingKey,
    /// A key that is wrong, malformed or revoked.
    InvalidKey,
    /// The client IP sent too many wrong keys; seconds until it may try again.
    TooManyFailures { retry_after: u64 },
    /// The body is not JSON, or a value has the wrong type (serde's message,
    /// with line and column).
    MalformedJson(String),
    /// A top-level field the request does not have: refused rather than
    /// ignored, so a typo cannot silently drop data.
    UnknownField { field: String, message: String },
    /// Not `Content-Type: application/json`.
    UnsupportedMediaType,
    /// The body is over the limit (bytes).
    PayloadTooLarge { limit: u64 },
    /// A field's value is refused.
    InvalidField { field: String, message: String },
    /// A query parameter is refused.
    InvalidParameter { parameter: String, message: String },
    /// No such message for this account.
    MessageNotFound,
    /// The address is not on the account's suppression list.
    SuppressionNotFound,
    /// No such webhook endpoint for this account.
    WebhookNotFound,
    /// No such path.
    NotFound,
    /// The path exists, the method does not.
    MethodNotAllowed,
    /// The daemon cannot take the message now.
    Unavailable(String),
    /// Anything else; already logged by [`ApiError::internal`].
    Internal,
}

impl ApiError {
    /// Logs an internal failure (with what was being done) and returns the
    /// error that shows the client nothing of it.
    pub(crate) fn internal(doing: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "http api: {doing} failed");
        ApiError::Internal
    }

    /// A failed store operation: `503` (with `Retry-After`) when the store
    /// is unreachable for now (PostgreSQL down, SQLite locked), so clients
    /// retry; otherwise an internal error.
    pub(crate) fn store(doing: &str, error: carteiro_store::StoreError) -> ApiError {
        if error.is_transient() {
            tracing::warn!(%error, "http api: {doing} failed: the store is unreachable");
            ApiError::Unavailable("the database is unreachable; try again later".to_owned())
        } else {
            ApiError::internal(doing, error)
        }
    }

    /// A refused field.
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A refused query parameter.
    pub(crate) fn parameter(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingKey | ApiError::InvalidKey => StatusCode::UNAUTHORIZED,
            ApiError::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MalformedJson(_)
            | ApiError::UnknownField { .. }
            | ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MessageNotFound
            | ApiError::SuppressionNotFound
            | ApiError::WebhookNotFound
            | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` and `detail` members.
    fn body(self) -> (&'static str, Value) {
        match self {
            ApiError::MissingKey => ("missing API key", Value::Null),
            ApiError::InvalidKey => ("invalid API key", Value::Null),
            ApiError::TooManyFailures { retry_after } => (
                "too many failed authentications",
                json!({"retry_after": retry_after}),
            ),
            ApiError::MalformedJson(message) => ("malformed JSON", Value::String(message)),
            ApiError::UnknownField { field, message } => {
                ("unknown field", json!({"field": field, "message": message}))
            }
            ApiError::UnsupportedMediaType => (
                "unsupported media type",
                Value::String("send Content-Type: application/json".to_owned()),
            ),
            ApiError::PayloadTooLarge { limit } => ("payload too large", json!({"limit": limit})),
            ApiError::InvalidField { field, message } => {
                ("invalid field", json!({"field": field, "message": message}))
            }
            ApiError::InvalidParameter { parameter, message } => (
                "invalid parameter",
                json!({"parameter": parameter, "message": message}),
            ),
            ApiError::MessageNotFound => ("message not found", Value::Null),
            ApiError::SuppressionNotFound => ("address not suppressed", Value::Null),
            ApiError::WebhookNotFound => ("webhook not found", Value::Null),
            ApiError::NotFound => ("not found", Value::Null),
            ApiError::MethodNotAllowed => ("method not allowed", Value::Null),
            ApiError::Unavailable(message) => ("service unavailable", Value::String(message)),
            ApiError::Internal => ("internal error", Value::Null),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> ApiError {
        match error {
            SubmitError::Refused { field, message } => ApiError::InvalidField { field, message },
            SubmitError::Unavailable(message) => ApiError::Unavailable(message),
            SubmitError::Internal(message) => ApiError::internal("submitting a message", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let extra = match self {
            ApiError::MissingKey | ApiError::InvalidKey => {
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
            }
            ApiError::Unavailable(_) => Some((
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            )),
            ApiError::TooManyFailures { retry_after } => {
                Some((header::RETRY_AFTER, HeaderValue::from(retry_after)))
            }
            _ => None,
        };
        let (error, detail) = self.body();
        let mut response =
            (status, Json(json!({"error": error, "detail": detail}))).into_response();
        if let Some((name, value)) = extra {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The answer for a path no route has.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The answer for a method the path does not have (axum adds `Allow`).
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
