//! SMTP credentials: a username and an argon2id password hash, owned by an
//! account. A username is unique over all accounts, compared case-insensitively
//! (stored lowercase), so a login names exactly one account.
//!
//! This module checks passwords; it does not decide what a logged-in client may
//! send, and it never returns or logs the hash.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::accounts::{Account, find_by_name, normalize_name};
use crate::error::{StoreError, is_unique_violation};
use crate::password::MIN_PASSWORD_CHARS;
use crate::store::{Store, from_unix, now_unix};

/// Longest SMTP username, in bytes (the usual limit of mail systems).
const MAX_USERNAME_BYTES: usize = 255;

/// An SMTP credential as listed: never with its password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Credential {
    /// Database id.
    pub id: i64,
    /// The account that logs in with it.
    pub account_id: i64,
    /// Lowercase username.
    pub username: String,
    /// When the credential was added (whole seconds, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Credential {
    fn from_row(row: &AnyRow) -> Result<Credential, StoreError> {
        Ok(Credential {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            username: row.try_get("username")?,
            created_at: from_unix(row.try_get("created_at")?)?,
        })
    }
}

/// Checks a username and returns it lowercased, the form it is stored in.
fn normalize_username(username: &str) -> Result<String, StoreError> {
    let valid = !username.is_empty()
        && username.len() <= MAX_USERNAME_BYTES
        && !username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(username.to_lowercase())
    } else {
        Err(StoreError::InvalidUsername(username.to_owned()))
    }
}

