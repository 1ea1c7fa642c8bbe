//! Sending domains and their DKIM keys. A domain belongs to exactly one account
//! (the name is unique over all accounts), and its keys are stored with it.
//!
//! This module stores keys it is given; it does not generate keys, build DNS
//! records or sign anything. Private keys are secrets: they never appear in
//! `Debug` output, serialized values or logs.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::accounts::normalize_name;
use crate::error::{StoreError, UnknownValue, is_unique_violation};
use crate::store::{Store, from_unix, now_unix};

/// The signature algorithm of a DKIM key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    /// RSA with SHA-256 (`rsa-sha256`).
    Rsa,
    /// Ed25519 with SHA-256 (`ed25519-sha256`, RFC 8463).
    Ed25519,
}

impl DkimAlgorithm {
    /// The stored name, also the `k=` tag of the DNS record.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for DkimAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DkimAlgorithm {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<DkimAlgorithm, UnknownValue> {
        match s {
            "rsa" => Ok(DkimAlgorithm::Rsa),
            "ed25519" => Ok(DkimAlgorithm::Ed25519),
            other => Err(UnknownValue {
                what: "dkim algorithm",
                value: other.to_owned(),
            }),
        }
    }
}

/// A DKIM key to store with a new domain.
#[derive(Clone)]
pub struct NewDkimKey {
    /// The selector (`s=` tag): DNS labels, stored lowercase.
    pub selector: String,
    /// The key's algorithm.
    pub algorithm: DkimAlgorithm,
    /// The private key, PKCS#8 DER.
    pub private_key: Vec<u8>,
    /// The public key as the base64 value of the DNS record's `p=` tag.
    pub public_key: String,
}

impl fmt::Debug for NewDkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDkimKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_key", &Redacted(self.private_key.len()))
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Where a key is in its life: made and waiting for its DNS record
/// (`pending`), signing (`active`), or replaced (`retired`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Pending,
    Active,
    Retired,
}

impl KeyState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

impl FromStr for KeyState {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<KeyState, UnknownValue> {
        match s {
            "pending" => Ok(KeyState::Pending),
            "active" => Ok(KeyState::Active),
            "retired" => Ok(KeyState::Retired),
            other => Err(UnknownValue {
                what: "dkim key state",
                value: other.to_owned(),
            }),
        }
    }
}

/// A stored DKIM key.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DkimKey {
    /// Database id.
    pub id: i64,
    /// The selector (`s=` tag), lowercase.
    pub selector: String,
    /// The key's algorithm.
    pub algorithm: DkimAlgorithm,
    /// The private key, PKCS#8 DER. Never serialized.
    #[serde(skip)]
    pub private_key: Vec<u8>,
    /// The public key as the base64 value of the DNS record's `p=` tag.
    pub public_key: String,
    /// When the key was stored (whole seconds, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Whether it signs: only `active` keys do.
    pub state: KeyState,
    /// When it stopped signing.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retired_at: Option<OffsetDateTime>,
}

impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKey")
            .field("id", &self.id)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_key", &Redacted(self.private_key.len()))
            .field("public_key", &self.public_key)
            .field("created_at", &self.created_at)
            .field("state", &self.state)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output: only its length shows.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0)
    }
}

/// A sending domain with its DKIM keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Domain {
    /// Database id.
    pub id: i64,
    /// The owning account's id.
    pub account_id: i64,
    /// The owning account's name.
    pub account: String,
    /// The domain name, lowercase.
    pub name: String,
    /// When the domain was added (whole seconds, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its DKIM keys, oldest first.
    pub keys: Vec<DkimKey>,
}

impl Domain {
    /// Reads the `id, account_id, account, name, created_at` columns; keys are
    /// added by the caller.
    fn from_row(row: &AnyRow) -> Result<Domain, StoreError> {
        Ok(Domain {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            account: row.try_get("account")?,
            name: row.try_get("name")?,
            created_at: from_unix(row.try_get("created_at")?)?,
            keys: Vec::new(),
        })
    }
}

impl DkimKey {
    /// Reads the columns of `KEY_COLUMNS`.
    fn from_row(row: &AnyRow) -> Result<DkimKey, StoreError> {
        Ok(DkimKey {
            id: row.try_get("id")?,
            selector: row.try_get("selector")?,
            algorithm: row.try_get::<String, _>("algorithm")?.parse()?,
            private_key: row.try_get("private_key")?,
            public_key: row.try_get("public_key")?,
            created_at: from_unix(row.try_get("created_at")?)?,
            state: row.try_get::<String, _>("state")?.parse()?,
            retired_at: row
                .try_get::<Option<i64>, _>("retired_at")?
                .map(from_unix)
                .transpose()?,
        })
    }
}

