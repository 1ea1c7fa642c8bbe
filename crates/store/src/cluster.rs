//! The nodes sharing the store (`cluster_nodes`): each running server writes
//! a heartbeat row every few seconds with its queue's size, and marks it
//! stopped when it shuts down cleanly. `carteiro cluster status` reads them;
//! the count of live nodes is what a node divides shared limits by.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

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
}
