//! Dashboard sessions: the cookie, the signed-in user it names, and the CSRF
//! token every form carries.
//!
//! The session cookie (`carteiro_session`) holds a random token whose SHA-256
//! the store keeps; it is `HttpOnly`, `SameSite=Strict`, scoped to `/ui/`, and
//! `Secure` when `http.public_url` is https. Every form posts the session's
//! `csrf` token, compared in constant time; the login form, before there is
//! a session, carries the token of a short-lived `carteiro_login` cookie
//! instead (double submit).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use carteiro_store::UiSession;

use super::SESSION_TTL;
use super::error::UiError;
use crate::ApiState;
use crate::submit::Submitter;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "carteiro_session";

/// The login form's double-submit cookie.
pub(crate) const LOGIN_COOKIE: &str = "carteiro_login";

/// A request of a signed-in user.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    pub(crate) session: UiSession,
    /// The cookie's token (to end the session at logout).
    pub(crate) token: String,
}

impl Signed {
    /// Refuses a form whose `csrf` field is not this session's token.
    pub(crate) fn check_csrf(&self, sent: &str) -> Result<(), UiError> {
        if same_secret(sent, &self.session.csrf) {
            Ok(())
        } else {
            tracing::warn!(user = %self.session.user.email, "dashboard: form refused: wrong csrf token");
            Err(UiError::BadToken)
        }
    }

    /// Refuses a change by a role that may only read.
    pub(crate) fn check_write(&self, what: &'static str) -> Result<(), UiError> {
        if self.session.user.role.can_write() {
            Ok(())
        } else {
            Err(UiError::Forbidden(what))
        }
    }
}

impl<S: Submitter> FromRequestParts<ApiState<S>> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState<S>) -> Result<Signed, UiError> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/ui/", |p| p.as_str())
            .to_owned();
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Err(UiError::SignIn { next });
        };
        match state.store.ui_session(token, SESSION_TTL).await {
            Ok(Some(session)) => Ok(Signed {
                session,
                token: token.to_owned(),
            }),
            Ok(None) => Err(UiError::SignIn { next }),
            Err(error) => Err(UiError::store("reading a session", error)),
        }
    }
}

/// The value of a request cookie.
pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value for the dashboard: `value` for `max_age` seconds
/// (0 clears it).
pub(crate) fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/ui/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the dashboard is reached over https (the cookie is then `Secure`).
pub(crate) fn secure(config: &carteiro_config::Config) -> bool {
    config.http.public_url.starts_with("https://")
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_on_https() {
        let plain = set_cookie(SESSION_COOKIE, "tok", 60, false);
        assert_eq!(
            plain,
            "carteiro_session=tok; Path=/ui/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(SESSION_COOKIE, "tok", 60, true).ends_with("; Secure"));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let request = axum::http::Request::builder()
            .header(header::COOKIE, "a=1; carteiro_session=tok")
            .header(header::COOKIE, "b=2")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        assert_eq!(cookie(&parts, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&parts, "b"), Some("2"));
        assert_eq!(cookie(&parts, "carteiro"), None);
    }
}