/// Checks a domain name and returns it lowercased, the form it is stored in.
fn normalize_domain(domain: &str) -> Result<String, StoreError> {
    // Address literals are valid in an envelope but cannot carry DKIM keys or
    // SPF records.
    if domain.starts_with('[') || !carteiro_mail::address::is_valid_domain(domain) {
        return Err(StoreError::InvalidDomain(domain.to_owned()));
    }
    Ok(carteiro_mail::address::normalize_domain(domain))
}

/// Checks the keys of a new domain; returns their selectors lowercased.
fn check_keys(keys: &[NewDkimKey]) -> Result<Vec<String>, StoreError> {
    let mut selectors: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        let selector = key.selector.to_ascii_lowercase();
        let valid = key.selector.is_ascii()
            && !key.selector.starts_with('[')
            && carteiro_mail::address::is_valid_domain(&key.selector);
        if !valid {
            return Err(StoreError::InvalidDkimKey(format!(
                "invalid selector {:?}",
                key.selector
            )));
        }
        if selectors.contains(&selector) {
            return Err(StoreError::InvalidDkimKey(format!(
                "selector {selector:?} is given twice"
            )));
        }
        if key.private_key.is_empty() || key.public_key.is_empty() {
            return Err(StoreError::InvalidDkimKey(format!(
                "the key for selector {selector:?} is empty"
            )));
        }
        selectors.push(selector);
    }
    Ok(selectors)
}

const DOMAIN_COLUMNS: &str = "d.id, d.account_id, a.name AS account, d.name, d.created_at";
const KEY_COLUMNS: &str = "k.id, k.domain_id, k.selector, k.algorithm, k.private_key, \
                           k.public_key, k.created_at, k.state, k.retired_at";

