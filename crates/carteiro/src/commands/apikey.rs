//! `carteiro apikey add|list|revoke`: keys for the HTTP API.

use crate::cli::ApiKeyCommand;
use anyhow::bail;
use carteiro_config::Config;

pub async fn run(cmd: ApiKeyCommand, config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let result = execute(cmd, &store).await;
    store.close().await;
    result
}

async fn execute(cmd: ApiKeyCommand, store: &carteiro_store::Store) -> anyhow::Result<()> {
    match cmd {
        ApiKeyCommand::Add { account } => {
            let (key, secret) = store.create_api_key(&account).await?;
            println!("API key {} created for account {}", key.prefix, key.account);
            println!("{secret}");
            eprintln!("(shown once: only its hash is stored)");
        }
        ApiKeyCommand::List { account } => {
            for key in store.list_api_keys(&account).await? {
                println!("{}\t{}", key.prefix, key.created_at);
            }
        }
        ApiKeyCommand::Revoke { prefix } => {
            if !store.revoke_api_key(&prefix).await? {
                bail!("no API key {prefix}");
            }
            println!("API key {prefix} revoked");
        }
    }
    Ok(())
}
