//! What every dashboard page shares: the navigation bar ([`Nav`]: the user,
//! the account and an admin's switcher, the logout form), rendering a
//! template into a response with the dashboard's security headers, and the
//! small formatting helpers templates call.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;
use time::macros::format_description;

use super::error::UiError;
use super::headers::secure_headers;
use super::scope::Scope;
use super::session::Signed;
use super::url::query_escape;

/// The navigation bar of a signed-in page.
#[derive(Clone, Debug)]
pub(crate) struct Nav {
    pub(crate) email: String,
    pub(crate) role: &'static str,
    /// The account the page shows.
    pub(crate) account: String,
    /// An admin's accounts to switch to (empty for others: no switcher).
    pub(crate) accounts: Vec<String>,
    /// The session's form token, for the logout form and the page's forms.
    pub(crate) csrf: String,
    /// Which tab is lit: "overview", "messages", "queue", "suppressions", "logins",
    /// "keys", "webhooks", "users".
    pub(crate) active: &'static str,
    /// Whether the page may show forms that change things.
    pub(crate) can_write: bool,
    /// Whether the user is an admin (the Users tab).
    pub(crate) is_admin: bool,
    /// Whether links carry `?account=` (an admin's pages).
    switchable: bool,
}

impl Nav {
    pub(crate) fn new(signed: &Signed, scope: &Scope, active: &'static str) -> Nav {
        let user = &signed.session.user;
        Nav {
            email: user.email.clone(),
            role: user.role.as_str(),
            account: scope.account.name.clone(),
            accounts: scope.accounts.clone(),
            csrf: signed.session.csrf.clone(),
            active,
            can_write: user.role.can_write(),
            is_admin: user.role == carteiro_store::Role::Admin,
            switchable: !scope.accounts.is_empty(),
        }
    }

    /// `path` on this page's account (an admin's links name it).
    pub(crate) fn href(&self, path: &str) -> String {
        if self.switchable {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}account={}", query_escape(&self.account))
        } else {
            path.to_owned()
        }
    }
}

/// Renders a page with the dashboard's headers.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Result<Response, UiError> {
    let html = page
        .render()
        .map_err(|e| UiError::internal("rendering a page", e))?;
    let mut response = (status, Html(html)).into_response();
    secure_headers(&mut response);
    Ok(response)
}

/// An error message as a sentence on a page: capitalized, with a full stop.
pub(crate) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect::<String>() + "."
    })
}

/// A time for people: `2026-12-06 09:30:05 UTC`.
pub(crate) fn when_ms(ms: i64) -> String {
    let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_else(|_| ms.to_string())
}

/// A whole-seconds time for people.
pub(crate) fn when(at: OffsetDateTime) -> String {
    when_ms(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

/// A size for people: `4.2 KB`.
pub(crate) fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(
            sentence("invalid domain \"x y\""),
            "Invalid domain \"x y\"."
        );
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(when_ms(1_764_963_005_000), "2025-12-05 19:30:05 UTC");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(4_200), "4.2 KB");
        assert_eq!(size(12_300_000), "12.3 MB");
    }
}