impl Store {
    /// Registers a sending domain for an account, with its DKIM keys, in one
    /// transaction. The name is stored lowercase.
    ///
    /// Fails with [`StoreError::InvalidName`], [`StoreError::InvalidDomain`],
    /// [`StoreError::InvalidDkimKey`], [`StoreError::NoSuchAccount`] or
    /// [`StoreError::DomainExists`] when any account has the domain.
    pub async fn add_domain(
        &self,
        account: &str,
        domain: &str,
        keys: Vec<NewDkimKey>,
    ) -> Result<Domain, StoreError> {
        let account = normalize_name(account)?;
        let name = normalize_domain(domain)?;
        let selectors = check_keys(&keys)?;
        let created_at = now_unix();
        let mut tx = self.pool.begin().await?;
        // A write first, with the account looked up inside it: the transaction
        // takes the write lock at once (no read snapshot to upgrade, which
        // SQLite refuses when another process wrote in between).
        let row = sqlx::query(
            "INSERT INTO domains (account_id, name, created_at) \
             SELECT id, $2, $3 FROM accounts WHERE name = $1 \
             RETURNING id, account_id, name, created_at",
        )
        .bind(&account)
        .bind(&name)
        .bind(created_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::DomainExists(name.clone())
            } else {
                error.into()
            }
        })?
        .ok_or_else(|| StoreError::NoSuchAccount(account.clone()))?;
        let mut stored = Domain {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            account: account.clone(),
            name: row.try_get("name")?,
            created_at: from_unix(row.try_get("created_at")?)?,
            keys: Vec::with_capacity(keys.len()),
        };
        for (key, selector) in keys.into_iter().zip(selectors) {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO dkim_keys \
                 (domain_id, selector, algorithm, private_key, public_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(stored.id)
            .bind(&selector)
            .bind(key.algorithm.as_str())
            .bind(&key.private_key)
            .bind(&key.public_key)
            .bind(created_at)
            .fetch_one(&mut *tx)
            .await?;
            stored.keys.push(DkimKey {
                id,
                selector,
                algorithm: key.algorithm,
                private_key: key.private_key,
                public_key: key.public_key,
                created_at: stored.created_at,
                state: KeyState::Active,
                retired_at: None,
            });
        }
        tx.commit().await?;
        tracing::info!(%account, domain = %stored.name, keys = stored.keys.len(), "domain added");
        Ok(stored)
    }

    /// Adds a rotation's new keys to a domain, `pending`: they do not sign
    /// until [`Store::activate_pending_keys`]. Returns the domain with all its
    /// keys.
    ///
    /// Fails with [`StoreError::InvalidDkimKey`] (a bad or taken selector, or
    /// a rotation already waiting) or [`StoreError::InvalidDomain`] when it is
    /// not a sending domain.
    pub async fn add_pending_keys(
        &self,
        domain: &str,
        keys: Vec<NewDkimKey>,
    ) -> Result<Domain, StoreError> {
        let name = normalize_domain(domain)?;
        let selectors = check_keys(&keys)?;
        let Some(found) = self.domain(&name).await? else {
            return Err(StoreError::InvalidDomain(name));
        };
        if found.keys.iter().any(|k| k.state == KeyState::Pending) {
            return Err(StoreError::InvalidDkimKey(format!(
                "{name} has new keys waiting already: activate them first"
            )));
        }
        let created_at = now_unix();
        let mut tx = self.pool.begin().await?;
        for (key, selector) in keys.into_iter().zip(selectors) {
            sqlx::query(
                "INSERT INTO dkim_keys \
                 (domain_id, selector, algorithm, private_key, public_key, created_at, state) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
            )
            .bind(found.id)
            .bind(&selector)
            .bind(key.algorithm.as_str())
            .bind(&key.private_key)
            .bind(&key.public_key)
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .map_err(|error| {
                if is_unique_violation(&error) {
                    StoreError::InvalidDkimKey(format!("selector {selector:?} is taken"))
                } else {
                    error.into()
                }
            })?;
        }
        tx.commit().await?;
        tracing::info!(domain = %name, "new dkim keys made, pending");
        self.domain(&name)
            .await?
            .ok_or(StoreError::InvalidDomain(name))
    }

    /// Makes a domain's pending keys sign and retires the keys that signed,
    /// in one transaction. Returns whether there were pending keys.
    pub async fn activate_pending_keys(&self, domain: &str) -> Result<bool, StoreError> {
        let Some(found) = self.domain(domain).await? else {
            return Ok(false);
        };
        if !found.keys.iter().any(|k| k.state == KeyState::Pending) {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE dkim_keys SET state = 'retired', retired_at = $2 \
             WHERE domain_id = $1 AND state = 'active'",
        )
        .bind(found.id)
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
        let activated = sqlx::query(
            "UPDATE dkim_keys SET state = 'active' WHERE domain_id = $1 AND state = 'pending'",
        )
        .bind(found.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        tracing::info!(domain = %found.name, keys = activated, "dkim keys rotated: the new keys sign");
        Ok(activated > 0)
    }

    /// Deletes a domain's retired keys (once their DNS records may go).
    /// Returns how many.
    pub async fn remove_retired_keys(&self, domain: &str) -> Result<u64, StoreError> {
        let Some(found) = self.domain(domain).await? else {
            return Ok(0);
        };
        Ok(
            sqlx::query("DELETE FROM dkim_keys WHERE domain_id = $1 AND state = 'retired'")
                .bind(found.id)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Finds a domain (case-insensitive) with its keys. A name that could not
    /// be valid is simply not found.
    pub async fn domain(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        let Ok(name) = normalize_domain(name) else {
            return Ok(None);
        };
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains d JOIN accounts a ON a.id = d.account_id \
             WHERE d.name = $1"
        )))
        .bind(&name)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut domain = Domain::from_row(&row)?;
        domain.keys = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM dkim_keys k WHERE k.domain_id = $1 ORDER BY k.id"
        )))
        .bind(domain.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(DkimKey::from_row)
        .collect::<Result<_, _>>()?;
        Ok(Some(domain))
    }

    /// Lists domains with their keys, by name: one account's, or every
    /// account's when `account` is `None`.
    ///
    /// Fails with [`StoreError::NoSuchAccount`] for an unknown account (an
    /// account without domains gives an empty list).
    pub async fn list_domains(&self, account: Option<&str>) -> Result<Vec<Domain>, StoreError> {
        let account_id = match account {
            Some(name) => match self.account(name).await? {
                Some(found) => Some(found.id),
                None => return Err(StoreError::NoSuchAccount(name.to_owned())),
            },
            None => None,
        };
        // `$1 IS NULL` lets one statement text serve both cases.
        let mut domains = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains d JOIN accounts a ON a.id = d.account_id \
             WHERE $1 IS NULL OR d.account_id = $1 ORDER BY d.name"
        )))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(Domain::from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let keys = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM dkim_keys k JOIN domains d ON d.id = k.domain_id \
             WHERE $1 IS NULL OR d.account_id = $1 ORDER BY k.id"
        )))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let position: HashMap<i64, usize> = domains
            .iter()
            .enumerate()
            .map(|(i, domain)| (domain.id, i))
            .collect();
        for row in &keys {
            let domain_id: i64 = row.try_get("domain_id")?;
            // A key whose domain was added between the two reads is skipped.
            if let Some(&i) = position.get(&domain_id) {
                domains[i].keys.push(DkimKey::from_row(row)?);
            }
        }
        Ok(domains)
    }

    /// Removes a domain (case-insensitive) and its keys. Returns whether it
    /// existed.
    pub async fn remove_domain(&self, name: &str) -> Result<bool, StoreError> {
        let Ok(name) = normalize_domain(name) else {
            return Ok(false);
        };
        let removed = sqlx::query("DELETE FROM domains WHERE name = $1")
            .bind(&name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        if removed {
            tracing::info!(domain = %name, "domain removed");
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
