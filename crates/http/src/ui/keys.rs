//! `GET /ui/keys`: the account's API keys (prefix, created, last used);
//! `POST /ui/keys` creates one and shows it once; `POST /ui/keys/revoke`
//! revokes one of this account's keys. Viewers see the list only; their
//! posts are refused with `403`.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::UiError;
use super::page::{Nav, render, when};
use super::scope::{AccountQuery, Scope, WriteForm, checked_form, scope};
use super::session::Signed;
use crate::ApiState;
use crate::submit::Submitter;

/// One key as listed.
pub(crate) struct KeyRow {
    pub(crate) prefix: String,
    pub(crate) created: String,
    pub(crate) last_used: String,
}

#[derive(Template)]
#[template(path = "ui/keys.html")]
struct KeysPage {
    nav: Nav,
    keys: Vec<KeyRow>,
    /// A key just created: shown on this page only.
    created: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    #[serde(default)]
    csrf: String,
    account: Option<String>,
    #[serde(default)]
    prefix: String,
}

async fn page<S: Submitter>(
    state: &ApiState<S>,
    signed: &Signed,
    scope: &Scope,
    created: Option<String>,
) -> Result<KeysPage, UiError> {
    let keys = state
        .store
        .list_api_keys(&scope.account.name)
        .await
        .map_err(|e| UiError::store("listing api keys", e))?
        .into_iter()
        .map(|key| KeyRow {
            prefix: key.prefix,
            created: when(key.created_at),
            last_used: key.last_used_at.map_or_else(|| "never".to_owned(), when),
        })
        .collect();
    Ok(KeysPage {
        nav: Nav::new(signed, scope, "keys"),
        keys,
        created,
    })
}

/// `GET /ui/keys`.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    query: Result<Query<AccountQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(query) = query.unwrap_or_default();
    let scope = scope(&state.store, &signed, query.account.as_deref()).await?;
    let page = page(&state, &signed, &scope, None).await?;
    render(StatusCode::OK, &page)
}

/// `POST /ui/keys`: a new key, shown once.
pub(crate) async fn create<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<KeyForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (_, scope) = checked_form(&state.store, &signed, form, "create API keys").await?;
    let (key, secret) = state
        .store
        .create_api_key(&scope.account.name)
        .await
        .map_err(|e| UiError::store("creating an api key", e))?;
    tracing::info!(user = %signed.session.user.email, account = %scope.account.name, prefix = %key.prefix, "dashboard: api key created");
    let page = page(&state, &signed, &scope, Some(secret)).await?;
    render(StatusCode::CREATED, &page)
}

/// `POST /ui/keys/revoke`: revokes one of the account's keys.
pub(crate) async fn revoke<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<KeyForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (form, scope) = checked_form(&state.store, &signed, form, "revoke API keys").await?;
    let owned = state
        .store
        .list_api_keys(&scope.account.name)
        .await
        .map_err(|e| UiError::store("listing api keys", e))?
        .iter()
        .any(|key| key.prefix == form.prefix);
    if !owned {
        return Err(UiError::NotFound);
    }
    state
        .store
        .revoke_api_key(&form.prefix)
        .await
        .map_err(|e| UiError::store("revoking an api key", e))?;
    tracing::info!(user = %signed.session.user.email, account = %scope.account.name, prefix = %form.prefix, "dashboard: api key revoked");
    let nav = Nav::new(&signed, &scope, "keys");
    Ok(Redirect::to(&nav.href("/ui/keys")).into_response())
}

impl WriteForm for KeyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}
