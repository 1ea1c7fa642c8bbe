//! The account a message, a login or a request acts for.

use std::sync::Arc;

/// An account by id and name: what the SMTP session, the HTTP API and the
/// mail path pass around once a login or an API key named the account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountRef {
    /// Database id.
    pub id: i64,
    /// Lowercase account name (shared: every message of the account holds it).
    pub name: Arc<str>,
}

impl AccountRef {
    pub fn new(id: i64, name: impl Into<Arc<str>>) -> AccountRef {
        AccountRef {
            id,
            name: name.into(),
        }
    }
}
