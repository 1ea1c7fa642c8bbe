//! `GET /ui/webhooks`: the account's webhook endpoints with their state
//! (ok or failing, the last error, the backlog of events waiting);
//! `POST /ui/webhooks` makes one (its signing secret shown once) with the
//! API's checks (`webhooks::create`); `POST /ui/webhooks/delete` removes one.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carteiro_store::EventKind;

use super::error::UiError;
use super::page::{Nav, render, when_ms};
use super::scope::{AccountQuery, Scope, checked_form, scope};
use super::session::Signed;
use crate::ApiState;
use crate::error::ApiError;
use crate::submit::Submitter;
use crate::webhooks::{create, newest_event, shown};

/// One endpoint as listed.
pub(crate) struct HookRow {
    pub(crate) id: i64,
    pub(crate) url: String,
    pub(crate) events: String,
    /// `active` or `failing` (a CSS class too).
    pub(crate) status: String,
    pub(crate) last_error: String,
    pub(crate) last_error_at: String,
    pub(crate) last_success_at: String,
    pub(crate) backlog: u64,
    pub(crate) skipped: u64,
}

#[derive(Template)]
#[template(path = "ui/webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    hooks: Vec<HookRow>,
    kinds: Vec<&'static str>,
    /// An endpoint just made: (url, signing secret).
    created: Option<(String, String)>,
    /// The outcome of a test event: (ok, text).
    tested: Option<(bool, String)>,
    error: Option<String>,
    url: String,
}

async fn page<S: Submitter>(
    state: &ApiState<S>,
    signed: &Signed,
    scope: &Scope,
    created: Option<(String, String)>,
    error: Option<String>,
    url: &str,
) -> Result<WebhooksPage, UiError> {
    let hooks = state
        .store
        .webhooks(scope.account.id)
        .await
        .map_err(|e| UiError::store("listing webhooks", e))?;
    let newest = newest_event(state).await.map_err(api_error)?;
    let mut rows = Vec::with_capacity(hooks.len());
    for hook in &hooks {
        let wire = shown(state, hook, newest).await.map_err(api_error)?;
        rows.push(HookRow {
            id: hook.id,
            url: hook.url.clone(),
            events: if hook.events.is_empty() {
                "every event".to_owned()
            } else {
                hook.events
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            status: wire.status,
            last_error: hook.last_error.clone().unwrap_or_default(),
            last_error_at: hook.last_error_at_ms.map(when_ms).unwrap_or_default(),
            last_success_at: hook
                .last_success_at_ms
                .map_or_else(|| "never".to_owned(), when_ms),
            backlog: wire.backlog,
            skipped: hook.skipped_events,
        });
    }
    Ok(WebhooksPage {
        nav: Nav::new(signed, scope, "webhooks"),
        hooks: rows,
        kinds: EventKind::ALL.iter().map(|k| k.as_str()).collect(),
        created,
        tested: None,
        error,
        url: url.to_owned(),
    })
}

/// A failure of the API's shared code, as the dashboard shows it.
fn api_error(error: ApiError) -> UiError {
    match error {
        ApiError::Unavailable(_) => UiError::Unavailable,
        other => UiError::internal("reading webhooks", format!("{other:?}")),
    }
}

/// `GET /ui/webhooks`.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    query: Result<Query<AccountQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(query) = query.unwrap_or_default();
    let scope = scope(&state.store, &signed, query.account.as_deref()).await?;
    let page = page(&state, &signed, &scope, None, None, "").await?;
    render(StatusCode::OK, &page)
}

/// The fields of the forms, as pairs: `events` repeats (one per checkbox).
/// `POST /ui/webhooks`: makes an endpoint.
pub(crate) async fn add<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, UiError> {
    let (pairs, scope) = checked_form(&state.store, &signed, form, "change webhooks").await?;
    let url = pairs
        .iter()
        .find(|(n, _)| n == "url")
        .map_or("", |(_, v)| v.trim());
    let mut events = Vec::new();
    for (_, name) in pairs.iter().filter(|(n, _)| n == "events") {
        let kind = name.parse::<EventKind>().map_err(|_| UiError::BadToken)?;
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    match create(&state, scope.account.id, url, &events).await {
        Ok(hook) => {
            tracing::info!(user = %signed.session.user.email, account = %scope.account.name, id = hook.id, "dashboard: webhook created");
            let created = Some((hook.url.clone(), hook.secret.clone()));
            let page = page(&state, &signed, &scope, created, None, "").await?;
            render(StatusCode::CREATED, &page)
        }
        Err(ApiError::InvalidField { message, .. }) => {
            let error = Some(format!("URL: {message}"));
            let page = page(&state, &signed, &scope, None, error, url).await?;
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(other) => Err(api_error(other)),
    }
}

/// `POST /ui/webhooks/test`: sends one `test` event to one of the
/// account's endpoints now and shows what it answered.
pub(crate) async fn test<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, UiError> {
    let (pairs, scope) = checked_form(&state.store, &signed, form, "change webhooks").await?;
    let id = endpoint_id(&pairs)?;
    let hook = state
        .store
        .webhook(scope.account.id, id)
        .await
        .map_err(|e| UiError::store("reading a webhook", e))?
        .ok_or(UiError::NotFound)?;
    let outcome = state
        .submitter
        .send_test_webhook(&hook, &scope.account.name)
        .await;
    tracing::info!(user = %signed.session.user.email, account = %scope.account.name, id, ok = outcome.is_ok(), "dashboard: webhook test event");
    let mut page = page(&state, &signed, &scope, None, None, "").await?;
    page.tested = Some(match outcome {
        Ok(()) => (true, format!("{} took the test event.", hook.url)),
        Err(why) => (
            false,
            format!("{} did not take the test event: {why}", hook.url),
        ),
    });
    render(StatusCode::OK, &page)
}

/// `POST /ui/webhooks/delete`: removes one of the account's endpoints.
pub(crate) async fn delete<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, UiError> {
    let (pairs, scope) = checked_form(&state.store, &signed, form, "change webhooks").await?;
    let id = endpoint_id(&pairs)?;
    let deleted = state
        .store
        .delete_webhook(scope.account.id, id)
        .await
        .map_err(|e| UiError::store("deleting a webhook", e))?;
    if !deleted {
        return Err(UiError::NotFound);
    }
    tracing::info!(user = %signed.session.user.email, account = %scope.account.name, id, "dashboard: webhook deleted");
    let nav = Nav::new(&signed, &scope, "webhooks");
    Ok(Redirect::to(&nav.href("/ui/webhooks")).into_response())
}

/// The endpoint a form names (`id`); anything but a number names none.
fn endpoint_id(pairs: &[(String, String)]) -> Result<i64, UiError> {
    pairs
        .iter()
        .find(|(n, _)| n == "id")
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .ok_or(UiError::NotFound)
}
