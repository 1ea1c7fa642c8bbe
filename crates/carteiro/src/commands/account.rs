//! `carteiro account add|list`.

use crate::cli::AccountCommand;
use carteiro_config::Config;

pub async fn run(cmd: AccountCommand, config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let result = match cmd {
        AccountCommand::Add { name } => store.create_account(&name).await.map(|account| {
            println!("account {} created (id {})", account.name, account.id);
        }),
        AccountCommand::List { json } => store.list_accounts().await.map(|accounts| {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&accounts).unwrap_or_default()
                );
            } else {
                for account in accounts {
                    println!("{}\t{}", account.id, account.name);
                }
            }
        }),
    };
    store.close().await;
    Ok(result?)
}
