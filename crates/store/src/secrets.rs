//! Named secrets of the installation: random keys that every process of one
//! installation must share (the server that signs unsubscribe links and the
//! one that checks them may be restarted in between), made on first use.
//!
//! This module makes and keeps the bytes; it does not know what they sign,
//! and never logs or prints them.

use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::error::StoreError;
use crate::store::{Store, now_unix};

/// Length of a new secret: 256 bits.
const SECRET_BYTES: usize = 32;

/// Reads a stored secret.
async fn read_secret(store: &Store, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&store.pool)
            .await?,
    )
}

impl Store {
    /// The secret called `name`: 32 bytes from the operating system's random
    /// number generator, made the first time any process asks and the same
    /// for every caller afterwards. When several ask at once, the first
    /// insert wins and everyone reads that one back.
    ///
    /// Fails with [`StoreError::Random`] when no random bytes can be had.
    pub async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        if let Some(value) = read_secret(self, name).await? {
            return Ok(value);
        }
        let mut value = vec![0u8; SECRET_BYTES];
        OsRng
            .try_fill_bytes(&mut value)
            .map_err(|error| StoreError::Random(error.to_string()))?;
        // ON CONFLICT DO NOTHING (SQLite's INSERT OR IGNORE, in words
        // PostgreSQL shares) turns a race into a no-op for the later writers.
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&value)
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        read_secret(self, name).await?.ok_or_else(|| {
            // Only a hand-made delete between the two statements gets here.
            StoreError::Corrupt(format!("secret {name:?} vanished after it was stored"))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::temp_store;

    #[tokio::test]
    async fn a_secret_is_made_once_and_kept() {
        let (dir, store) = temp_store().await;
        let generation = store.generation().await.expect("generation");
        let first = store.secret("unsubscribe").await.expect("secret");
        assert_eq!(first.len(), 32);
        assert_ne!(first, vec![0u8; 32]);
        assert_eq!(store.secret("unsubscribe").await.expect("again"), first);
        let other = store.secret("tracking").await.expect("other name");
        assert_ne!(other, first, "each name has its own secret");
        assert_eq!(store.generation().await.expect("generation"), generation);

        store.close().await;
        drop(store);
        let reopened = crate::testutil::another_handle(&dir).await;
        assert_eq!(
            reopened.secret("unsubscribe").await.expect("reopened"),
            first
        );
        assert_eq!(reopened.secret("tracking").await.expect("reopened"), other);
    }

    #[tokio::test]
    async fn concurrent_first_callers_get_the_same_secret() {
        let (dir, store) = temp_store().await;
        // A second pool on the same file stands in for another process.
        let other = crate::testutil::another_handle(&dir).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 {
                    store.clone()
                } else {
                    other.clone()
                };
                tokio::spawn(async move { store.secret("shared").await })
            })
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.expect("join").expect("secret"));
        }
        values.dedup();
        assert_eq!(values.len(), 1, "every caller got the same secret");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secrets")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(rows, 1);
    }
}
