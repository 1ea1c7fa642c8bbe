//! `GET /ui/domains`: the account's sending domains with their DKIM
//! selectors; `POST /ui/domains` adds one (new RSA-2048 and Ed25519 keys,
//! as `carteiro domain add`). `GET /ui/domains/{name}`: the records to
//! publish, each with the live result of `carteiro domain check` beside it
//! (ok, missing, wrong, warning, and what to do), then the bulk-sender
//! checklist. Another account's domain is `404`.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carteiro_store::{Domain, KeyState};
use serde::Deserialize;

use super::error::UiError;
use super::page::{Nav, render, sentence, when};
use super::scope::{AccountQuery, Scope, WriteForm, checked_form, scope};
use super::session::Signed;
use super::url::query_escape;
use crate::ApiState;
use crate::submit::{SubmitError, Submitter};

/// One domain as listed.
pub(crate) struct DomainRow {
    pub(crate) name: String,
    pub(crate) selectors: String,
    pub(crate) created: String,
}

#[derive(Template)]
#[template(path = "ui/domains.html")]
struct DomainsPage {
    nav: Nav,
    domains: Vec<DomainRow>,
    error: Option<String>,
    name: String,
}

/// One record to publish, with what the check found.
pub(crate) struct RecordRow {
    pub(crate) purpose: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    pub(crate) value: String,
    /// `ok`, `missing`, `wrong`, `warning`, or empty when not checked.
    pub(crate) status: &'static str,
    pub(crate) message: String,
}

/// One item of the bulk-sender checklist.
pub(crate) struct ChecklistRow {
    pub(crate) purpose: &'static str,
    pub(crate) name: String,
    pub(crate) status: &'static str,
    pub(crate) message: String,
}

/// One DKIM key as shown.
pub(crate) struct KeyRow {
    pub(crate) selector: String,
    pub(crate) algorithm: &'static str,
    /// `pending`, `active` or `retired`.
    pub(crate) state: &'static str,
    pub(crate) made: String,
    pub(crate) retired: String,
}

#[derive(Template)]
#[template(path = "ui/domain.html")]
struct DomainPage {
    nav: Nav,
    name: String,
    created: String,
    keys: Vec<KeyRow>,
    has_pending: bool,
    has_retired: bool,
    /// Every pending key's DKIM record checks ok: activation may go ahead.
    pending_published: bool,
    error: Option<String>,
    records: Vec<RecordRow>,
    checklist: Vec<ChecklistRow>,
    /// Whether the check ran (DNS answered or said what failed).
    checked: bool,
    problems: usize,
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    csrf: String,
    account: Option<String>,
    #[serde(default)]
    name: String,
}

