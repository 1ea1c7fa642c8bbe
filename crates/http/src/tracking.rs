//! Open and click tracking under `public_url`, no API key: the signed token
//! in the path is the credential (see `carteiro_mail::verp`).
//!
//! `GET /t/o/{token}` is the open-tracking pixel: it always answers the same
//! 1×1 transparent GIF, whatever the token, so the answer reveals nothing
//! about tokens; only a genuine one records an `opened` event.
//! `GET /t/c/{token}` is a tracked link: a genuine token records a `clicked`
//! event and answers `302` to the URL it carries (covered by its MAC); a
//! forged or altered one answers `404` and never redirects anywhere.
//! Neither answer may be cached, so that every view and click reaches us.

use crate::ApiState;
use crate::submit::Submitter;
use crate::unsubscribe::page;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A 1×1 transparent GIF (GIF89a, one palette entry, transparency on).
pub(crate) const PIXEL_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\
    !\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// The longest user agent recorded, in bytes.
const MAX_USER_AGENT: usize = 512;

/// The client's `User-Agent`, cut to [`MAX_USER_AGENT`].
fn user_agent(headers: &HeaderMap) -> Option<String> {
    let text = String::from_utf8_lossy(headers.get(header::USER_AGENT)?.as_bytes()).into_owned();
    let mut end = text.len().min(MAX_USER_AGENT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

/// `GET /t/o/{token}`: the pixel, recording an open for a genuine token.
/// `HEAD` gets the same answer and records nothing: it is a link checker or
/// a proxy looking, not a reader.
pub(crate) async fn open<S: Submitter>(
    State(state): State<ApiState<S>>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if method != Method::HEAD {
        state
            .submitter
            .opened(&token, user_agent(&headers).as_deref())
            .await;
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/gif"),
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, max-age=0",
            ),
            (header::PRAGMA, "no-cache"),
        ],
        PIXEL_GIF,
    )
        .into_response()
}

/// `GET /t/c/{token}`: a redirect to the link's URL, recording the click;
/// `404` for a token that is not genuine. `HEAD` gets the same answer and
/// records nothing (mail scanners check links that way).
pub(crate) async fn click<S: Submitter>(
    State(state): State<ApiState<S>>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let target = if method == Method::HEAD {
        state.submitter.click_target(&token)
    } else {
        state
            .submitter
            .clicked(&token, user_agent(&headers).as_deref())
            .await
    };
    let target = target.and_then(|url| HeaderValue::from_str(&url).ok());
    match target {
        Some(location) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
            ],
        )
            .into_response(),
        None => page(
            StatusCode::NOT_FOUND,
            "Link not recognised",
            "<p>This link is not valid. If you copied it, check that it is complete.</p>",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pixel_is_a_1x1_gif() {
        assert_eq!(PIXEL_GIF.len(), 43);
        assert!(PIXEL_GIF.starts_with(b"GIF89a"));
        assert_eq!(&PIXEL_GIF[6..10], &[1, 0, 1, 0], "width and height 1");
        assert!(PIXEL_GIF.ends_with(b";"));
    }

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        let mut headers = HeaderMap::new();
        assert_eq!(user_agent(&headers), None);
        let long = "é".repeat(400);
        headers.insert(header::USER_AGENT, HeaderValue::from_str(&long).unwrap());
        let cut = user_agent(&headers).unwrap();
        assert!(cut.len() <= MAX_USER_AGENT && cut.len() >= MAX_USER_AGENT - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
