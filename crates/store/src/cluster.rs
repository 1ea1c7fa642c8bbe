//! The nodes sharing the store (`cluster_nodes`): each running server writes
//! a heartbeat row every few seconds with its queue's size, and marks it
//! stopped when it shuts down cleanly. `carteiro cluster status` reads them;
//! the count of live nodes is what a node divides shared limits by. A
//! [`Lease`] keeps a task (the webhook dispatcher) on one node at a time.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::backend::Backend;
use crate::error::StoreError;
use crate::store::{Store, now_unix_ms};

/// A node silent for longer than this is not counted as live (three missed
/// heartbeats at the server's five seconds).
pub const NODE_SILENT_AFTER_MS: i64 = 15_000;

/// What a node last said of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Its `[store] node_name`.
    pub name: String,
    /// The Carteiro version it runs.
    pub version: String,
    /// When its server started, unix milliseconds.
    pub started_at_ms: i64,
    /// Its last heartbeat, unix milliseconds.
    pub heartbeat_at_ms: i64,
    /// When it shut down cleanly, if it did since its last start.
    pub stopped_at_ms: Option<i64>,
    /// Messages in its queue at the last heartbeat.
    pub queued_messages: i64,
    /// Recipients still to deliver in its queue at the last heartbeat.
    pub queued_recipients: i64,
}

impl NodeStatus {
    fn from_row(row: &AnyRow) -> Result<NodeStatus, StoreError> {
        Ok(NodeStatus {
            name: row.try_get("name")?,
            version: row.try_get("version")?,
            started_at_ms: row.try_get("started_at_ms")?,
            heartbeat_at_ms: row.try_get("heartbeat_at_ms")?,
            stopped_at_ms: row.try_get("stopped_at_ms")?,
            queued_messages: row.try_get("queued_messages")?,
            queued_recipients: row.try_get("queued_recipients")?,
        })
    }

    /// Whether the node counts as running at `now_ms`: not stopped, and heard
    /// from within [`NODE_SILENT_AFTER_MS`].
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.stopped_at_ms.is_none() && now_ms - self.heartbeat_at_ms <= NODE_SILENT_AFTER_MS
    }
}

const NODE_COLUMNS: &str = "name, version, started_at_ms, heartbeat_at_ms, stopped_at_ms, \
     queued_messages, queued_recipients";

impl Store {
    /// Records that node `name` is running (now), with its version, start
    /// time and queue size; clears a stop mark of an earlier run.
    pub async fn heartbeat(
        &self,
        name: &str,
        version: &str,
        started_at_ms: i64,
        queued_messages: u64,
        queued_recipients: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cluster_nodes (name, version, started_at_ms, heartbeat_at_ms, \
             stopped_at_ms, queued_messages, queued_recipients) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
             started_at_ms = excluded.started_at_ms, heartbeat_at_ms = excluded.heartbeat_at_ms, \
             stopped_at_ms = NULL, queued_messages = excluded.queued_messages, \
             queued_recipients = excluded.queued_recipients",
        )
        .bind(name)
        .bind(version)
        .bind(started_at_ms)
        .bind(now_unix_ms())
        .bind(i64::try_from(queued_messages).unwrap_or(i64::MAX))
        .bind(i64::try_from(queued_recipients).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks node `name` stopped (a clean shutdown), with its last queue size.
    pub async fn node_stopped(
        &self,
        name: &str,
        queued_messages: u64,
        queued_recipients: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cluster_nodes SET stopped_at_ms = $2, heartbeat_at_ms = $2, \
             queued_messages = $3, queued_recipients = $4 WHERE name = $1",
        )
        .bind(name)
        .bind(now_unix_ms())
        .bind(i64::try_from(queued_messages).unwrap_or(i64::MAX))
        .bind(i64::try_from(queued_recipients).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every node that ever ran on this store, by name.
    pub async fn cluster_nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {NODE_COLUMNS} FROM cluster_nodes ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(NodeStatus::from_row)
        .collect()
    }

    /// How many nodes are live now (at least 1: the caller is running).
    pub async fn live_nodes(&self) -> Result<u32, StoreError> {
        let now = now_unix_ms();
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cluster_nodes \
             WHERE stopped_at_ms IS NULL AND heartbeat_at_ms >= $1",
        )
        .bind(now - NODE_SILENT_AFTER_MS)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
    }

    /// Forgets node `name` (one taken out of the cluster for good).
    pub async fn forget_node(&self, name: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM cluster_nodes WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}

/// A task that must run on one node of the cluster at a time (the webhook
/// dispatcher): on PostgreSQL, a session-level advisory lock held on a
/// connection of its own, so it is released as soon as the holder's process
/// dies or its connection drops, and another node takes it at its next
/// [`Lease::hold`]. On SQLite there is one node: always held.
pub struct Lease {
    store: Store,
    key: i64,
    connection: Option<AnyConnection>,
    held: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("held", &self.held)
            .finish()
    }
}

