//! `carteiro domain add|list|dns|check|remove`: sending domains, their DKIM
//! keys and the DNS records to publish.

use crate::cli::DomainCommand;
use anyhow::{Context, bail};
use carteiro_config::Config;
use carteiro_delivery::Resolver;
use carteiro_mail::dkim::{DkimAlgorithm, default_selectors, generate_key};
use carteiro_mail::dns_records::{
    CheckStatus, ChecklistItem, DnsRecord, Found, PublicKeySpec, check, check_alignment,
    check_complaint_rate, check_ptr, check_tls, domain_records, names_to_look_up, render_text,
};
use carteiro_store::{Domain, EventKind, NewDkimKey, Store};
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
            let (rsa_selector, ed_selector) = default_selectors(OffsetDateTime::now_utc());
            let mut keys = Vec::new();
            for (selector, algorithm) in [
                (rsa_selector, DkimAlgorithm::Rsa),
                (ed_selector, DkimAlgorithm::Ed25519),
            ] {
                let key = generate_key(algorithm)
                    .with_context(|| format!("cannot generate a {algorithm} key"))?;
                keys.push(NewDkimKey {
                    selector,
                    algorithm: algorithm.as_str().parse()?,
                    private_key: key.private_key,
                    public_key: key.public_key,
                });
            }
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
            let expected = records(config, &domain)?;
            let resolver = Resolver::new(&config.dns.nameservers).context("cannot set up DNS")?;
            let found = look_up(&resolver, &expected).await;
            let results = check(&domain.name, &config.hostname, &expected, &found);
            let checklist = bulk_checklist(config, store, &resolver, &domain).await?;
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

/// The records a domain needs, from its stored public keys.
pub fn records(config: &Config, domain: &Domain) -> anyhow::Result<Vec<DnsRecord>> {
    let algorithms: Vec<DkimAlgorithm> = domain
        .keys
        .iter()
        .map(|k| k.algorithm.as_str().parse())
        .collect::<Result<_, _>>()?;
    let keys: Vec<PublicKeySpec<'_>> = domain
        .keys
        .iter()
        .zip(&algorithms)
        .map(|(k, &algorithm)| PublicKeySpec {
            selector: &k.selector,
            algorithm,
            public_key: &k.public_key,
        })
        .collect();
    Ok(domain_records(
        &domain.name,
        &config.hostname,
        &config.domains.return_path_domain(&domain.name),
        &keys,
    ))
}

/// The bulk-sender checklist: DMARC alignment, reverse DNS of the EHLO
/// name's addresses, TLS on delivery, and the owning account's complaint
/// rate over the last day.
async fn bulk_checklist(
    config: &Config,
    store: &Store,
    resolver: &Resolver,
    domain: &Domain,
) -> anyhow::Result<Vec<ChecklistItem>> {
    let mut items = Vec::new();
    let dmarc = resolver
        .txt_records(&format!("_dmarc.{}", domain.name))
        .await;
    items.push(check_alignment(
        &domain.name,
        &config.domains.return_path_domain(&domain.name),
        &dmarc,
    ));
    let addrs = resolver
        .host_addrs(&config.hostname)
        .await
        .map_err(|e| e.to_string());
    let mut ptrs = Vec::new();
    for ip in addrs.iter().flatten() {
        ptrs.push((*ip, resolver.ptr_names(*ip).await));
    }
    items.extend(check_ptr(&config.hostname, &addrs, &ptrs));
    items.push(check_tls(config.delivery.tls.as_str(), None));
    let day_ago = OffsetDateTime::now_utc().unix_timestamp() * 1000 - 24 * 3600 * 1000;
    let counts = store
        .count_events_since(
            domain.account_id,
            day_ago,
            &[EventKind::Delivered, EventKind::Complained],
        )
        .await?;
    let count = |kind| {
        counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    };
    items.push(check_complaint_rate(
        &domain.account,
        count(EventKind::Complained),
        count(EventKind::Delivered),
    ));
    Ok(items)
}

/// Looks up every name the check needs, concurrently.
async fn look_up(resolver: &Resolver, expected: &[DnsRecord]) -> Found {
    let (txt_names, mx_names) = names_to_look_up(expected);
    let txt = futures_join(
        txt_names
            .iter()
            .map(|name| async move { (name.clone(), resolver.txt_records(name).await) }),
    )
    .await;
    let mx = futures_join(
        mx_names
            .iter()
            .map(|name| async move { (name.clone(), resolver.mx_records(name).await) }),
    )
    .await;
    Found {
        txt: txt.into_iter().collect(),
        mx: mx.into_iter().collect(),
    }
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    // A handful of names: one after the other is fast enough and simple.
    for future in futures {
        out.push(future.await);
    }
    out
}
