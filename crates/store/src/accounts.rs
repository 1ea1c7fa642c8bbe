//! Accounts: the tenant that owns credentials (and later domains, API keys,
//! events). This module names and finds accounts; it does not decide what an
//! account may do.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyExecutor, Row};
use time::OffsetDateTime;

use crate::error::{StoreError, is_unique_violation};
use crate::store::{Store, from_unix, now_unix};

/// Longest account name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// An account as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Database id; never reused after a delete.
    pub id: i64,
    /// Lowercase name, 1 to 64 characters of `a-z`, `0-9`, `.`, `_`, `-`.
    pub name: String,
    /// When the account was created (whole seconds, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Account {
    /// Reads the `id, name, created_at` columns of a query on `accounts`.
    pub(crate) fn from_row(row: &AnyRow) -> Result<Account, StoreError> {
        Ok(Account {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: from_unix(row.try_get("created_at")?)?,
        })
    }
}

/// Checks an account name and returns it lowercased, the form it is stored in.
pub(crate) fn normalize_name(name: &str) -> Result<String, StoreError> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(StoreError::InvalidName(name.to_owned()))
    }
}

/// Finds an account by its stored (lowercase) name, on a pool or inside a
/// transaction.
pub(crate) async fn find_by_name(
    executor: impl AnyExecutor<'_>,
    name: &str,
) -> Result<Option<Account>, StoreError> {
    sqlx::query("SELECT id, name, created_at FROM accounts WHERE name = $1")
        .bind(name)
        .fetch_optional(executor)
        .await?
        .as_ref()
        .map(Account::from_row)
        .transpose()
}

impl Store {
    /// Creates an account. The name is case-insensitive and stored lowercase.
    ///
    /// Fails with [`StoreError::InvalidName`] or [`StoreError::AccountExists`].
    pub async fn create_account(&self, name: &str) -> Result<Account, StoreError> {
        let name = normalize_name(name)?;
        let created_at = now_unix();
        let row = sqlx::query(
            "INSERT INTO accounts (name, created_at) VALUES ($1, $2) \
             RETURNING id, name, created_at",
        )
        .bind(&name)
        .bind(created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::AccountExists(name.clone())
            } else {
                error.into()
            }
        })?;
        let account = Account::from_row(&row)?;
        tracing::info!(account = %account.name, id = account.id, "account created");
        Ok(account)
    }

    /// Finds an account by name (case-insensitive). A name that could not be
    /// valid is simply not found.
    pub async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        match normalize_name(name) {
            Ok(name) => find_by_name(&self.pool, &name).await,
            Err(_) => Ok(None),
        }
    }

    /// Finds an account by id.
    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(Account::from_row)
            .transpose()
    }

    /// Returns the account with this name, creating it if needed. Safe when
    /// several tasks or processes ensure the same name at once: all of them get
    /// the one account.
    pub async fn ensure_account(&self, name: &str) -> Result<Account, StoreError> {
        let name = normalize_name(name)?;
        // Read first: at start on a full disk the account exists and
        // nothing needs writing.
        if let Some(account) = find_by_name(&self.pool, &name).await? {
            return Ok(account);
        }
        // ON CONFLICT DO NOTHING (SQLite and PostgreSQL alike) turns the race
        // into a no-op insert followed by the same SELECT for everyone.
        sqlx::query(
            "INSERT INTO accounts (name, created_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&name)
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        find_by_name(&self.pool, &name)
            .await?
            // Only a delete between the two statements gets here.
            .ok_or(StoreError::NoSuchAccount(name))
    }

    /// Lists every account, by name.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM accounts ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Account::from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_store;

    #[tokio::test]
    async fn creates_and_finds_accounts() {
        let (_dir, store) = temp_store().await;
        let before = now_unix();
        let account = store.create_account("Acme.Corp_1-x").await.expect("create");
        assert_eq!(account.name, "acme.corp_1-x");
        assert!(account.created_at.unix_timestamp() >= before);

        let found = store.account("ACME.corp_1-X").await.expect("lookup");
        assert_eq!(found.as_ref(), Some(&account));
        let by_id = store.account_by_id(account.id).await.expect("by id");
        assert_eq!(by_id.as_ref(), Some(&account));
        assert_eq!(store.account("other").await.expect("lookup"), None);
        assert_eq!(store.account("no spaces").await.expect("lookup"), None);
        assert_eq!(
            store.account_by_id(account.id + 1).await.expect("by id"),
            None
        );
    }

    #[tokio::test]
    async fn refuses_a_taken_name_whatever_its_case() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("create");
        let error = store.create_account("ACME").await.expect_err("duplicate");
        assert!(
            matches!(error, StoreError::AccountExists(ref n) if n == "acme"),
            "{error}"
        );
        assert_eq!(store.list_accounts().await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn refuses_invalid_names() {
        let (_dir, store) = temp_store().await;
        let too_long = "a".repeat(MAX_NAME_CHARS + 1);
        for name in [
            "",
            "with space",
            "slash/",
            "at@sign",
            "é",
            "tab\t",
            too_long.as_str(),
        ] {
            let error = store.create_account(name).await.expect_err(name);
            assert!(
                matches!(error, StoreError::InvalidName(_)),
                "{name:?}: {error}"
            );
        }
        let longest = "a".repeat(MAX_NAME_CHARS);
        store
            .create_account(&longest)
            .await
            .expect("64 characters is fine");
    }

    #[tokio::test]
    async fn ensure_account_gets_or_creates_once_under_races() {
        let (_dir, store) = temp_store().await;
        let existing = store.create_account("acme").await.expect("create");
        assert_eq!(
            store.ensure_account("Acme").await.expect("ensure"),
            existing
        );

        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.ensure_account("beta").await })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.expect("join").expect("ensure").id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "every caller got the same account");
        assert_eq!(store.list_accounts().await.expect("list").len(), 2);
    }

    #[tokio::test]
    async fn lists_accounts_by_name() {
        let (_dir, store) = temp_store().await;
        for name in ["zeta", "alpha", "mid"] {
            store.create_account(name).await.expect("create");
        }
        let names: Vec<_> = store
            .list_accounts()
            .await
            .expect("list")
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
    }
}
