//! Which account a page shows. An admin sees every account and switches with
//! `?account=NAME` (else their own account, else the first); a member or
//! viewer sees only their own, and naming another answers `404`, as a
//! missing page does.

use axum::extract::Form;
use axum::extract::rejection::FormRejection;
use carteiro_store::{Account, Role, Store};
use serde::Deserialize;

use super::error::UiError;
use super::session::Signed;

/// The query of a page that only names its account.
#[derive(Deserialize, Default)]
pub(crate) struct AccountQuery {
    pub(crate) account: Option<String>,
}

/// A form that changes something: the session's token it carries and the
/// account it names.
pub(crate) trait WriteForm {
    fn csrf(&self) -> &str;
    fn account(&self) -> Option<&str>;
}

/// Forms read as name/value pairs (one name may repeat, as checkboxes do).
impl WriteForm for Vec<(String, String)> {
    fn csrf(&self) -> &str {
        self.iter()
            .find(|(n, _)| n == "csrf")
            .map_or("", |(_, v)| v)
    }

    fn account(&self) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n == "account")
            .map(|(_, v)| v.as_str())
    }
}

/// Checks a form post that changes something, in this order: a role that
/// may `what` (else `403`), a form that reads with this session's token
/// (else `403`), and an account the user may see (else `404`).
pub(crate) async fn checked_form<T: WriteForm>(
    store: &Store,
    signed: &Signed,
    form: Result<Form<T>, FormRejection>,
    what: &'static str,
) -> Result<(T, Scope), UiError> {
    signed.check_write(what)?;
    let Ok(Form(form)) = form else {
        return Err(UiError::BadToken);
    };
    signed.check_csrf(form.csrf())?;
    let scope = scope(store, signed, form.account()).await?;
    Ok((form, scope))
}

/// The account of a page and, for an admin, the accounts to switch to.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub(crate) account: Account,
    /// Every account's name for an admin's switcher; empty otherwise.
    pub(crate) accounts: Vec<String>,
}

/// The scope of a request of `signed` asking for `requested`.
pub(crate) async fn scope(
    store: &Store,
    signed: &Signed,
    requested: Option<&str>,
) -> Result<Scope, UiError> {
    let user = &signed.session.user;
    let requested = requested.filter(|name| !name.is_empty());
    if user.role != Role::Admin {
        let own = user.account.as_deref().ok_or(UiError::NotFound)?;
        if requested.is_some_and(|name| name != own) {
            return Err(UiError::NotFound);
        }
        let account = store
            .account(own)
            .await
            .map_err(|e| UiError::store("reading an account", e))?
            .ok_or(UiError::NotFound)?;
        return Ok(Scope {
            account,
            accounts: Vec::new(),
        });
    }
    let accounts = store
        .list_accounts()
        .await
        .map_err(|e| UiError::store("listing accounts", e))?;
    let wanted = requested.or(user.account.as_deref());
    let account = match wanted {
        Some(name) => accounts.iter().find(|a| a.name == name).cloned(),
        None => accounts.first().cloned(),
    };
    let account = match (account, requested) {
        (Some(account), _) => account,
        // The admin's own account is gone: fall back to the first.
        (None, None) => accounts.first().cloned().ok_or(UiError::NoAccounts)?,
        (None, Some(_)) => return Err(UiError::NotFound),
    };
    Ok(Scope {
        accounts: accounts.into_iter().map(|a| a.name).collect(),
        account,
    })
}
