//! Signing in and out. `GET /ui/login` shows the form (with a double-submit
//! token in the `carteiro_login` cookie), `POST /ui/login` checks the
//! password and starts a session, `POST /ui/logout` ends it.
//!
//! Wrong logins count per client IP and per email (`http.auth_max_failures`
//! within `http.auth_failure_window`, like wrong API keys); once either has
//! used up its attempts the login answers `429` without checking the password.
//! Each wrong login is logged at WARN with the IP, never with the password.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, http::request::Parts};
use serde::Deserialize;

use super::SESSION_TTL;
use super::error::UiError;
use super::page::render;
use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, Signed, cookie, same_secret, secure, set_cookie,
};
use crate::ApiState;
use crate::submit::Submitter;
use crate::throttle::Throttle;

/// How long the login form's token lives.
const LOGIN_TOKEN_SECONDS: u64 = 3600;

/// Wrong logins per client IP and per email.
pub(crate) struct LoginThrottles {
    ip: Throttle<IpAddr>,
    email: Throttle<String>,
}

impl LoginThrottles {
    pub(crate) fn new(max_failures: u32, window: Duration) -> LoginThrottles {
        LoginThrottles {
            ip: Throttle::new(max_failures, window),
            email: Throttle::new(max_failures, window),
        }
    }
}

/// The login page.
#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Where to go after signing in: a dashboard path, never another site.
fn safe_next(next: &str) -> &str {
    let inside = next.starts_with("/ui/")
        && !next.contains("//")
        && !next.contains('\\')
        && !next.starts_with("/ui/login")
        && next.bytes().all(|b| b.is_ascii_graphic());
    if inside { next } else { "/ui/" }
}

/// The login form with a fresh token in its cookie.
fn login_page(
    status: StatusCode,
    secure_cookie: bool,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Result<Response, UiError> {
    let csrf = carteiro_store::generate_password();
    let mut response = render(
        status,
        &LoginPage {
            csrf: &csrf,
            next: safe_next(next),
            email,
            error,
        },
    )?;
    set(
        &mut response,
        &set_cookie(LOGIN_COOKIE, &csrf, LOGIN_TOKEN_SECONDS, secure_cookie),
    );
    Ok(response)
}

fn set(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// `GET /ui/login`.
pub(crate) async fn form<S: Submitter>(
    State(state): State<ApiState<S>>,
    Query(query): Query<NextQuery>,
) -> Result<Response, UiError> {
    login_page(
        StatusCode::OK,
        secure(&state.config),
        query.next.as_deref().unwrap_or("/ui/"),
        "",
        None,
    )
}

/// `POST /ui/login`.
pub(crate) async fn submit<S: Submitter>(
    State(state): State<ApiState<S>>,
    Extension(throttles): Extension<Arc<LoginThrottles>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    parts: LoginCookie,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, UiError> {
    let secure_cookie = secure(&state.config);
    let Ok(Form(form)) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            secure_cookie,
            "/ui/",
            "",
            Some("The form could not be read; try again."),
        );
    };
    let expected = parts.0.unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.csrf, &expected) {
        return login_page(
            StatusCode::FORBIDDEN,
            secure_cookie,
            &form.next,
            &form.email,
            Some("The form had expired or was not sent from this page; sign in again."),
        );
    }
    let ip = connect.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(addr))| addr.ip().to_canonical(),
    );
    let email = form.email.trim().to_lowercase();
    let now = Instant::now();
    for blocked in [
        throttles.ip.check(ip, now),
        throttles.email.check(email.clone(), now),
    ] {
        if let Err(wait) = blocked {
            tracing::warn!(%ip, "dashboard login throttled");
            return Err(UiError::TooMany {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
    }
    let user = state
        .store
        .verify_user(&email, &form.password)
        .await
        .map_err(|e| UiError::store("checking a login", e))?;
    let Some(user) = user else {
        let by_ip = throttles.ip.record_failure(ip, now);
        throttles.email.record_failure(email.clone(), now);
        tracing::warn!(%ip, failures = by_ip.count, "dashboard login failed");
        return login_page(
            StatusCode::UNAUTHORIZED,
            secure_cookie,
            &form.next,
            &form.email,
            Some("Wrong email or password."),
        );
    };
    let (token, _) = state
        .store
        .create_ui_session(&user, SESSION_TTL)
        .await
        .map_err(|e| UiError::store("starting a session", e))?;
    tracing::info!(%ip, email = %user.email, "dashboard login");
    let mut response = Redirect::to(safe_next(&form.next)).into_response();
    set(
        &mut response,
        &set_cookie(SESSION_COOKIE, &token, SESSION_TTL.as_secs(), secure_cookie),
    );
    set(
        &mut response,
        &set_cookie(LOGIN_COOKIE, "", 0, secure_cookie),
    );
    Ok(response)
}

/// `POST /ui/logout`: ends the session, clears the cookie.
pub(crate) async fn logout<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Ok(Form(form)) = form else {
        return Err(UiError::BadToken);
    };
    signed.check_csrf(&form.csrf)?;
    state
        .store
        .end_ui_session(&signed.token)
        .await
        .map_err(|e| UiError::store("ending a session", e))?;
    tracing::info!(email = %signed.session.user.email, "dashboard logout");
    let mut response = Redirect::to("/ui/login").into_response();
    set(
        &mut response,
        &set_cookie(SESSION_COOKIE, "", 0, secure(&state.config)),
    );
    Ok(response)
}

/// The login form's cookie token, if the browser sent one.
pub(crate) struct LoginCookie(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LoginCookie {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<LoginCookie, Self::Rejection> {
        Ok(LoginCookie(cookie(parts, LOGIN_COOKIE).map(str::to_owned)))
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_dashboard_paths_are_followed_after_login() {
        assert_eq!(
            safe_next("/ui/messages?status=bounced"),
            "/ui/messages?status=bounced"
        );
        assert_eq!(safe_next("https://evil.example/"), "/ui/");
        assert_eq!(safe_next("//evil.example/ui/"), "/ui/");
        assert_eq!(safe_next("/ui//evil.example"), "/ui/");
        assert_eq!(safe_next("/ui/\\evil"), "/ui/");
        assert_eq!(safe_next("/ui/login"), "/ui/");
        assert_eq!(safe_next("/api/v1/messages"), "/ui/");
    }
}
