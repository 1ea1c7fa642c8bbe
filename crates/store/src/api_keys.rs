//! HTTP API keys: `crt_` and 40 random alphanumerics, shown once and stored
//! only as their SHA-256. Keys are high-entropy, so a fast hash and an indexed
//! lookup by hash are right (unlike passwords, nothing can be guessed from a
//! fast hash of 238 random bits).
//!
//! This module checks keys; it does not decide what a request may do, and it
//! never logs or returns a key after creating it.

use std::time::Duration;

use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::accounts::{Account, normalize_name};
use crate::error::{StoreError, is_unique_violation};
use crate::store::{Store, from_unix, now_unix};

/// What every key starts with, so it can be recognised (by people and secret
/// scanners) and told from other credentials.
const KEY_PREFIX: &str = "crt_";

/// Random characters after [`KEY_PREFIX`]: 40 of 62 symbols, about 238 bits.
const RANDOM_CHARS: usize = 40;

/// Random characters kept in the displayed prefix.
const DISPLAY_CHARS: usize = 8;

/// The alphabet of the random part.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `last_used_at` is written at most this often per key, so a busy API client
/// does not turn every request into a database write.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// Attempts at a key whose display prefix is not taken yet (a clash among
/// 62^8 prefixes is not expected in practice).
const CREATE_ATTEMPTS: usize = 3;

/// An API key as listed: never with the key or its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Database id.
    pub id: i64,
    /// The account the key acts for.
    pub account_id: i64,
    /// That account's name.
    pub account: String,
    /// `crt_` and the key's first 8 random characters: names the key in lists
    /// and for revocation.
    pub prefix: String,
    /// When the key was created (whole seconds, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the key last authenticated a request, to within a minute; `None`
    /// if never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl ApiKey {
    fn from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
        Ok(ApiKey {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            account: row.try_get("account")?,
            prefix: row.try_get("prefix")?,
            created_at: from_unix(row.try_get("created_at")?)?,
            last_used_at: row
                .try_get::<Option<i64>, _>("last_used_at")?
                .map(from_unix)
                .transpose()?,
        })
    }
}

