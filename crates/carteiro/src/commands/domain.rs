//! `carteiro domain add|list|dns|check|rotate|activate|remove`: sending domains, their DKIM
//! keys and the DNS records to publish.

use crate::cli::DomainCommand;
use anyhow::{Context, bail};
use carteiro_config::Config;
use carteiro_delivery::Resolver;
use carteiro_mail::dns_records::{CheckStatus, render_text};
use carteiro_service::domains::{DomainReport, check_domain, new_keys, records, rotation_keys};
use carteiro_store::{Domain, KeyState, Store};
use time::OffsetDateTime;

pub async fn run(cmd: DomainCommand, config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let result = execute(cmd, config, &store).await;
    store.close().await;
    result
}

async fn execute(cmd: DomainCommand, config: &Config, store: &Store) -> anyhow::Result<()> {
    match cmd {
        DomainCommand::Add { account, domain } => {
            let keys = new_keys(OffsetDateTime::now_utc())?;
            let domain = store.add_domain(&account, &domain, keys).await?;
            println!(
                "domain {} added to account {}, with DKIM keys {}",
                domain.name,
                domain.account,
                domain
                    .keys
                    .iter()
                    .map(|k| format!("{} ({})", k.selector, k.algorithm.as_str()))
                    .collect::<Vec<_>>()
                    .join(" and ")
            );
            println!(
                "Publish these DNS records, then run 'carteiro domain check {}':\n",
                domain.name
            );
            print!("{}", render_text(&records(config, &domain)?));
        }
        DomainCommand::List { account, json } => {
            let domains = store.list_domains(account.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&domains)?);
            } else {
                for domain in domains {
                    let selectors: Vec<&str> =
                        domain.keys.iter().map(|k| k.selector.as_str()).collect();
                    println!(
                        "{}\t{}\t{}",
                        domain.name,
                        domain.account,
                        selectors.join(",")
                    );
                }
            }
        }
        DomainCommand::Dns { domain, json } => {
            let domain = find(store, &domain).await?;
            let records = records(config, &domain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print!("{}", render_text(&records));
            }
        }
        DomainCommand::Check { domain, json } => {
            let domain = find(store, &domain).await?;
            let resolver = Resolver::new(&config.dns.nameservers).context("cannot set up DNS")?;
            let DomainReport {
                records: results,
                checklist,
            } = check_domain(config, store, &resolver, &domain).await?;
            if json {
                let mut all: Vec<serde_json::Value> = Vec::new();
                for result in &results {
                    all.push(serde_json::to_value(result)?);
                }
                for item in &checklist {
                    all.push(serde_json::to_value(item)?);
                }
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for result in &results {
                    println!(
                        "{:<8} {:<12} {:<5} {}\n         {}",
                        result.status.as_str().to_uppercase(),
                        result.purpose.as_str(),
                        result.kind.as_str(),
                        result.name,
                        result.message
                    );
                }
                println!("\nBulk-sender checklist (Gmail, Yahoo, Microsoft):");
                for item in &checklist {
                    println!(
                        "{:<8} {:<14} {:<5} {}\n         {}",
                        item.status.as_str().to_uppercase(),
                        item.purpose,
                        item.kind.unwrap_or(""),
                        item.name,
                        item.message
                    );
                }
            }
            let bad = results
                .iter()
                .map(|r| r.status)
                .chain(checklist.iter().map(|i| i.status))
                .filter(|s| matches!(s, CheckStatus::Missing | CheckStatus::Wrong))
                .count();
            if bad > 0 {
                bail!("{bad} check(s) for {} are missing or wrong", domain.name);
            }
        }
        DomainCommand::Rotate { domain } => {
            let found = find(store, &domain).await?;
            let keys = rotation_keys(OffsetDateTime::now_utc())?;
            let selectors: Vec<String> = keys.iter().map(|k| k.selector.clone()).collect();
            let rotated = store.add_pending_keys(&found.name, keys).await?;
            println!(
                "new DKIM keys {} made for {}; they sign once activated",
                selectors.join(" and "),
                rotated.name
            );
            println!(
                "Publish their records (below, with the others), then run 'carteiro domain activate {}':\n",
                rotated.name
            );
            print!("{}", render_text(&records(config, &rotated)?));
        }
        DomainCommand::Activate { domain, force } => {
            let found = find(store, &domain).await?;
            let pending: Vec<&str> = found
                .keys
                .iter()
                .filter(|k| k.state == KeyState::Pending)
                .map(|k| k.selector.as_str())
                .collect();
            if pending.is_empty() {
                bail!(
                    "{} has no new keys to activate (make them with 'carteiro domain rotate {}')",
                    found.name,
                    found.name
                );
            }
            if !force {
                let resolver =
                    Resolver::new(&config.dns.nameservers).context("cannot set up DNS")?;
                let report = check_domain(config, store, &resolver, &found).await?;
                for selector in &pending {
                    let prefix = format!("{selector}._domainkey.");
                    let published = report.records.iter().any(|r| {
                        r.purpose.as_str() == "dkim"
                            && r.name.starts_with(&prefix)
                            && r.status == CheckStatus::Ok
                    });
                    if !published {
                        bail!(
                            "the DKIM record of the new key {selector} is not published as made \
                             (see 'carteiro domain check {}'); publish it first, or use --force",
                            found.name
                        );
                    }
                }
            }
            store.activate_pending_keys(&found.name).await?;
            println!(
                "{} now signs with {}; keep the old keys' DNS records for a few days",
                found.name,
                pending.join(" and ")
            );
        }
        DomainCommand::Remove { domain } => {
            if !store.remove_domain(&domain).await? {
                bail!("no sending domain {domain}");
            }
            println!("domain {domain} removed; mail from it is no longer signed");
        }
    }
    Ok(())
}

async fn find(store: &Store, name: &str) -> anyhow::Result<Domain> {
    store.domain(name).await?.with_context(|| {
        format!("{name} is not a sending domain (add it with 'carteiro domain add ACCOUNT {name}')")
    })
}
