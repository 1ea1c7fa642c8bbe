//! One module per command group of the CLI.

pub mod account;
pub mod apikey;
pub mod bounce;
pub mod cluster;
pub mod config;
pub mod credential;
pub mod domain;
pub mod queue;
pub mod suppression;
pub mod user;

use crate::layout::DataDir;
use anyhow::Context;
use carteiro_config::Config;
use carteiro_store::Store;

/// Opens the store the server uses (creating the data directory on first use).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let data = DataDir::new(config);
    data.create()?;
    store_of(config, &data).await
}

/// The store of `config`: the PostgreSQL database of `store.url`, else the
/// SQLite file in the data directory (which must exist).
pub async fn store_of(config: &Config, data: &DataDir) -> anyhow::Result<Store> {
    if config.store.is_postgres() {
        Store::connect(&config.store.url)
            .await
            .context("store.url: cannot use the PostgreSQL database")
    } else {
        Store::open(&data.database())
            .await
            .with_context(|| format!("cannot open the store at {}", data.database().display()))
    }
}

/// Unix milliseconds as an RFC 3339 UTC time to the second, as the CLI's
/// tables and JSON show times.
pub fn rfc3339_millis(millis: u64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}
