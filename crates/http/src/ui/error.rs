//! Failures of the dashboard, answered as pages: a request without a session
//! goes to the login page, a refused one gets a short page saying why, with
//! the right status. Internal failures are logged here and shown only as
//! "something went wrong".

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

/// Seconds a browser is asked to wait after a `503` or `429`.
const RETRY_AFTER_SECONDS: u64 = 60;

/// A dashboard request that cannot be answered with its page.
#[derive(Debug)]
pub(crate) enum UiError {
    /// No live session: to the login page, then back to `next`.
    SignIn { next: String },
    /// The role may not do this (a viewer posting a form).
    Forbidden(&'static str),
    /// A form without this session's CSRF token.
    BadToken,
    /// No such page or record, or another account's.
    NotFound,
    /// An admin signed in before any account exists.
    NoAccounts,
    /// The database is unreachable.
    Unavailable,
    /// Too many wrong logins; seconds to wait.
    TooMany { retry_after: u64 },
    /// Anything else; already logged.
    Internal,
}

impl UiError {
    /// Logs an internal failure and returns the error that shows none of it.
    pub(crate) fn internal(doing: &str, error: impl std::fmt::Display) -> UiError {
        tracing::error!(%error, "dashboard: {doing} failed");
        UiError::Internal
    }

    /// A store failure: unreachable (503) or internal.
    pub(crate) fn store(doing: &str, error: carteiro_store::StoreError) -> UiError {
        if error.is_transient() {
            tracing::warn!(%error, "dashboard: {doing} failed: the store is unreachable");
            UiError::Unavailable
        } else {
            UiError::internal(doing, error)
        }
    }
}

/// The page of a failure.
#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A failure page with its status.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    match (ErrorPage { title, message }).render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            super::headers::secure_headers(&mut response);
            response
        }
        Err(error) => {
            tracing::error!(%error, "dashboard: rendering the error page failed");
            (status, message.to_owned()).into_response()
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::SignIn { next } => {
                let target = format!("/ui/login?next={}", super::url::query_escape(&next));
                Redirect::to(&target).into_response()
            }
            UiError::Forbidden(what) => error_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                &format!("Your role may not {what}."),
            ),
            UiError::BadToken => error_page(
                StatusCode::FORBIDDEN,
                "Form refused",
                "The form was not sent from this dashboard's page, or your session has \
                 changed since it was shown. Go back, reload the page and try again.",
            ),
            UiError::NotFound => error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page, or it belongs to another account.",
            ),
            UiError::NoAccounts => error_page(
                StatusCode::NOT_FOUND,
                "No accounts yet",
                "There is no account to show. Add one with `carteiro account add NAME`; \
                 mail relayed from trusted networks goes to the account named default.",
            ),
            UiError::Unavailable => with_retry_after(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unreachable",
                "The database is unreachable; mail keeps flowing. Try again in a minute.",
            )),
            UiError::TooMany { retry_after } => {
                let mut response = error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    &format!("Too many wrong logins. Try again in {retry_after} seconds."),
                );
                if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            UiError::Internal => error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not show this page; the details are in its log.",
            ),
        }
    }
}

fn with_retry_after(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

/// Any other path under `/ui/`.
pub(crate) async fn not_found() -> UiError {
    UiError::NotFound
}
