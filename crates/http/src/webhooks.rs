//! The caller's webhook endpoints: `GET /api/v1/webhooks` lists them,
//! `POST` with `{"url", "events": [..]}` makes one (`201`, with its signing
//! secret, shown this once), `GET /api/v1/webhooks/{id}` shows one and
//! `DELETE /api/v1/webhooks/{id}` removes it (so does `DELETE
//! /api/v1/webhooks` with `{"id"}` or `{"url"}`). Another account's id
//! answers 404 like a missing one.
//!
//! Each endpoint is listed with its delivery state: `status` (`active`, or
//! `failing` after several failed attempts in a row; it is still retried),
//! the last error and success, and `backlog`, the events waiting for it
//! (counted up to [`BACKLOG_CAP`]). This module keeps the list; sending is
//! the binary's dispatcher's job.
//!
//! A new endpoint's URL must lead to addresses `webhooks.allow_private_targets`
//! allows (public ones by default; `target.rs`), so that an API user cannot
//! aim Carteiro at the services of its own host or network.

mod target;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use carteiro_store::{EventKind, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use carteiro_net::TargetPolicy;

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::submit::Submitter;
use crate::wire::format_timestamp;

/// The fields of `POST /api/v1/webhooks`.
const FIELDS: [&str; 2] = ["url", "events"];

/// Longest URL accepted, in bytes.
const MAX_URL_BYTES: usize = 2000;

/// Most endpoints per account: each one is served by its own task.
pub(crate) const MAX_WEBHOOKS: usize = 20;

/// `backlog` counts no further than this.
pub(crate) const BACKLOG_CAP: u32 = 10_000;

/// Largest request body of `POST /api/v1/webhooks`.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

/// A webhook endpoint on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiWebhook {
    /// The endpoint's id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// The event types sent; empty for every type.
    pub events: Vec<EventKind>,
    /// The signing secret: only in the answer to the `POST` that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When it was made, RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// `active` or `failing`.
    pub status: String,
    /// What the last failed attempt met.
    pub last_error: Option<String>,
    /// When an attempt last failed.
    pub last_error_at: Option<String>,
    /// When an attempt last succeeded.
    pub last_success_at: Option<String>,
    /// Events waiting to be sent (counted up to 10 000).
    pub backlog: u64,
    /// Events given up on after the endpoint kept failing for 3 days.
    pub skipped_events: u64,
}

impl ApiWebhook {
    fn new(hook: &Webhook, backlog: u64) -> ApiWebhook {
        ApiWebhook {
            id: hook.id,
            url: hook.url.clone(),
            events: hook.events.clone(),
            secret: None,
            created_at: format_timestamp(hook.created_at_ms),
            status: hook.status().as_str().to_owned(),
            last_error: hook.last_error.clone(),
            last_error_at: hook.last_error_at_ms.map(format_timestamp),
            last_success_at: hook.last_success_at_ms.map(format_timestamp),
            backlog,
            skipped_events: hook.skipped_events,
        }
    }
}

/// An endpoint with its backlog counted up to the newest event.
pub(crate) async fn shown<S: Submitter>(
    state: &ApiState<S>,
    hook: &Webhook,
    newest: i64,
) -> Result<ApiWebhook, ApiError> {
    let backlog = state
        .store
        .count_webhook_events(
            hook.account_id,
            &hook.events,
            hook.last_event_id,
            newest,
            BACKLOG_CAP,
        )
        .await
        .map_err(|error| ApiError::store("counting a webhook backlog", error))?;
    Ok(ApiWebhook::new(hook, backlog))
}

pub(crate) async fn newest_event<S: Submitter>(state: &ApiState<S>) -> Result<i64, ApiError> {
    state
        .store
        .newest_event_id()
        .await
        .map_err(|error| ApiError::store("reading the newest event", error))
}

/// `GET /api/v1/webhooks`: `{"webhooks": [...]}`, oldest first.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
) -> Result<Json<Value>, ApiError> {
    let hooks = state
        .store
        .webhooks(account.id)
        .await
        .map_err(|error| ApiError::store("listing webhooks", error))?;
    let newest = newest_event(&state).await?;
    let mut shown_hooks = Vec::with_capacity(hooks.len());
    for hook in &hooks {
        shown_hooks.push(shown(&state, hook, newest).await?);
    }
    Ok(Json(json!({"webhooks": shown_hooks})))
}

/// The id in the path; anything but a number names no endpoint.
fn path_id(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    id.ok()
        .and_then(|Path(id)| id.parse::<i64>().ok())
        .ok_or(ApiError::WebhookNotFound)
}

/// `GET /api/v1/webhooks/{id}`: the endpoint, or 404.
pub(crate) async fn one<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ApiWebhook>, ApiError> {
    let id = path_id(id)?;
    let hook = state
        .store
        .webhook(account.id, id)
        .await
        .map_err(|error| ApiError::store("reading a webhook", error))?
        .ok_or(ApiError::WebhookNotFound)?;
    let newest = newest_event(&state).await?;
    Ok(Json(shown(&state, &hook, newest).await?))
}

