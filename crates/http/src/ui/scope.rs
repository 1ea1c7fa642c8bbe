//! Which account a page shows. An admin sees every account and switches with
//! `?account=NAME` (else their own account, else the first); a member or
//! viewer sees only their own, and naming another answers `404`, as a
//! missing page does.

use carteiro_store::{Account, Role, Store};

use super::error::UiError;
use super::session::Signed;

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