impl Store {
    /// Adds an SMTP credential to an account.
    ///
    /// Fails with [`StoreError::InvalidName`], [`StoreError::NoSuchAccount`],
    /// [`StoreError::InvalidUsername`], [`StoreError::WeakPassword`] (fewer than
    /// [`MIN_PASSWORD_CHARS`](crate::MIN_PASSWORD_CHARS) characters) or
    /// [`StoreError::CredentialExists`] when any account has the username.
    pub async fn add_credential(
        &self,
        account: &str,
        username: &str,
        password: &str,
    ) -> Result<Credential, StoreError> {
        let account = normalize_name(account)?;
        let username = normalize_username(username)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(StoreError::WeakPassword);
        }
        // Check first so a typo in the account name costs no argon2 run.
        if find_by_name(&self.pool, &account).await?.is_none() {
            return Err(StoreError::NoSuchAccount(account));
        }
        let hash = self.hashing.hash(password).await?;
        // The account is looked up again inside the INSERT: if it was deleted
        // meanwhile (by another process), no row is inserted.
        let row = sqlx::query(
            "INSERT INTO smtp_credentials (account_id, username, password_hash, created_at) \
             SELECT id, $2, $3, $4 FROM accounts WHERE name = $1 \
             RETURNING id, account_id, username, created_at",
        )
        .bind(&account)
        .bind(&username)
        .bind(&hash)
        .bind(now_unix())
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::CredentialExists(username.clone())
            } else {
                error.into()
            }
        })?
        .ok_or_else(|| StoreError::NoSuchAccount(account.clone()))?;
        let credential = Credential::from_row(&row)?;
        tracing::info!(%account, username = %credential.username, "smtp credential added");
        Ok(credential)
    }

    /// Lists an account's credentials, by username.
    ///
    /// Fails with [`StoreError::NoSuchAccount`] when there is no such account
    /// (an account without credentials gives an empty list).
    pub async fn list_credentials(&self, account: &str) -> Result<Vec<Credential>, StoreError> {
        let Some(found) = self.account(account).await? else {
            return Err(StoreError::NoSuchAccount(account.to_owned()));
        };
        sqlx::query(
            "SELECT id, account_id, username, created_at FROM smtp_credentials \
             WHERE account_id = $1 ORDER BY username",
        )
        .bind(found.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(Credential::from_row)
        .collect()
    }

    /// Removes the credential with this username (case-insensitive), whichever
    /// account owns it. Returns whether one was removed.
    pub async fn remove_credential(&self, username: &str) -> Result<bool, StoreError> {
        let Ok(username) = normalize_username(username) else {
            return Ok(false);
        };
        let removed = sqlx::query("DELETE FROM smtp_credentials WHERE username = $1")
            .bind(&username)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        if removed {
            tracing::info!(%username, "smtp credential removed");
        }
        Ok(removed)
    }

    /// Checks an SMTP login. Returns the account when the password is right,
    /// `None` when it is wrong or the username unknown.
    ///
    /// Both `None` cases take about the same time (an unknown username is
    /// checked against a dummy hash), so timing does not tell which usernames
    /// exist. The argon2 work runs on the blocking pool.
    pub async fn verify_credential(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Account>, StoreError> {
        // A username that could not be stored is unknown, and costs the same.
        let row = match normalize_username(username) {
            Ok(username) => {
                sqlx::query(
                    "SELECT c.password_hash, a.id, a.name, a.created_at \
                     FROM smtp_credentials c JOIN accounts a ON a.id = c.account_id \
                     WHERE c.username = $1",
                )
                .bind(&username)
                .fetch_optional(&self.pool)
                .await?
            }
            Err(_) => None,
        };
        let stored: Option<String> = row
            .as_ref()
            .map(|row| row.try_get("password_hash"))
            .transpose()?;
        if !self.hashing.verify(password, stored).await? {
            return Ok(None);
        }
        // verify() is true only for a stored hash, so the row is there.
        row.as_ref().map(Account::from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_store;

    const PASSWORD: &str = "correct horse battery";

    #[tokio::test]
    async fn adds_and_verifies_a_credential() {
        let (_dir, store) = temp_store().await;
        let account = store.create_account("acme").await.expect("create");
        let credential = store
            .add_credential("ACME", "Relay@Acme.example", PASSWORD)
            .await
            .expect("add");
        assert_eq!(credential.account_id, account.id);
        assert_eq!(credential.username, "relay@acme.example");

        let verified = store
            .verify_credential("relay@ACME.example", PASSWORD)
            .await
            .expect("verify");
        assert_eq!(verified, Some(account));
        let wrong = store
            .verify_credential("relay@acme.example", "correct horse batterY")
            .await
            .expect("verify wrong");
        assert_eq!(wrong, None);
        let unknown = store
            .verify_credential("nobody@acme.example", PASSWORD)
            .await
            .expect("verify unknown");
        assert_eq!(unknown, None);
        let unstorable = store
            .verify_credential("has space", PASSWORD)
            .await
            .expect("verify invalid username");
        assert_eq!(unstorable, None);
    }

    #[tokio::test]
    async fn refuses_a_username_taken_in_another_account() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("create acme");
        store.create_account("beta").await.expect("create beta");
        store
            .add_credential("acme", "shared", PASSWORD)
            .await
            .expect("add");
        let error = store
            .add_credential("beta", "SHARED", "another password")
            .await
            .expect_err("duplicate username");
        assert!(
            matches!(error, StoreError::CredentialExists(ref u) if u == "shared"),
            "{error}"
        );
        // The first owner still logs in with the first password.
        let owner = store
            .verify_credential("shared", PASSWORD)
            .await
            .expect("verify")
            .expect("accepted");
        assert_eq!(owner.name, "acme");
        assert!(
            store
                .list_credentials("beta")
                .await
                .expect("list")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn refuses_bad_input() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("create");
        let weak = store.add_credential("acme", "user", "7 chars").await;
        assert!(matches!(weak, Err(StoreError::WeakPassword)), "{weak:?}");
        let missing = store.add_credential("ghost", "user", PASSWORD).await;
        assert!(
            matches!(missing, Err(StoreError::NoSuchAccount(_))),
            "{missing:?}"
        );
        let bad_account = store.add_credential("bad name", "user", PASSWORD).await;
        assert!(
            matches!(bad_account, Err(StoreError::InvalidName(_))),
            "{bad_account:?}"
        );
        for username in [
            "",
            "with space",
            "nul\0",
            &"u".repeat(MAX_USERNAME_BYTES + 1),
        ] {
            let result = store.add_credential("acme", username, PASSWORD).await;
            assert!(
                matches!(result, Err(StoreError::InvalidUsername(_))),
                "{username:?}: {result:?}"
            );
        }
        // Eight characters, counted as characters rather than bytes.
        store
            .add_credential("acme", "user", "ééééèèèè")
            .await
            .expect("8 characters is enough");
        let missing_list = store.list_credentials("ghost").await;
        assert!(
            matches!(missing_list, Err(StoreError::NoSuchAccount(_))),
            "{missing_list:?}"
        );
    }

    #[tokio::test]
    async fn stores_an_argon2id_phc_string_not_the_password() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("create");
        store
            .add_credential("acme", "user", PASSWORD)
            .await
            .expect("add");
        let stored: String =
            sqlx::query_scalar("SELECT password_hash FROM smtp_credentials WHERE username = $1")
                .bind("user")
                .fetch_one(&store.pool)
                .await
                .expect("read hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(!stored.contains(PASSWORD));
        argon2::password_hash::phc::PasswordHash::new(&stored).expect("valid PHC string");
    }

    #[tokio::test]
    async fn lists_and_removes_credentials() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("create");
        store.create_account("beta").await.expect("create");
        for username in ["zed", "amy"] {
            store
                .add_credential("acme", username, PASSWORD)
                .await
                .expect("add");
        }
        store
            .add_credential("beta", "bob", PASSWORD)
            .await
            .expect("add");
        let names: Vec<_> = store
            .list_credentials("acme")
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.username)
            .collect();
        assert_eq!(names, ["amy", "zed"]);

        assert!(store.remove_credential("ZED").await.expect("remove"));
        assert!(!store.remove_credential("zed").await.expect("remove again"));
        assert!(!store.remove_credential("").await.expect("remove invalid"));
        assert_eq!(store.list_credentials("acme").await.expect("list").len(), 1);
        assert_eq!(
            store
                .verify_credential("zed", PASSWORD)
                .await
                .expect("verify"),
            None
        );
    }

    #[tokio::test]
    async fn deleting_an_account_removes_its_credentials() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("create");
        store
            .add_credential("acme", "user", PASSWORD)
            .await
            .expect("add");
        // No delete_account yet: this checks the foreign key the schema relies on.
        sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind("acme")
            .execute(&store.pool)
            .await
            .expect("delete account");
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM smtp_credentials")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(left, 0);
    }
}
