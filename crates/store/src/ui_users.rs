//! Dashboard users and their signed-in sessions.
//!
//! A user is an email (unique, stored lowercase), a [`Role`], an account (an
//! admin may have none) and an argon2id password hash. A session is a random
//! token in the browser's cookie, kept here only as its SHA-256, with a form
//! (CSRF) token and an expiry that moves forward while the session is used;
//! being in the store, a session works on every node of a cluster.
//!
//! This module checks passwords and tokens; what a role may see and do is the
//! dashboard's decision. It never returns or logs a hash or a token after
//! creating it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::accounts::{find_by_name, normalize_name};
use crate::api_keys::hash_key;
use crate::error::{StoreError, UnknownValue, is_unique_violation};
use crate::password::{MIN_PASSWORD_CHARS, random_token};
use crate::store::{Store, from_unix, now_unix};

/// Longest email, in bytes (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;

/// Characters of a session token: 256 random bits.
const TOKEN_CHARS: usize = 43;

/// Characters of a form (CSRF) token: 192 random bits.
const CSRF_CHARS: usize = 32;

/// A session's expiry is written again only when it would move by more than
/// this, so browsing does not turn every page into a database write.
const EXPIRY_RESOLUTION_SECONDS: i64 = 60;

/// What a dashboard user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and manages every account, and the users.
    Admin,
    /// Manages its own account.
    Member,
    /// Reads its own account.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Member, Role::Viewer];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Whether the role may change anything (send, add, revoke, delete).
    pub fn can_write(self) -> bool {
        self != Role::Viewer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Role, UnknownValue> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "role",
                value: s.to_owned(),
            })
    }
}

/// A dashboard user as listed: never with the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Lowercase email, the login name.
    pub email: String,
    /// What the user may do.
    pub role: Role,
    /// The user's account: the one a member or viewer works in, the one an
    /// admin's pages open on (`None`: the first account).
    pub account: Option<String>,
    /// When the user was added (whole seconds, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl User {
    fn from_row(row: &AnyRow) -> Result<User, StoreError> {
        let role: String = row.try_get("role")?;
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            role: role
                .parse()
                .map_err(|e: UnknownValue| StoreError::Corrupt(e.to_string()))?,
            account: row.try_get("account")?,
            created_at: from_unix(row.try_get("created_at")?)?,
        })
    }
}

/// A signed-in session: whose it is and the token its forms must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UiSession {
    /// The signed-in user.
    pub user: User,
    /// The form token (CSRF) of this session.
    pub csrf: String,
    /// When the session ends unless it is used again.
    pub expires_at: OffsetDateTime,
}

/// The columns of a user, with the account's name.
const USER_COLUMNS: &str = "u.id, u.email, u.role, a.name AS account, u.created_at";

