//! `GET /ui/suppressions`: the account's suppression list by address, 50 a
//! page, filtered by reason; `?address=` shows one address: whether it is on
//! the list, why, and its whole audit history. `POST /ui/suppressions` adds an
//! address (reason `manual`, with a note), `POST /ui/suppressions/remove`
//! takes one off; both are audited with the actor `ui:<user's email>`.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carteiro_store::{Store, StoreError, Suppression, SuppressionReason};
use serde::Deserialize;

use super::error::UiError;
use super::page::{Nav, render, when_ms};
use super::scope::{Scope, WriteForm, checked_form, scope};
use super::session::Signed;
use super::url::query_escape;
use crate::ApiState;
use crate::submit::Submitter;

/// Entries per page.
const PAGE_SIZE: u32 = 50;

/// Audit rows shown for one address.
const HISTORY_LIMIT: u32 = 200;

/// Longest note, in characters (as the API's `detail`).
const MAX_NOTE_CHARS: usize = 1000;

/// One entry as listed.
pub(crate) struct Entry {
    pub(crate) address: String,
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
    pub(crate) source: String,
    pub(crate) since: String,
}

/// One audit row.
pub(crate) struct Change {
    pub(crate) when: String,
    pub(crate) added: bool,
    pub(crate) reason: &'static str,
    pub(crate) actor: String,
}

#[derive(Template)]
#[template(path = "ui/suppressions.html")]
struct SuppressionsPage {
    nav: Nav,
    reasons: Vec<&'static str>,
    reason: String,
    /// The address looked up, if one was.
    address: String,
    /// Its entry, when it is on the list.
    found: Option<Entry>,
    history: Vec<Change>,
    entries: Vec<Entry>,
    next: Option<String>,
    error: Option<String>,
    /// The add form's values after a refused add.
    new_address: String,
    new_note: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    account: Option<String>,
    address: Option<String>,
    reason: Option<String>,
    after: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    #[serde(default)]
    csrf: String,
    account: Option<String>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    note: String,
}

fn entry(s: &Suppression) -> Entry {
    Entry {
        address: s.address.clone(),
        reason: s.reason.as_str(),
        detail: s.detail.clone().unwrap_or_default(),
        source: s.source_message_id.clone().unwrap_or_default(),
        since: when_ms(s.created_at_ms),
    }
}

fn store_error(doing: &str) -> impl FnOnce(StoreError) -> UiError + '_ {
    move |e| UiError::store(doing, e)
}

/// The page for `query` on `scope`, with `error` and the add form's values.
async fn page(
    store: &Store,
    signed: &Signed,
    scope: &Scope,
    query: &ListQuery,
    error: Option<String>,
    new: (&str, &str),
) -> Result<SuppressionsPage, UiError> {
    let mut page = SuppressionsPage {
        nav: Nav::new(signed, scope, "suppressions"),
        reasons: SuppressionReason::ALL.iter().map(|r| r.as_str()).collect(),
        reason: String::new(),
        address: String::new(),
        found: None,
        history: Vec::new(),
        entries: Vec::new(),
        next: None,
        error,
        new_address: new.0.to_owned(),
        new_note: new.1.to_owned(),
    };
    let account = scope.account.id;
    if let Some(address) = query
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        page.address = address.to_owned();
        page.found = store
            .suppression(account, address)
            .await
            .map_err(store_error("reading a suppression"))?
            .as_ref()
            .map(entry);
        page.history = store
            .suppression_history(account, Some(address), 0, HISTORY_LIMIT)
            .await
            .map_err(store_error("reading suppression history"))?
            .into_iter()
            .map(|c| Change {
                when: when_ms(c.at_ms),
                added: c.added,
                reason: c.reason.map_or("", |r| r.as_str()),
                actor: c.actor,
            })
            .collect();
        return Ok(page);
    }
    let reason = match query.reason.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(text) => match text.parse::<SuppressionReason>() {
            Ok(reason) => Some(reason),
            Err(_) => {
                page.error = Some(format!(
                    "Unknown reason {text:?}: choose one of {}.",
                    page.reasons.join(", ")
                ));
                return Ok(page);
            }
        },
    };
    page.reason = reason.map_or("", |r| r.as_str()).to_owned();
    let mut entries = store
        .list_suppressions(account, reason, query.after.as_deref(), PAGE_SIZE + 1)
        .await
        .map_err(store_error("listing suppressions"))?;
    if entries.len() > PAGE_SIZE as usize {
        entries.truncate(PAGE_SIZE as usize);
        if let Some(last) = entries.last() {
            page.next = Some(page.nav.href(&format!(
                "/ui/suppressions?reason={}&after={}",
                query_escape(&page.reason),
                query_escape(&last.address)
            )));
        }
    }
    page.entries = entries.iter().map(entry).collect();
    Ok(page)
}

/// `GET /ui/suppressions`.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(query) = query.unwrap_or_default();
    let scope = scope(&state.store, &signed, query.account.as_deref()).await?;
    let page = page(&state.store, &signed, &scope, &query, None, ("", "")).await?;
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(status, &page)
}

fn actor(signed: &Signed) -> String {
    format!("ui:{}", signed.session.user.email)
}

/// `POST /ui/suppressions`: adds an address (reason `manual`).
pub(crate) async fn add<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<ChangeForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (form, scope) =
        checked_form(&state.store, &signed, form, "change the suppression list").await?;
    let address = form.address.trim();
    let note = form.note.trim();
    let refuse = |message: String| async {
        let page = page(
            &state.store,
            &signed,
            &scope,
            &ListQuery::default(),
            Some(message),
            (address, note),
        )
        .await?;
        render(StatusCode::BAD_REQUEST, &page)
    };
    if note.chars().count() > MAX_NOTE_CHARS {
        return refuse(format!(
            "The note is longer than {MAX_NOTE_CHARS} characters."
        ))
        .await;
    }
    let added = state
        .store
        .add_suppression(
            scope.account.id,
            address,
            SuppressionReason::Manual,
            None,
            (!note.is_empty()).then_some(note),
            &actor(&signed),
        )
        .await;
    match added {
        Ok(_) => state.submitter.suppressions_changed().await,
        Err(StoreError::InvalidAddress(_)) => {
            return refuse(format!("{address:?} is not an email address.")).await;
        }
        Err(e) => return Err(UiError::store("adding a suppression", e)),
    }
    let nav = Nav::new(&signed, &scope, "suppressions");
    let target = format!("/ui/suppressions?address={}", query_escape(address));
    Ok(Redirect::to(&nav.href(&target)).into_response())
}

/// `POST /ui/suppressions/remove`: takes an address off the list.
pub(crate) async fn remove<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<ChangeForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (form, scope) =
        checked_form(&state.store, &signed, form, "change the suppression list").await?;
    let removed = state
        .store
        .remove_suppression(scope.account.id, &form.address, &actor(&signed))
        .await
        .map_err(store_error("removing a suppression"))?;
    if !removed {
        return Err(UiError::NotFound);
    }
    state.submitter.suppressions_changed().await;
    let nav = Nav::new(&signed, &scope, "suppressions");
    let target = format!(
        "/ui/suppressions?address={}",
        query_escape(form.address.trim())
    );
    Ok(Redirect::to(&nav.href(&target)).into_response())
}

impl WriteForm for ChangeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}