async fn list_page<S: Submitter>(
    state: &ApiState<S>,
    signed: &Signed,
    scope: &Scope,
    error: Option<String>,
    name: &str,
) -> Result<DomainsPage, UiError> {
    let domains = state
        .store
        .list_domains(Some(&scope.account.name))
        .await
        .map_err(|e| UiError::store("listing domains", e))?
        .into_iter()
        .map(|d| DomainRow {
            selectors: d
                .keys
                .iter()
                .map(|k| format!("{} ({})", k.selector, k.algorithm.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            created: when(d.created_at),
            name: d.name,
        })
        .collect();
    Ok(DomainsPage {
        nav: Nav::new(signed, scope, "domains"),
        domains,
        error,
        name: name.to_owned(),
    })
}

/// `GET /ui/domains`.
pub(crate) async fn list<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    query: Result<Query<AccountQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(query) = query.unwrap_or_default();
    let scope = scope(&state.store, &signed, query.account.as_deref()).await?;
    let page = list_page(&state, &signed, &scope, None, "").await?;
    render(StatusCode::OK, &page)
}

/// `POST /ui/domains`: adds a sending domain.
pub(crate) async fn add<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    form: Result<Form<AddForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (form, scope) = checked_form(&state.store, &signed, form, "add sending domains").await?;
    let name = form.name.trim();
    match state.submitter.add_domain(&scope.account.name, name).await {
        Ok(domain) => {
            tracing::info!(user = %signed.session.user.email, account = %scope.account.name, domain = %domain.name, "dashboard: domain added");
            let nav = Nav::new(&signed, &scope, "domains");
            let target = format!("/ui/domains/{}", query_escape(&domain.name));
            Ok(Redirect::to(&nav.href(&target)).into_response())
        }
        Err(SubmitError::Refused { message, .. }) => {
            let page = list_page(&state, &signed, &scope, Some(sentence(&message)), name).await?;
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(SubmitError::Unavailable(_)) => Err(UiError::Unavailable),
        Err(other) => Err(UiError::internal("adding a domain", other)),
    }
}

/// The account's domain of this name, or `404`.
async fn owned<S: Submitter>(
    state: &ApiState<S>,
    scope: &Scope,
    name: &str,
) -> Result<Domain, UiError> {
    state
        .store
        .domain(name)
        .await
        .map_err(|e| UiError::store("reading a domain", e))?
        .filter(|d| d.account_id == scope.account.id)
        .ok_or(UiError::NotFound)
}

/// `GET /ui/domains/{name}`.
pub(crate) async fn one<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    Path(name): Path<String>,
    query: Result<Query<AccountQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(query) = query.unwrap_or_default();
    let scope = scope(&state.store, &signed, query.account.as_deref()).await?;
    let domain = owned(&state, &scope, &name).await?;
    let page = domain_page(&state, &signed, &scope, domain).await;
    render(StatusCode::OK, &page)
}