impl Lease {
    /// Whether this node holds the lease now: checks that a held lease's
    /// connection still answers, or tries to take it. Errors count as not
    /// held (and are logged once by the caller's transitions); never waits
    /// for another holder.
    pub async fn hold(&mut self) -> bool {
        if self.store.backend == Backend::Sqlite {
            return true;
        }
        if self.held {
            let alive = match self.connection.as_mut() {
                Some(connection) => sqlx::raw_sql("SELECT 1").execute(connection).await.is_ok(),
                None => false,
            };
            if alive {
                return true;
            }
            // The lock went with the connection.
            self.held = false;
            self.connection = None;
        }
        if self.connection.is_none() {
            match self.store.dedicated_connection().await {
                Ok(connection) => self.connection = Some(connection),
                Err(error) => {
                    tracing::debug!(%error, key = self.key, "lease: cannot connect");
                    return false;
                }
            }
        }
        let Some(connection) = self.connection.as_mut() else {
            return false;
        };
        match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
            .bind(self.key)
            .fetch_one(connection)
            .await
        {
            Ok(taken) => {
                self.held = taken;
                taken
            }
            Err(error) => {
                tracing::debug!(%error, key = self.key, "lease: cannot try the lock");
                self.connection = None;
                false
            }
        }
    }
}

impl Store {
    /// The lease named by `key` (one number per kind of task: see
    /// [`WEBHOOKS_LEASE`]), not held yet.
    pub fn lease(&self, key: i64) -> Lease {
        Lease {
            store: self.clone(),
            key,
            connection: None,
            held: false,
        }
    }
}

/// The lease of the webhook dispatcher ("hook" in ASCII).
pub const WEBHOOKS_LEASE: i64 = 0x686f_6f6b;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_store;

    #[tokio::test]
    async fn heartbeats_show_each_node_and_who_is_live() {
        let (_dir, store) = temp_store().await;
        assert!(store.cluster_nodes().await.expect("none").is_empty());
        assert_eq!(
            store.live_nodes().await.expect("live"),
            1,
            "the caller counts"
        );
        let started = now_unix_ms() - 60_000;
        store
            .heartbeat("node-a", "1.0", started, 3, 5)
            .await
            .expect("a");
        store
            .heartbeat("node-b", "1.1", started, 0, 0)
            .await
            .expect("b");
        store
            .heartbeat("node-a", "1.0", started, 7, 9)
            .await
            .expect("a again");
        let nodes = store.cluster_nodes().await.expect("nodes");
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (
                nodes[0].name.as_str(),
                nodes[0].queued_messages,
                nodes[0].queued_recipients
            ),
            ("node-a", 7, 9)
        );
        assert_eq!(nodes[1].version, "1.1");
        let now = now_unix_ms();
        assert!(nodes.iter().all(|n| n.is_live(now)));
        assert_eq!(store.live_nodes().await.expect("live"), 2);

        store.node_stopped("node-b", 0, 0).await.expect("stop b");
        let nodes = store.cluster_nodes().await.expect("nodes");
        assert!(nodes[1].stopped_at_ms.is_some() && !nodes[1].is_live(now_unix_ms()));
        assert_eq!(store.live_nodes().await.expect("live"), 1);
        // A silent node is not live either.
        assert!(!nodes[0].is_live(nodes[0].heartbeat_at_ms + NODE_SILENT_AFTER_MS + 1));
        // Its next start clears the stop mark.
        store
            .heartbeat("node-b", "1.2", now_unix_ms(), 0, 0)
            .await
            .expect("b back");
        assert_eq!(store.live_nodes().await.expect("live"), 2);
        assert!(store.forget_node("node-b").await.expect("forget"));
        assert!(!store.forget_node("node-b").await.expect("again"));
        assert_eq!(store.cluster_nodes().await.expect("nodes").len(), 1);
    }

    #[tokio::test]
    async fn one_handle_holds_a_lease_until_it_lets_go() {
        let (dir, store) = temp_store().await;
        let mut first = store.lease(WEBHOOKS_LEASE);
        assert!(first.hold().await);
        assert!(first.hold().await, "still held");
        let other = crate::testutil::another_handle(&dir).await;
        let mut second = other.lease(WEBHOOKS_LEASE);
        if store.backend() == Backend::Sqlite {
            // One node: nobody to share with.
            assert!(second.hold().await);
            return;
        }
        assert!(!second.hold().await, "another node holds it");
        // The holder dies (its connection closes): the other takes over.
        drop(first);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !second.hold().await {
            assert!(tokio::time::Instant::now() < deadline, "never taken over");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let mut third = store.lease(WEBHOOKS_LEASE);
        assert!(!third.hold().await);
    }
}