/// `DELETE /api/v1/webhooks/{id}`: `{"deleted": true}`, or 404. Events not
/// sent yet are dropped with it.
pub(crate) async fn remove<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let deleted = state
        .store
        .delete_webhook(account.id, id)
        .await
        .map_err(|error| ApiError::store("deleting a webhook", error))?;
    if !deleted {
        return Err(ApiError::WebhookNotFound);
    }
    Ok(Json(json!({"deleted": true})))
}

/// `DELETE /api/v1/webhooks` with `{"id": N}` or `{"url": "..."}`: removes
/// that endpoint, or every endpoint of the account with that URL;
/// `{"deleted": true, "ids": [...]}`, or 404 when none matched. The same as
/// `DELETE /api/v1/webhooks/{id}`, for clients that name the endpoint in
/// the body.
pub(crate) async fn remove_matching<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let target = DeleteTarget::check(&body)?;
    let hooks = state
        .store
        .webhooks(account.id)
        .await
        .map_err(|error| ApiError::store("listing webhooks", error))?;
    let mut deleted = Vec::new();
    for hook in hooks.iter().filter(|hook| target.matches(hook)) {
        let gone = state
            .store
            .delete_webhook(account.id, hook.id)
            .await
            .map_err(|error| ApiError::store("deleting a webhook", error))?;
        if gone {
            deleted.push(hook.id);
        }
    }
    if deleted.is_empty() {
        return Err(ApiError::WebhookNotFound);
    }
    Ok(Json(json!({"deleted": true, "ids": deleted})))
}

/// Which endpoints a `DELETE /api/v1/webhooks` names.
#[derive(Debug, PartialEq)]
enum DeleteTarget<'a> {
    Id(i64),
    Url(&'a str),
}

impl<'a> DeleteTarget<'a> {
    /// Exactly one of `id` (a number or a numeric string) and `url`.
    fn check(body: &'a Map<String, Value>) -> Result<DeleteTarget<'a>, ApiError> {
        const DELETE_FIELDS: [&str; 2] = ["id", "url"];
        if let Some(field) = body
            .keys()
            .find(|key| !DELETE_FIELDS.contains(&key.as_str()))
        {
            return Err(ApiError::UnknownField {
                field: field.clone(),
                message: "name the webhook by \"id\" or \"url\"".to_owned(),
            });
        }
        let id = match body.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_i64()
                    .ok_or_else(|| ApiError::field("id", "not a webhook id"))?,
            ),
            Some(Value::String(text)) => Some(
                text.parse::<i64>()
                    .map_err(|_| ApiError::field("id", "not a webhook id"))?,
            ),
            Some(_) => return Err(ApiError::field("id", "must be a number")),
        };
        let url = match body.get("url") {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => Some(url.as_str()),
            Some(_) => return Err(ApiError::field("url", "must be a string")),
        };
        match (id, url) {
            (Some(id), None) => Ok(DeleteTarget::Id(id)),
            (None, Some(url)) => Ok(DeleteTarget::Url(url)),
            (Some(_), Some(_)) => Err(ApiError::field("id", "give \"id\" or \"url\", not both")),
            (None, None) => Err(ApiError::field("id", "required (or \"url\")")),
        }
    }

    fn matches(&self, hook: &Webhook) -> bool {
        match self {
            DeleteTarget::Id(id) => hook.id == *id,
            DeleteTarget::Url(url) => hook.url == *url,
        }
    }
}

/// `POST /api/v1/webhooks` with `{"url", "events"}`: `201` and the
/// endpoint with its `secret`. It receives the events that happen from now
/// on. A URL leading to an address the configuration does not allow is
/// refused (`422` naming `url`).
pub(crate) async fn add<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<(StatusCode, Json<ApiWebhook>), ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let request = AddRequest::check(&body)?;
    let hook = create(&state, account.id, request.url, &request.events).await?;
    let mut shown = ApiWebhook::new(&hook, 0);
    shown.secret = Some(hook.secret.clone());
    Ok((StatusCode::CREATED, Json(shown)))
}

/// Makes an endpoint for the account after the checks every way of making
/// one shares: the URL's form, the account's limit of endpoints, and the
/// addresses the URL leads to (`webhooks.allow_private_targets`). A refusal
/// names `url`.
pub(crate) async fn create<S: Submitter>(
    state: &ApiState<S>,
    account_id: i64,
    url: &str,
    events: &[EventKind],
) -> Result<Webhook, ApiError> {
    check_url(url)?;
    let existing = state
        .store
        .webhooks(account_id)
        .await
        .map_err(|error| ApiError::store("listing webhooks", error))?;
    if existing.len() >= MAX_WEBHOOKS {
        return Err(ApiError::field(
            "url",
            format!("an account has at most {MAX_WEBHOOKS} webhooks; delete one first"),
        ));
    }
    let webhooks = &state.config.webhooks;
    let policy = TargetPolicy::new(
        webhooks.allow_private_targets.allows_all(),
        webhooks.allow_private_targets.networks(),
    );
    target::check_target(url, &policy, webhooks.timeout).await?;
    state
        .store
        .create_webhook(account_id, url, events)
        .await
        .map_err(|error| ApiError::store("creating a webhook", error))
}

