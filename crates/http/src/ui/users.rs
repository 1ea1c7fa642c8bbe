//! `GET /ui/users` (admins only): every dashboard user with role and
//! account; `POST /ui/users` adds one (a generated password, shown once,
//! when none is given); `POST /ui/users/remove` removes one and ends their
//! sessions. An admin cannot remove themself here (the CLI can), so the
//! last admin is not locked out by a click.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carteiro_store::{Role, StoreError, generate_password};
use serde::Deserialize;

use super::error::UiError;
use super::page::{Nav, render, sentence, when};
use super::scope::{Scope, scope};
use super::session::Signed;
use crate::ApiState;
use crate::submit::Submitter;

/// One user as listed.
pub(crate) struct UserRow {
    pub(crate) email: String,
    pub(crate) role: &'static str,
    pub(crate) account: String,
    pub(crate) created: String,
    pub(crate) is_me: bool,
}

#[derive(Template)]
#[template(path = "ui/users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserRow>,
    roles: Vec<&'static str>,
    /// A user just added with a generated password: (email, password).
    created: Option<(String, String)>,
    error: Option<String>,
    /// The add form's values after a refused add.
    form: AddForm,
}

#[derive(Deserialize, Default, Clone)]
pub(crate) struct AddForm {
    #[serde(default)]
    pub(crate) csrf: String,
    #[serde(default)]
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) account: String,
    #[serde(default)]
    pub(crate) password: String,
}

fn admin_only(signed: &Signed) -> Result<(), UiError> {
    if signed.session.user.role == Role::Admin {
        Ok(())
    } else {
        Err(UiError::Forbidden("manage dashboard users"))
    }
}

async fn page<S: Submitter>(
    state: &ApiState<S>,
    signed: &Signed,
    scope: &Scope,
    created: Option<(String, String)>,
    error: Option<String>,
    form: AddForm,
) -> Result<UsersPage, UiError> {
    let users = state
        .store
        .list_users()
        .await
        .map_err(|e| UiError::store("listing users", e))?
        .into_iter()
        .map(|u| UserRow {
            is_me: u.id == signed.session.user.id,
            email: u.email,
            role: u.role.as_str(),
            account: u.account.unwrap_or_default(),
            created: when(u.created_at),
        })
        .collect();
    Ok(UsersPage {
        nav: Nav::new(signed, scope, "users"),
        users,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        created,
        error,
        form,
    })
}

/// `GET /ui/users`.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
) -> Result<Response, UiError> {
    admin_only(&signed)?;
    let scope = scope(&state.store, &signed, None).await?;
    let page = page(&state, &signed, &scope, None, None, AddForm::default()).await?;
    render(StatusCode::OK, &page)
}

/// `POST /ui/users`: adds a user.
pub(crate) async fn add<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<AddForm>, FormRejection>,
) -> Result<Response, UiError> {
    admin_only(&signed)?;
    let Ok(Form(mut form)) = form else {
        return Err(UiError::BadToken);
    };
    signed.check_csrf(&form.csrf)?;
    let scope = scope(&state.store, &signed, None).await?;
    let refused = |message: String, form: AddForm| async {
        let page = page(&state, &signed, &scope, None, Some(message), form).await?;
        render(StatusCode::BAD_REQUEST, &page)
    };
    let Ok(role) = form.role.parse::<Role>() else {
        return refused("Choose a role: admin, member or viewer.".to_owned(), form).await;
    };
    let generated = form.password.is_empty();
    let password = if generated {
        generate_password()
    } else {
        std::mem::take(&mut form.password)
    };
    let account = Some(form.account.trim()).filter(|a| !a.is_empty());
    match state
        .store
        .add_user(form.email.trim(), role, account, &password)
        .await
    {
        Ok(user) => {
            tracing::info!(by = %signed.session.user.email, email = %user.email, role = %user.role, "dashboard: user added");
            let created = generated.then(|| (user.email.clone(), password));
            let page = page(&state, &signed, &scope, created, None, AddForm::default()).await?;
            render(StatusCode::CREATED, &page)
        }
        Err(
            error @ (StoreError::InvalidAddress(_)
            | StoreError::AccountRequired(_)
            | StoreError::InvalidName(_)
            | StoreError::NoSuchAccount(_)
            | StoreError::WeakPassword
            | StoreError::UserExists(_)),
        ) => refused(sentence(&error.to_string()), form).await,
        Err(error) => Err(UiError::store("adding a user", error)),
    }
}

#[derive(Deserialize)]
pub(crate) struct RemoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// `POST /ui/users/remove`: removes a user and ends their sessions.
pub(crate) async fn remove<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<RemoveForm>, FormRejection>,
) -> Result<Response, UiError> {
    admin_only(&signed)?;
    let Ok(Form(form)) = form else {
        return Err(UiError::BadToken);
    };
    signed.check_csrf(&form.csrf)?;
    if form
        .email
        .trim()
        .eq_ignore_ascii_case(&signed.session.user.email)
    {
        return Err(UiError::Forbidden(
            "remove yourself here (use `carteiro user remove`)",
        ));
    }
    let removed = state
        .store
        .remove_user(form.email.trim())
        .await
        .map_err(|e| UiError::store("removing a user", e))?;
    if !removed {
        return Err(UiError::NotFound);
    }
    tracing::info!(by = %signed.session.user.email, email = %form.email.trim(), "dashboard: user removed");
    Ok(Redirect::to("/ui/users").into_response())
}