/// Draws a new key from the operating system's random number generator.
///
/// # Panics
///
/// If the operating system cannot provide random bytes (the same contract as
/// [`generate_password`](crate::generate_password)).
fn generate_key() -> String {
    let mut key = String::with_capacity(KEY_PREFIX.len() + RANDOM_CHARS);
    key.push_str(KEY_PREFIX);
    let mut bytes = [0u8; 64];
    while key.len() < KEY_PREFIX.len() + RANDOM_CHARS {
        #[allow(clippy::expect_used)] // documented above: no secret can be made without it
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system random number generator failed");
        // Rejection sampling: 248 = 4 * 62, so bytes below it map to the
        // alphabet without bias.
        for &b in bytes.iter().filter(|&&b| b < 248) {
            if key.len() == KEY_PREFIX.len() + RANDOM_CHARS {
                break;
            }
            key.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    key
}

/// Whether `secret` has the shape of a key; anything else is refused before
/// hashing or querying.
fn looks_like_key(secret: &str) -> bool {
    secret.len() == KEY_PREFIX.len() + RANDOM_CHARS
        && secret.starts_with(KEY_PREFIX)
        && secret[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// The stored form of a key (and of a dashboard session token): lowercase
/// hex SHA-256.
pub(crate) fn hash_key(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The displayed prefix of a key.
fn display_prefix(secret: &str) -> &str {
    &secret[..KEY_PREFIX.len() + DISPLAY_CHARS]
}

impl Store {
    /// Creates an API key for an account. Returns the key's record and the key
    /// itself, which is not stored and cannot be shown again.
    ///
    /// Fails with [`StoreError::InvalidName`] or [`StoreError::NoSuchAccount`].
    pub async fn create_api_key(&self, account: &str) -> Result<(ApiKey, String), StoreError> {
        let account = normalize_name(account)?;
        for _ in 0..CREATE_ATTEMPTS {
            let secret = generate_key();
            let inserted = sqlx::query(
                "INSERT INTO api_keys (account_id, prefix, key_hash, created_at) \
                 SELECT id, $2, $3, $4 FROM accounts WHERE name = $1 \
                 RETURNING id, account_id, $1 AS account, prefix, created_at, last_used_at",
            )
            .bind(&account)
            .bind(display_prefix(&secret))
            .bind(hash_key(&secret))
            .bind(now_unix())
            .fetch_optional(&self.pool)
            .await;
            match inserted {
                Ok(Some(row)) => {
                    let key = ApiKey::from_row(&row)?;
                    tracing::info!(%account, prefix = %key.prefix, "api key created");
                    return Ok((key, secret));
                }
                Ok(None) => return Err(StoreError::NoSuchAccount(account)),
                // A taken prefix (or, impossibly, hash): draw another key.
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StoreError::Corrupt(
            "could not draw an api key with an unused prefix".to_owned(),
        ))
    }

    /// Checks an API key. Returns its account, or `None` for a wrong, malformed
    /// or revoked key. One indexed lookup; `last_used_at` is refreshed in the
    /// background at most once a minute per key, so verifying does not wait
    /// for a write.
    pub async fn verify_api_key(&self, secret: &str) -> Result<Option<Account>, StoreError> {
        if !looks_like_key(secret) {
            return Ok(None);
        }
        let Some(row) = sqlx::query(
            "SELECT k.id AS key_id, k.last_used_at, a.id, a.name, a.created_at \
             FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1",
        )
        .bind(hash_key(secret))
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let account = Account::from_row(&row)?;
        let key_id: i64 = row.try_get("key_id")?;
        let last_used: Option<i64> = row.try_get("last_used_at")?;
        let now = now_unix();
        let stale_before = now - LAST_USED_RESOLUTION.as_secs().cast_signed();
        if last_used.is_none_or(|at| at < stale_before) {
            self.touch_api_key(key_id, now, stale_before);
        }
        Ok(Some(account))
    }

    /// Sets a key's `last_used_at` on a spawned task. Another request may have
    /// done it meanwhile: the condition makes that a no-op. A failure only
    /// costs the bookkeeping, so it is logged, not returned.
    fn touch_api_key(&self, key_id: i64, now: i64, stale_before: i64) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let result = sqlx::query(
                "UPDATE api_keys SET last_used_at = $2 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(key_id)
            .bind(now)
            .bind(stale_before)
            .execute(&pool)
            .await;
            if let Err(error) = result {
                tracing::debug!(%error, key_id, "could not record api key use");
            }
        });
    }

    /// Lists an account's API keys, oldest first.
    ///
    /// Fails with [`StoreError::NoSuchAccount`] for an unknown account.
    pub async fn list_api_keys(&self, account: &str) -> Result<Vec<ApiKey>, StoreError> {
        let Some(found) = self.account(account).await? else {
            return Err(StoreError::NoSuchAccount(account.to_owned()));
        };
        sqlx::query(
            "SELECT k.id, k.account_id, a.name AS account, k.prefix, k.created_at, \
             k.last_used_at FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.account_id = $1 ORDER BY k.id",
        )
        .bind(found.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ApiKey::from_row)
        .collect()
    }

    /// Revokes the key with this display prefix (`crt_` and 8 characters, case
    /// sensitive). Returns whether one was revoked.
    pub async fn revoke_api_key(&self, prefix: &str) -> Result<bool, StoreError> {
        let revoked = sqlx::query("DELETE FROM api_keys WHERE prefix = $1")
            .bind(prefix)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        if revoked {
            tracing::info!(%prefix, "api key revoked");
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_store;

    #[test]
    fn keys_have_the_documented_shape_and_differ() {
        let key = generate_key();
        assert_eq!(key.len(), 44);
        assert!(looks_like_key(&key), "{key}");
        assert_ne!(key, generate_key());
        assert_eq!(display_prefix(&key).len(), 12);
        // 40 characters from 62 symbols: every symbol turns up over many keys.
        let seen: std::collections::HashSet<u8> = (0..200)
            .flat_map(|_| generate_key().into_bytes().into_iter().skip(4))
            .collect();
        assert_eq!(seen.len(), 62);
    }

    #[tokio::test]
    async fn creates_verifies_lists_and_revokes() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let (key, secret) = store.create_api_key("ACME").await.expect("create");
        assert_eq!((key.account_id, key.account.as_str()), (acme.id, "acme"));
        assert_eq!(key.prefix, secret[..12]);
        assert_eq!(key.last_used_at, None);

        let verified = store.verify_api_key(&secret).await.expect("verify");
        assert_eq!(verified, Some(acme.clone()));
        let mut wrong = secret.clone();
        wrong.replace_range(43.., if secret.ends_with('a') { "b" } else { "a" });
        for bad in [
            wrong.as_str(),
            "",
            "crt_",
            &secret[..43],
            &secret.to_uppercase(),
        ] {
            assert_eq!(
                store.verify_api_key(bad).await.expect("verify"),
                None,
                "{bad}"
            );
        }

        let (second, _) = store.create_api_key("acme").await.expect("create");
        let listed = store.list_api_keys("acme").await.expect("list");
        let prefixes: Vec<_> = listed.iter().map(|k| k.prefix.as_str()).collect();
        assert_eq!(prefixes, [key.prefix.as_str(), second.prefix.as_str()]);

        assert!(store.revoke_api_key(&key.prefix).await.expect("revoke"));
        assert!(!store.revoke_api_key(&key.prefix).await.expect("again"));
        assert_eq!(store.verify_api_key(&secret).await.expect("verify"), None);
        assert_eq!(store.list_api_keys("acme").await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn refuses_unknown_accounts() {
        let (_dir, store) = temp_store().await;
        let created = store.create_api_key("ghost").await;
        assert!(
            matches!(created, Err(StoreError::NoSuchAccount(_))),
            "{created:?}"
        );
        let bad = store.create_api_key("bad name").await;
        assert!(matches!(bad, Err(StoreError::InvalidName(_))), "{bad:?}");
        let listed = store.list_api_keys("ghost").await;
        assert!(
            matches!(listed, Err(StoreError::NoSuchAccount(_))),
            "{listed:?}"
        );
    }

    #[tokio::test]
    async fn stores_the_hash_not_the_key() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("account");
        let (_, secret) = store.create_api_key("acme").await.expect("create");
        let (prefix, hash): (String, String) =
            sqlx::query_as("SELECT prefix, key_hash FROM api_keys")
                .fetch_one(&store.pool)
                .await
                .expect("row");
        assert_eq!(hash, hash_key(&secret));
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(!hash.contains(&secret[12..]) && !prefix.contains(&secret[12..]));
        // Nothing anywhere in the file holds the secret part of the key.
        store.close().await;
        if crate::testutil::on_postgres() {
            return;
        }
        let bytes = std::fs::read(_dir.path().join("carteiro.db")).expect("read db");
        let wal = std::fs::read(_dir.path().join("carteiro.db-wal")).unwrap_or_default();
        let needle = &secret.as_bytes()[12..];
        for file in [&bytes, &wal] {
            assert!(!file.windows(needle.len()).any(|w| w == needle));
        }
    }

    #[tokio::test]
    async fn verifying_records_the_last_use_once_a_minute() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("account");
        let (key, secret) = store.create_api_key("acme").await.expect("create");
        let generation = store.generation().await.expect("generation");
        store.verify_api_key(&secret).await.expect("verify");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let used = loop {
            let listed = store.list_api_keys("acme").await.expect("list");
            if let Some(at) = listed[0].last_used_at {
                break at;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "last_used_at never set"
            );
            tokio::task::yield_now().await;
        };
        assert!(used >= key.created_at);
        // Bookkeeping is not a change servers need to reload for.
        assert_eq!(store.generation().await.expect("generation"), generation);
    }
}
