//! The `[store]` section: where the relational data lives and what this node
//! is called among the nodes sharing it.
//!
//! Values only; `validate.rs` checks the URL's scheme and the node name, and
//! the server connects.

use serde::Deserialize;

/// The `[store]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Empty (the default): the embedded SQLite file in `data_dir`.
    /// `postgres://user:password@host:port/db`: a PostgreSQL database shared
    /// by every node of a cluster.
    pub url: String,
    /// This node's name among the nodes sharing the store: in events
    /// (`details.node`) and `cluster status`. Empty (the default): the
    /// machine's host name.
    pub node_name: String,
    /// Whether each message's header section (its first 16 KiB) is kept
    /// with its record, for the dashboard and the API. Default `true`; it
    /// costs the store about 25 µs and 2 KB per message.
    pub keep_headers: bool,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            url: String::new(),
            node_name: String::new(),
            keep_headers: true,
        }
    }
}

impl StoreConfig {
    /// Whether the store is a PostgreSQL server rather than the SQLite file.
    pub fn is_postgres(&self) -> bool {
        !self.url.is_empty()
    }
}
