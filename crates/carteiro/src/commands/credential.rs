//! `carteiro credential add|list|remove`.

use crate::cli::CredentialCommand;
use carteiro_config::Config;
use carteiro_store::generate_password;

pub async fn run(cmd: CredentialCommand, config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let result = execute(cmd, &store).await;
    store.close().await;
    result
}

async fn execute(cmd: CredentialCommand, store: &carteiro_store::Store) -> anyhow::Result<()> {
    match cmd {
        CredentialCommand::Add {
            account,
            username,
            password,
        } => {
            let generated = password.is_none();
            let password = password.unwrap_or_else(generate_password);
            let credential = store.add_credential(&account, &username, &password).await?;
            println!(
                "credential {} added to account {account}",
                credential.username
            );
            if generated {
                println!("password: {password}");
            }
        }
        CredentialCommand::List { account } => {
            for credential in store.list_credentials(&account).await? {
                println!("{}", credential.username);
            }
        }
        CredentialCommand::Remove { username } => {
            if !store.remove_credential(&username).await? {
                anyhow::bail!("no credential named {username}");
            }
            println!("credential {username} removed");
        }
    }
    Ok(())
}
