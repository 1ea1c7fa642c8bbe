//! `GET /ui/logins`: the account's SMTP logins (username, added);
//! `POST /ui/logins` adds one (a generated password, shown once, when none
//! is given); `POST /ui/logins/remove` removes one of this account's. Viewers
//! see the list only.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carteiro_store::{StoreError, generate_password};
use serde::Deserialize;

use super::error::UiError;
use super::page::{Nav, render, when};
use super::scope::{AccountQuery, Scope, WriteForm, checked_form, scope};
use super::session::Signed;
use crate::ApiState;
use crate::submit::Submitter;

/// One login as listed.
pub(crate) struct LoginRow {
    pub(crate) username: String,
    pub(crate) created: String,
}

#[derive(Template)]
#[template(path = "ui/logins.html")]
struct LoginsPage {
    nav: Nav,
    logins: Vec<LoginRow>,
    /// A login just added with a generated password: (username, password).
    created: Option<(String, String)>,
    error: Option<String>,
    username: String,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    account: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn page<S: Submitter>(
    state: &ApiState<S>,
    signed: &Signed,
    scope: &Scope,
    created: Option<(String, String)>,
    error: Option<String>,
    username: &str,
) -> Result<LoginsPage, UiError> {
    let logins = state
        .store
        .list_credentials(&scope.account.name)
        .await
        .map_err(|e| UiError::store("listing smtp logins", e))?
        .into_iter()
        .map(|c| LoginRow {
            username: c.username,
            created: when(c.created_at),
        })
        .collect();
    Ok(LoginsPage {
        nav: Nav::new(signed, scope, "logins"),
        logins,
        created,
        error,
        username: username.to_owned(),
    })
}

/// `GET /ui/logins`.
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

/// `POST /ui/logins`: adds a login.
pub(crate) async fn add<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (mut form, scope) = checked_form(&state.store, &signed, form, "change SMTP logins").await?;
    let generated = form.password.is_empty();
    let password = if generated {
        generate_password()
    } else {
        std::mem::take(&mut form.password)
    };
    let username = form.username.trim();
    match state
        .store
        .add_credential(&scope.account.name, username, &password)
        .await
    {
        Ok(login) => {
            tracing::info!(user = %signed.session.user.email, account = %scope.account.name, username = %login.username, "dashboard: smtp login added");
            let created = generated.then(|| (login.username.clone(), password));
            let page = page(&state, &signed, &scope, created, None, "").await?;
            render(StatusCode::CREATED, &page)
        }
        Err(
            error @ (StoreError::InvalidUsername(_)
            | StoreError::CredentialExists(_)
            | StoreError::WeakPassword),
        ) => {
            let page = page(
                &state,
                &signed,
                &scope,
                None,
                Some(error.to_string()),
                username,
            )
            .await?;
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(error) => Err(UiError::store("adding an smtp login", error)),
    }
}

/// `POST /ui/logins/remove`: removes one of the account's logins.
pub(crate) async fn remove<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (form, scope) = checked_form(&state.store, &signed, form, "change SMTP logins").await?;
    let username = form.username.trim().to_lowercase();
    let owned = state
        .store
        .list_credentials(&scope.account.name)
        .await
        .map_err(|e| UiError::store("listing smtp logins", e))?
        .iter()
        .any(|c| c.username == username);
    if !owned {
        return Err(UiError::NotFound);
    }
    state
        .store
        .remove_credential(&username)
        .await
        .map_err(|e| UiError::store("removing an smtp login", e))?;
    tracing::info!(user = %signed.session.user.email, account = %scope.account.name, %username, "dashboard: smtp login removed");
    let nav = Nav::new(&signed, &scope, "logins");
    Ok(Redirect::to(&nav.href("/ui/logins")).into_response())
}

impl WriteForm for LoginForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}
