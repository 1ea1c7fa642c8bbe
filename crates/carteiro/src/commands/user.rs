//! `carteiro user add|list|remove`: the people who sign in to the dashboard.

use crate::cli::UserCommand;
use carteiro_config::Config;
use carteiro_store::{Role, Store, generate_password};

pub async fn run(cmd: UserCommand, config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let result = execute(cmd, &store).await;
    store.close().await;
    result
}

async fn execute(cmd: UserCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            email,
            role,
            account,
            password,
        } => {
            let role: Role = role.parse()?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(generate_password);
            let user = store
                .add_user(&email, role, account.as_deref(), &password)
                .await?;
            match &user.account {
                Some(account) => println!(
                    "user {} added: {} of account {account}",
                    user.email, user.role
                ),
                None => println!("user {} added: {}", user.email, user.role),
            }
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::List { json } => {
            let users = store.list_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!("{:<40} {:<7} {:<20} CREATED", "EMAIL", "ROLE", "ACCOUNT");
                for user in users {
                    println!(
                        "{:<40} {:<7} {:<20} {}",
                        user.email,
                        user.role,
                        user.account.as_deref().unwrap_or("*"),
                        user.created_at
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default(),
                    );
                }
            }
        }
        UserCommand::Remove { email } => {
            if !store.remove_user(&email).await? {
                anyhow::bail!("no user {email}");
            }
            println!("user {email} removed");
        }
    }
    Ok(())
}
