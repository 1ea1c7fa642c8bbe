//! `GET /ui/queue`: what waits in this node's queue for the account (each
//! node has its own spool and queue): per destination domain how many
//! recipients wait, the last remote reply and the next attempt; then the
//! messages themselves, oldest first. `POST /ui/queue/retry` makes one
//! message (or all of the account's) due now, `POST /ui/queue/delete`
//! removes one (its waiting recipients get `deleted` events). The message
//! page offers the same two actions while its message is queued here.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::UiError;
use super::page::{Nav, render, size, when_ms};
use super::scope::{AccountQuery, Scope, WriteForm, checked_form, scope};
use super::session::Signed;
use crate::ApiState;
use crate::submit::{QueuedMessage, Submitter};

/// Messages listed on the page (the summary counts them all).
const MAX_LISTED: usize = 200;

/// One destination domain's waiting recipients.
pub(crate) struct Destination {
    pub(crate) domain: String,
    pub(crate) waiting: usize,
    pub(crate) next_attempt: String,
    pub(crate) last_reply: String,
}

/// One queued message as listed.
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) received: String,
    pub(crate) sender: String,
    pub(crate) waiting: String,
    pub(crate) attempts: u32,
    pub(crate) next_attempt: String,
    pub(crate) last_reply: String,
    pub(crate) size: String,
}

#[derive(Template)]
#[template(path = "ui/queue.html")]
struct QueuePage {
    nav: Nav,
    destinations: Vec<Destination>,
    rows: Vec<Row>,
    total: usize,
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    account: Option<String>,
    /// A message id, or `all` (retry only).
    #[serde(default)]
    id: String,
    /// Where to go after: `message` (its page) or the queue.
    #[serde(default)]
    back: String,
}

/// The pending recipients of a message.
fn pending(message: &QueuedMessage) -> impl Iterator<Item = &crate::submit::QueuedRecipient> {
    message.recipients.iter().filter(|r| r.state == "pending")
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or(address, |(_, d)| d)
        .to_ascii_lowercase()
}

/// The account's messages in this node's queue, oldest first.
pub(crate) async fn account_queue<S: Submitter>(
    state: &ApiState<S>,
    scope: &Scope,
) -> Vec<QueuedMessage> {
    let mut queued: Vec<QueuedMessage> = state
        .submitter
        .queued()
        .await
        .into_iter()
        .filter(|m| m.account == scope.account.name)
        .collect();
    queued.sort_by_key(|m| m.received_at_ms);
    queued
}

/// `GET /ui/queue`.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    query: Result<Query<AccountQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(query) = query.unwrap_or_default();
    let scope = scope(&state.store, &signed, query.account.as_deref()).await?;
    let queued = account_queue(&state, &scope).await;
    // Per domain: waiting, the earliest next attempt, the reply of the
    // recipient tried most.
    let mut domains: BTreeMap<String, (usize, Option<u64>, u32, String)> = BTreeMap::new();
    for message in &queued {
        for rcpt in pending(message) {
            let entry = domains.entry(domain_of(&rcpt.address)).or_default();
            entry.0 += 1;
            if let Some(next) = rcpt.next_attempt_ms {
                entry.1 = Some(entry.1.map_or(next, |n| n.min(next)));
            }
            if let Some(reply) = &rcpt.last_reply
                && rcpt.attempts >= entry.2
            {
                entry.2 = rcpt.attempts;
                entry.3 = reply.clone();
            }
        }
    }
    let mut destinations: Vec<Destination> = domains
        .into_iter()
        .map(|(domain, (waiting, next, _, reply))| Destination {
            domain,
            waiting,
            next_attempt: next.map_or_else(String::new, |ms| when_ms(ms as i64)),
            last_reply: reply,
        })
        .collect();
    destinations.sort_by(|a, b| b.waiting.cmp(&a.waiting).then(a.domain.cmp(&b.domain)));
    let rows = queued
        .iter()
        .take(MAX_LISTED)
        .map(|m| {
            let waiting: Vec<&str> = pending(m).map(|r| r.address.as_str()).collect();
            let shown = match waiting.len() {
                0..=3 => waiting.join(", "),
                n => format!("{} and {} more", waiting[..3].join(", "), n - 3),
            };
            let next = pending(m).filter_map(|r| r.next_attempt_ms).min();
            let last = pending(m)
                .max_by_key(|r| r.attempts)
                .and_then(|r| r.last_reply.clone());
            Row {
                id: m.id.clone(),
                received: when_ms(m.received_at_ms as i64),
                sender: if m.sender.is_empty() {
                    "<>".to_owned()
                } else {
                    m.sender.clone()
                },
                waiting: shown,
                attempts: pending(m).map(|r| r.attempts).max().unwrap_or(0),
                next_attempt: next.map_or_else(String::new, |ms| when_ms(ms as i64)),
                last_reply: last.unwrap_or_default(),
                size: size(m.size),
            }
        })
        .collect();
    let page = QueuePage {
        nav: Nav::new(&signed, &scope, "queue"),
        destinations,
        rows,
        total: queued.len(),
    };
    render(StatusCode::OK, &page)
}

/// Whether message `id` is the account's and in this node's queue: one
/// lookup in the queue, not a listing of it.
pub(crate) async fn owned<S: Submitter>(state: &ApiState<S>, scope: &Scope, id: &str) -> bool {
    state
        .submitter
        .queued_message(id)
        .await
        .is_some_and(|m| m.account == scope.account.name)
}

fn after(nav: &Nav, form: &ActionForm) -> Response {
    let target = if form.back == "message" {
        format!("/ui/messages/{}", form.id)
    } else {
        "/ui/queue".to_owned()
    };
    Redirect::to(&nav.href(&target)).into_response()
}

/// `POST /ui/queue/retry`.
pub(crate) async fn retry<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (form, scope) = checked_form(&state.store, &signed, form, "act on the queue").await?;
    let ids: Vec<String> = if form.id == "all" {
        account_queue(&state, &scope)
            .await
            .into_iter()
            .map(|m| m.id)
            .collect()
    } else if owned(&state, &scope, &form.id).await {
        vec![form.id.clone()]
    } else {
        return Err(UiError::NotFound);
    };
    for id in &ids {
        state.submitter.retry_queued(id).await;
    }
    tracing::info!(user = %signed.session.user.email, account = %scope.account.name, messages = ids.len(), "dashboard: queue retry");
    Ok(after(&Nav::new(&signed, &scope, "queue"), &form))
}

/// `POST /ui/queue/delete`.
pub(crate) async fn delete<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (form, scope) = checked_form(&state.store, &signed, form, "act on the queue").await?;
    if !owned(&state, &scope, &form.id).await || !state.submitter.delete_queued(&form.id).await {
        return Err(UiError::NotFound);
    }
    tracing::info!(user = %signed.session.user.email, account = %scope.account.name, id = %form.id, "dashboard: queued message deleted");
    Ok(after(&Nav::new(&signed, &scope, "queue"), &form))
}

impl WriteForm for ActionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}
