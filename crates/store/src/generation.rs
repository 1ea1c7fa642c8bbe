//! The change counter: a number that moves whenever accounts, credentials,
//! domains, DKIM keys or API keys change, so a running server can poll one row
//! and reload its in-memory caches only when something changed.
//!
//! The counter is bumped by triggers (migration 0003) inside the transaction
//! that makes the change, so writers (this crate, another process, a hand-made
//! SQL edit) cannot forget it. This module only reads it.

use crate::error::StoreError;
use crate::store::Store;

impl Store {
    /// The current change generation. It only grows; two equal readings mean
    /// nothing in those tables changed in between (the value itself has no
    /// meaning beyond that).
    pub async fn generation(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM counters WHERE name = $1")
                .bind("generation")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::testutil::temp_store;

    /// Asserts that the generation grew since `last`, and moves `last` on.
    async fn check(what: &str, store: &Store, last: &mut i64) {
        let now = store.generation().await.expect("generation");
        assert!(now > *last, "{what}: {now} after {last}");
        *last = now;
    }

    #[tokio::test]
    async fn every_change_to_cached_tables_moves_the_generation() {
        let (_dir, store) = temp_store().await;
        let mut last = store.generation().await.expect("generation");

        store.create_account("acme").await.expect("account");
        check("create_account", &store, &mut last).await;
        store
            .add_credential("acme", "user", "correct horse battery")
            .await
            .expect("credential");
        check("add_credential", &store, &mut last).await;
        store
            .add_domain("acme", "acme.example", Vec::new())
            .await
            .expect("domain");
        check("add_domain", &store, &mut last).await;
        let (key, _secret) = store.create_api_key("acme").await.expect("api key");
        check("create_api_key", &store, &mut last).await;
        assert!(store.revoke_api_key(&key.prefix).await.expect("revoke"));
        check("revoke_api_key", &store, &mut last).await;
        assert!(store.remove_domain("acme.example").await.expect("remove"));
        check("remove_domain", &store, &mut last).await;
        assert!(store.remove_credential("user").await.expect("remove"));
        check("remove_credential", &store, &mut last).await;
    }

    #[tokio::test]
    async fn reads_and_failed_changes_leave_it_alone() {
        let (_dir, store) = temp_store().await;
        store.create_account("acme").await.expect("account");
        let before = store.generation().await.expect("generation");
        store.list_accounts().await.expect("list");
        store.ensure_account("acme").await.expect("ensure existing");
        store
            .create_account("acme")
            .await
            .expect_err("duplicate account");
        assert!(!store.revoke_api_key("crt_nothing1").await.expect("revoke"));
        assert_eq!(store.generation().await.expect("generation"), before);
    }
}
