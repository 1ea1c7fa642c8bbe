//! One-click unsubscribe (RFC 8058) under `public_url`: the link in a bulk
//! message's `List-Unsubscribe` header.
//!
//! `POST /u/{token}` with `List-Unsubscribe=One-Click` (what mail clients
//! send from their own button) unsubscribes at once. `GET /u/{token}` only
//! shows a page with a button: link scanners and previews fetch URLs, and a
//! fetch must never unsubscribe anybody. No API key: the token itself,
//! signed by Carteiro, names the message and recipient; a forged or altered
//! token is simply not found.

use crate::ApiState;
use crate::submit::Submitter;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The largest one-click body: `List-Unsubscribe=One-Click`, perhaps as
/// multipart/form-data with its boundaries.
pub(crate) const BODY_LIMIT: usize = 4096;

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         button{{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #444;background:#fff;cursor:pointer}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>\n"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not recognised",
        "<p>This unsubscribe link is not valid. If you copied it, check that it is complete.</p>",
    )
}

/// Hides most of an address: `al***@shop.example`.
fn mask(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let shown: String = local.chars().take(2).collect();
            format!("{shown}***@{domain}")
        }
        None => "***".into(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /u/{token}`: a confirmation page; never unsubscribes by itself.
pub(crate) async fn confirm<S: Submitter>(
    State(state): State<ApiState<S>>,
    Path(token): Path<String>,
) -> Response {
    match state.submitter.unsubscribe_target(&token).await {
        Some(address) => page(
            StatusCode::OK,
            "Unsubscribe",
            &format!(
                "<p>Stop sending mail to <strong>{}</strong>?</p>\
                 <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
                 <button type=\"submit\">Unsubscribe</button></form>",
                escape(&mask(&address))
            ),
        ),
        None => not_found(),
    }
}

/// `POST /u/{token}` with `List-Unsubscribe=One-Click`: unsubscribes now.
pub(crate) async fn one_click<S: Submitter>(
    State(state): State<ApiState<S>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    // RFC 8058 §3.1: the body is `List-Unsubscribe=One-Click`, sent as
    // application/x-www-form-urlencoded or multipart/form-data.
    let text = String::from_utf8_lossy(&body);
    let one_click = text.contains("List-Unsubscribe=One-Click")
        || (text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click"));
    if !one_click {
        return page(
            StatusCode::BAD_REQUEST,
            "Unsubscribe",
            "<p>The request did not ask to unsubscribe (List-Unsubscribe=One-Click).</p>",
        );
    }
    match state.submitter.unsubscribe(&token).await {
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unsubscribe",
            "<p>Your request could not be recorded just now. Please try again in a few minutes.</p>",
        ),
        Ok(Some(address)) => page(
            StatusCode::OK,
            "Unsubscribed",
            &format!(
                "<p><strong>{}</strong> will get no more of this mail.</p>",
                escape(&mask(&address))
            ),
        ),
        Ok(None) => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_and_escaped() {
        assert_eq!(mask("alice@shop.test"), "al***@shop.test");
        assert_eq!(mask("a@b"), "a***@b");
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
