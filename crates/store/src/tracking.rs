//! Which recipients have opened or clicked a message before: the first open
//! and the first click of each recipient of each message are kept, so that
//! every `opened` and `clicked` event can say whether it is the first (the
//! `unique` of its details, which statistics count) — right across restarts
//! and for every process sharing the database, which an in-memory set is not.

use crate::error::StoreError;
use crate::events::EventKind;
use crate::store::Store;

/// What a recipient did with a tracked message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engagement {
    /// Loaded the open-tracking pixel.
    Opened,
    /// Followed a tracked link.
    Clicked,
}

impl Engagement {
    /// The event it makes.
    pub fn event_kind(self) -> EventKind {
        match self {
            Engagement::Opened => EventKind::Opened,
            Engagement::Clicked => EventKind::Clicked,
        }
    }
}

impl Store {
    /// Notes an open or a click of recipient `rcpt` (its index) of message
    /// `message_id`, and answers whether it is that recipient's first of its
    /// kind. One statement: of racing callers exactly one hears `true`.
    pub async fn first_engagement(
        &self,
        account_id: i64,
        message_id: &str,
        rcpt: u16,
        kind: Engagement,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        // ON CONFLICT DO NOTHING: SQLite's INSERT OR IGNORE in words
        // PostgreSQL shares; the row count tells who inserted.
        let done = sqlx::query(
            "INSERT INTO tracking_firsts (account_id, message_id, rcpt, kind, at_ms) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account_id, message_id, rcpt, kind) DO NOTHING",
        )
        .bind(account_id)
        .bind(message_id)
        .bind(i64::from(rcpt))
        .bind(kind.event_kind().as_str())
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::Engagement;
    use crate::testutil::temp_store;

    #[tokio::test]
    async fn only_the_first_of_each_kind_per_recipient_is_first() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.unwrap();
        let other = store.create_account("other").await.unwrap();
        let first = |account, rcpt, kind| {
            let store = store.clone();
            async move {
                store
                    .first_engagement(account, "m1", rcpt, kind, 1_000)
                    .await
                    .unwrap()
            }
        };
        assert!(first(acme.id, 0, Engagement::Opened).await);
        assert!(!first(acme.id, 0, Engagement::Opened).await);
        assert!(first(acme.id, 0, Engagement::Clicked).await);
        assert!(!first(acme.id, 0, Engagement::Clicked).await);
        assert!(first(acme.id, 1, Engagement::Opened).await);
        assert!(first(other.id, 0, Engagement::Opened).await);

        // Racing callers: exactly one is first.
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .first_engagement(acme.id, "m2", 0, Engagement::Opened, 2_000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut firsts = 0;
        for racer in racers {
            firsts += usize::from(racer.await.unwrap());
        }
        assert_eq!(firsts, 1);

        // The rows go with their account.
        sqlx::query("DELETE FROM accounts WHERE name = 'other'")
            .execute(&store.pool)
            .await
            .unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tracking_firsts")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(count, 4);
    }
}