/// The checked fields of a create request.
#[derive(Debug, PartialEq)]
struct AddRequest<'a> {
    url: &'a str,
    events: Vec<EventKind>,
}

impl<'a> AddRequest<'a> {
    /// Checks the body's fields, naming the first one refused. Absent and
    /// `null` are the same; absent or empty `events` means every type.
    fn check(body: &'a Map<String, Value>) -> Result<AddRequest<'a>, ApiError> {
        if let Some(field) = body.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(ApiError::UnknownField {
                field: field.clone(),
                message: format!(
                    "not a field of a webhook; expected one of: {}",
                    FIELDS.join(", ")
                ),
            });
        }
        let url = match body.get("url") {
            None | Some(Value::Null) => return Err(ApiError::field("url", "required")),
            Some(Value::String(url)) => url.as_str(),
            Some(_) => return Err(ApiError::field("url", "must be a string")),
        };
        check_url(url)?;
        let events = match body.get("events") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(names)) => {
                let mut events = Vec::new();
                for name in names {
                    let Value::String(name) = name else {
                        return Err(ApiError::field("events", "must be an array of strings"));
                    };
                    let kind = name.parse::<EventKind>().map_err(|_| {
                        ApiError::field(
                            "events",
                            format!("unknown event type {name:?}; expected: {}", kind_names()),
                        )
                    })?;
                    if !events.contains(&kind) {
                        events.push(kind);
                    }
                }
                events
            }
            Some(_) => return Err(ApiError::field("events", "must be an array of strings")),
        };
        Ok(AddRequest { url, events })
    }
}

/// An absolute `http` or `https` URL with a host, without a fragment.
fn check_url(url: &str) -> Result<(), ApiError> {
    const EXPECTED: &str = "must be an absolute http:// or https:// URL, such as \
                            \"https://hooks.example.com/carteiro\"";
    if url.len() > MAX_URL_BYTES {
        return Err(ApiError::field(
            "url",
            format!("at most {MAX_URL_BYTES} bytes"),
        ));
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::field("url", EXPECTED));
    }
    let Ok(uri) = url.parse::<Uri>() else {
        return Err(ApiError::field("url", EXPECTED));
    };
    let scheme_ok = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    let host_ok = uri.host().is_some_and(|host| !host.is_empty());
    if !scheme_ok || !host_ok {
        return Err(ApiError::field("url", EXPECTED));
    }
    Ok(())
}

/// Every event type's name, for error messages.
fn kind_names() -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The answer for a body that is not a JSON object.
fn body_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge {
                limit: BODY_LIMIT as u64,
            }
        }
        rejection => ApiError::MalformedJson(rejection.body_text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: Value) -> Result<(String, Vec<EventKind>), ApiError> {
        let Value::Object(body) = body else {
            panic!("not an object");
        };
        AddRequest::check(&body).map(|r| (r.url.to_owned(), r.events))
    }

    fn refused_field(body: Value) -> String {
        match check(body) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn urls_must_be_absolute_http_or_https() {
        for url in [
            "https://hooks.example.com/carteiro",
            "http://127.0.0.1:8080/hook?x=1",
            "HTTPS://Hooks.Example.com",
            "http://[::1]:9000/",
        ] {
            assert_eq!(check(json!({"url": url})), Ok((url.to_owned(), Vec::new())));
        }
        for url in [
            "",
            "/relative/path",
            "hooks.example.com/x",
            "ftp://hooks.example.com/",
            "mailto:a@b.c",
            "https://",
            "https:///path",
            "https://hooks.example.com/a b",
            "https://hooks.example.com/#frag",
            "javascript:alert(1)",
        ] {
            assert_eq!(refused_field(json!({"url": url})), "url", "{url:?}");
        }
        let long = format!("https://x.test/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(refused_field(json!({"url": long})), "url");
        assert_eq!(refused_field(json!({})), "url");
        assert_eq!(refused_field(json!({"url": 5})), "url");
    }

    #[test]
    fn event_types_are_checked_and_deduplicated() {
        assert_eq!(
            check(
                json!({"url": "https://x.test/", "events": ["delivered", "bounced", "delivered"]})
            ),
            Ok((
                "https://x.test/".to_owned(),
                vec![EventKind::Delivered, EventKind::Bounced]
            ))
        );
        assert_eq!(
            check(json!({"url": "https://x.test/", "events": []})).map(|r| r.1),
            Ok(Vec::new())
        );
        assert_eq!(
            check(json!({"url": "https://x.test/", "events": null})).map(|r| r.1),
            Ok(Vec::new())
        );
        for events in [json!(["delivered", "sent"]), json!("delivered"), json!([1])] {
            assert_eq!(
                refused_field(json!({"url": "https://x.test/", "events": events})),
                "events"
            );
        }
        let unknown = check(json!({"url": "https://x.test/", "event": ["delivered"]}));
        assert!(
            matches!(unknown, Err(ApiError::UnknownField { ref field, .. }) if field == "event"),
            "{unknown:?}"
        );
    }
}