/// A domain's page: its records with the live check, the checklist, the keys.
async fn domain_page<S: Submitter>(
    state: &ApiState<S>,
    signed: &Signed,
    scope: &Scope,
    domain: Domain,
) -> DomainPage {
    let expected = state.submitter.domain_records(&domain);
    let check = state.submitter.check_domain(&domain).await;
    let mut records: Vec<RecordRow> = expected
        .iter()
        .map(|r| {
            let found = check.as_ref().and_then(|c| {
                c.records
                    .iter()
                    .find(|f| f.purpose == r.purpose && f.kind == r.kind && f.name == r.name)
            });
            RecordRow {
                purpose: r.purpose.as_str(),
                kind: r.kind.as_str(),
                name: r.name.clone(),
                value: r.value.clone(),
                status: found.map_or("", |f| f.status.as_str()),
                message: found.map(|f| f.message.clone()).unwrap_or_default(),
            }
        })
        .collect();
    // Results about names that have no record of their own (rare): shown too.
    if let Some(check) = &check {
        for f in &check.records {
            if !expected
                .iter()
                .any(|r| r.purpose == f.purpose && r.kind == f.kind && r.name == f.name)
            {
                records.push(RecordRow {
                    purpose: f.purpose.as_str(),
                    kind: f.kind.as_str(),
                    name: f.name.clone(),
                    value: String::new(),
                    status: f.status.as_str(),
                    message: f.message.clone(),
                });
            }
        }
    }
    let checklist: Vec<ChecklistRow> = check
        .as_ref()
        .map(|c| {
            c.checklist
                .iter()
                .map(|i| ChecklistRow {
                    purpose: i.purpose,
                    name: i.name.clone(),
                    status: i.status.as_str(),
                    message: i.message.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let problems = records
        .iter()
        .map(|r| r.status)
        .chain(checklist.iter().map(|c| c.status))
        .filter(|s| matches!(*s, "missing" | "wrong"))
        .count();
    // The new keys may sign once their DKIM records are published as made.
    let pending: Vec<&str> = domain
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Pending)
        .map(|k| k.selector.as_str())
        .collect();
    let pending_published = !pending.is_empty()
        && pending.iter().all(|selector| {
            records.iter().any(|r| {
                r.purpose == "dkim"
                    && r.name.starts_with(&format!("{selector}._domainkey."))
                    && r.status == "ok"
            })
        });
    DomainPage {
        nav: Nav::new(signed, scope, "domains"),
        created: when(domain.created_at),
        keys: domain
            .keys
            .iter()
            .map(|k| KeyRow {
                selector: k.selector.clone(),
                algorithm: k.algorithm.as_str(),
                state: k.state.as_str(),
                made: when(k.created_at),
                retired: k.retired_at.map(when).unwrap_or_default(),
            })
            .collect(),
        has_pending: !pending.is_empty(),
        has_retired: domain.keys.iter().any(|k| k.state == KeyState::Retired),
        pending_published,
        name: domain.name,
        records,
        checklist,
        checked: check.is_some(),
        problems,
        error: None,
    }
}

/// The keys form: the session's token and the page's account.
#[derive(Deserialize)]
pub(crate) struct KeysForm {
    #[serde(default)]
    csrf: String,
    account: Option<String>,
}

impl WriteForm for KeysForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}

/// Back to the domain's page.
fn to_domain(signed: &Signed, scope: &Scope, name: &str) -> Response {
    let nav = Nav::new(signed, scope, "domains");
    let target = format!("/ui/domains/{}", query_escape(name));
    Redirect::to(&nav.href(&target)).into_response()
}

/// The checks of a key action's form, then the account's domain.
async fn key_action<S: Submitter>(
    state: &ApiState<S>,
    signed: &Signed,
    name: &str,
    form: Result<Form<KeysForm>, FormRejection>,
) -> Result<(Scope, Domain), UiError> {
    let (_, scope) = checked_form(&state.store, signed, form, "rotate DKIM keys").await?;
    let domain = owned(state, &scope, name).await?;
    Ok((scope, domain))
}

/// `POST /ui/domains/{name}/rotate`: new keys, pending until activated.
pub(crate) async fn rotate<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    Path(name): Path<String>,
    form: Result<Form<KeysForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (scope, domain) = key_action(&state, &signed, &name, form).await?;
    match state.submitter.rotate_domain_keys(&domain.name).await {
        Ok(_) => {
            tracing::info!(user = %signed.session.user.email, domain = %domain.name, "dashboard: dkim keys made, pending");
            Ok(to_domain(&signed, &scope, &domain.name))
        }
        Err(SubmitError::Refused { message, .. }) => {
            let mut page = domain_page(&state, &signed, &scope, domain).await;
            page.error = Some(sentence(&message));
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(SubmitError::Unavailable(_)) => Err(UiError::Unavailable),
        Err(other) => Err(UiError::internal("rotating dkim keys", other)),
    }
}

/// `POST /ui/domains/{name}/activate`: the pending keys sign from now on,
/// the old ones retire; refused until the new keys' DKIM records are
/// published as made (checked again here).
pub(crate) async fn activate<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    Path(name): Path<String>,
    form: Result<Form<KeysForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (scope, domain) = key_action(&state, &signed, &name, form).await?;
    let page = domain_page(&state, &signed, &scope, domain.clone()).await;
    if !page.pending_published {
        let mut page = page;
        page.error = Some(if page.has_pending {
            "Publish the new keys' DKIM records first: receivers could not verify mail signed with them.".to_owned()
        } else {
            "There are no new keys to start signing with.".to_owned()
        });
        return render(StatusCode::BAD_REQUEST, &page);
    }
    state
        .store
        .activate_pending_keys(&domain.name)
        .await
        .map_err(|e| UiError::store("activating dkim keys", e))?;
    tracing::info!(user = %signed.session.user.email, domain = %domain.name, "dashboard: dkim keys rotated");
    Ok(to_domain(&signed, &scope, &domain.name))
}

/// `POST /ui/domains/{name}/forget-retired`: deletes the retired keys.
pub(crate) async fn forget_retired<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    Path(name): Path<String>,
    form: Result<Form<KeysForm>, FormRejection>,
) -> Result<Response, UiError> {
    let (scope, domain) = key_action(&state, &signed, &name, form).await?;
    state
        .store
        .remove_retired_keys(&domain.name)
        .await
        .map_err(|e| UiError::store("removing retired dkim keys", e))?;
    Ok(to_domain(&signed, &scope, &domain.name))
}

impl WriteForm for AddForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}