/// Checks an email and returns it lowercased, the form it is stored in.
fn normalize_email(email: &str) -> Result<String, StoreError> {
    let valid = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email.to_lowercase())
    } else {
        Err(StoreError::InvalidAddress(email.to_owned()))
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl Store {
    /// Adds a dashboard user.
    ///
    /// Fails with [`StoreError::InvalidAddress`] (not an email),
    /// [`StoreError::AccountRequired`] (a member or viewer without account),
    /// [`StoreError::InvalidName`] or [`StoreError::NoSuchAccount`],
    /// [`StoreError::WeakPassword`] or [`StoreError::UserExists`].
    pub async fn add_user(
        &self,
        email: &str,
        role: Role,
        account: Option<&str>,
        password: &str,
    ) -> Result<User, StoreError> {
        let email = normalize_email(email)?;
        let account = account.map(normalize_name).transpose()?;
        if account.is_none() && role != Role::Admin {
            return Err(StoreError::AccountRequired(role.as_str()));
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(StoreError::WeakPassword);
        }
        let account_id = match &account {
            Some(name) => Some(
                find_by_name(&self.pool, name)
                    .await?
                    .ok_or_else(|| StoreError::NoSuchAccount(name.clone()))?
                    .id,
            ),
            None => None,
        };
        let hash = self.hashing.hash(password).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO ui_users (email, role, account_id, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&email)
        .bind(role.as_str())
        .bind(account_id)
        .bind(&hash)
        .bind(now_unix())
        .fetch_one(&self.pool)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::UserExists(email.clone())
            } else {
                error.into()
            }
        })?
        .try_get("id")?;
        tracing::info!(%email, role = role.as_str(), account = account.as_deref().unwrap_or(""), "dashboard user added");
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::NoSuchAccount(account.unwrap_or_default()))
    }

    /// Every dashboard user, by email.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM ui_users u LEFT JOIN accounts a ON a.id = u.account_id \
             ORDER BY u.email"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(User::from_row)
        .collect()
    }

    /// The user with this id, if any.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM ui_users u LEFT JOIN accounts a ON a.id = u.account_id \
             WHERE u.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(User::from_row)
        .transpose()
    }

    /// Removes a user (case-insensitive email) and every session of theirs.
    /// Returns whether one was removed.
    pub async fn remove_user(&self, email: &str) -> Result<bool, StoreError> {
        let Ok(email) = normalize_email(email) else {
            return Ok(false);
        };
        // Their sessions go with them: ui_sessions.user_id cascades.
        let removed = sqlx::query("DELETE FROM ui_users WHERE email = $1")
            .bind(&email)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        if removed {
            tracing::info!(%email, "dashboard user removed");
        }
        Ok(removed)
    }

    /// Checks a dashboard login. Returns the user when the password is right,
    /// `None` when it is wrong or the email unknown (both after the same
    /// argon2 work, so timing does not tell which emails exist).
    pub async fn verify_user(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = match normalize_email(email) {
            Ok(email) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS}, u.password_hash FROM ui_users u \
                     LEFT JOIN accounts a ON a.id = u.account_id WHERE u.email = $1"
                )))
                .bind(&email)
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
        row.as_ref().map(User::from_row).transpose()
    }

    /// Starts a session for a user, valid for `ttl` from its last use.
    /// Returns the session token (for the cookie; not stored, cannot be shown
    /// again) and the session. Sessions that have ended are cleared here.
    pub async fn create_ui_session(
        &self,
        user: &User,
        ttl: Duration,
    ) -> Result<(String, UiSession), StoreError> {
        let token = random_token::<TOKEN_CHARS>();
        let csrf = random_token::<CSRF_CHARS>();
        let now = now_unix();
        let expires = now.saturating_add(seconds(ttl));
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO ui_sessions (token_hash, user_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_key(&token))
        .bind(user.id)
        .bind(&csrf)
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let session = UiSession {
            user: user.clone(),
            csrf,
            expires_at: from_unix(expires)?,
        };
        Ok((token, session))
    }

    /// The live session of a token, its expiry moved to `ttl` from now; `None`
    /// for an unknown, ended or malformed token.
    pub async fn ui_session(
        &self,
        token: &str,
        ttl: Duration,
    ) -> Result<Option<UiSession>, StoreError> {
        if token.len() != TOKEN_CHARS {
            return Ok(None);
        }
        let hash = hash_key(token);
        let now = now_unix();
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, s.csrf, s.expires_at FROM ui_sessions s \
             JOIN ui_users u ON u.id = s.user_id LEFT JOIN accounts a ON a.id = u.account_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        )))
        .bind(&hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut expires: i64 = row.try_get("expires_at")?;
        let wanted = now.saturating_add(seconds(ttl));
        if wanted - expires > EXPIRY_RESOLUTION_SECONDS {
            sqlx::query("UPDATE ui_sessions SET expires_at = $2 WHERE token_hash = $1")
                .bind(&hash)
                .bind(wanted)
                .execute(&self.pool)
                .await?;
            expires = wanted;
        }
        Ok(Some(UiSession {
            user: User::from_row(&row)?,
            csrf: row.try_get("csrf")?,
            expires_at: from_unix(expires)?,
        }))
    }

    /// Ends the session of a token (logout). Returns whether there was one.
    pub async fn end_ui_session(&self, token: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM ui_sessions WHERE token_hash = $1")
            .bind(hash_key(token))
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_store;

    const PASSWORD: &str = "correct horse battery";
    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn adds_lists_verifies_and_removes_users() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("account");
        let admin = store
            .add_user("Root@Example.COM", Role::Admin, None, PASSWORD)
            .await
            .expect("admin");
        assert_eq!(admin.email, "root@example.com");
        assert_eq!(admin.account, None);
        let viewer = store
            .add_user("eve@acme.example", Role::Viewer, Some("acme"), PASSWORD)
            .await
            .expect("viewer");
        assert_eq!(viewer.account.as_deref(), Some("acme"));
        assert_eq!(viewer.role, Role::Viewer);

        let listed: Vec<_> = store
            .list_users()
            .await
            .expect("list")
            .into_iter()
            .map(|u| (u.email, u.role))
            .collect();
        assert_eq!(
            listed,
            [
                ("eve@acme.example".to_owned(), Role::Viewer),
                ("root@example.com".to_owned(), Role::Admin)
            ]
        );

        let found = store
            .verify_user("ROOT@example.com", PASSWORD)
            .await
            .expect("verify");
        assert_eq!(found, Some(admin));
        assert_eq!(
            store
                .verify_user("root@example.com", "wrong password")
                .await
                .expect("verify"),
            None
        );
        assert_eq!(
            store
                .verify_user("nobody@example.com", PASSWORD)
                .await
                .expect("verify"),
            None
        );

        assert!(store.remove_user("EVE@acme.example").await.expect("remove"));
        assert!(!store.remove_user("eve@acme.example").await.expect("again"));
        assert_eq!(
            store
                .verify_user("eve@acme.example", PASSWORD)
                .await
                .expect("gone"),
            None
        );
    }

    #[tokio::test]
    async fn refuses_bad_users() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("account");
        let add =
            |email: &'static str, role, account: Option<&'static str>, password: &'static str| {
                let store = store.clone();
                async move { store.add_user(email, role, account, password).await }
            };
        assert!(matches!(
            add("not an email", Role::Admin, None, PASSWORD).await,
            Err(StoreError::InvalidAddress(_))
        ));
        assert!(matches!(
            add("a@acme.example", Role::Member, None, PASSWORD).await,
            Err(StoreError::AccountRequired("member"))
        ));
        assert!(matches!(
            add("a@acme.example", Role::Member, Some("nosuch"), PASSWORD).await,
            Err(StoreError::NoSuchAccount(_))
        ));
        assert!(matches!(
            add("a@acme.example", Role::Member, Some("acme"), "short").await,
            Err(StoreError::WeakPassword)
        ));
        add("a@acme.example", Role::Member, Some("acme"), PASSWORD)
            .await
            .expect("first");
        assert!(matches!(
            add("A@acme.example", Role::Viewer, Some("acme"), PASSWORD).await,
            Err(StoreError::UserExists(_))
        ));
        assert_eq!("viewer".parse::<Role>().expect("role"), Role::Viewer);
        assert!("root".parse::<Role>().is_err());
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_token_until_it_ends() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("account");
        let user = store
            .add_user("m@acme.example", Role::Member, Some("acme"), PASSWORD)
            .await
            .expect("user");
        let (token, session) = store.create_ui_session(&user, HOUR).await.expect("create");
        assert_eq!(token.len(), TOKEN_CHARS);
        assert_eq!(session.csrf.len(), CSRF_CHARS);

        let found = store
            .ui_session(&token, HOUR)
            .await
            .expect("lookup")
            .expect("live");
        assert_eq!(found.user, user);
        assert_eq!(found.csrf, session.csrf);

        let mut wrong = token.clone();
        wrong.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
        assert_eq!(store.ui_session(&wrong, HOUR).await.expect("lookup"), None);
        assert_eq!(store.ui_session("short", HOUR).await.expect("lookup"), None);

        assert!(store.end_ui_session(&token).await.expect("logout"));
        assert_eq!(store.ui_session(&token, HOUR).await.expect("lookup"), None);
    }

    #[tokio::test]
    async fn removing_a_user_ends_their_sessions_and_an_ended_session_is_gone() {
        let (_dir, store) = temp_store().await;
        let user = store
            .add_user("root@example.com", Role::Admin, None, PASSWORD)
            .await
            .expect("user");
        let (expired, _) = store
            .create_ui_session(&user, Duration::ZERO)
            .await
            .expect("create");
        assert_eq!(
            store.ui_session(&expired, HOUR).await.expect("lookup"),
            None,
            "ttl 0 has ended"
        );

        let (token, _) = store.create_ui_session(&user, HOUR).await.expect("create");
        assert!(store.remove_user("root@example.com").await.expect("remove"));
        assert_eq!(store.ui_session(&token, HOUR).await.expect("lookup"), None);
    }
}
