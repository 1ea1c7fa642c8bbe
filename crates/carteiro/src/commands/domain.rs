//! `carteiro domain add|list|dns|check|remove`: sending domains, their DKIM
//! keys and the DNS records to publish.

use crate::cli::DomainCommand;
use anyhow::{Context, bail};
use carteiro_config::Config;
use carteiro_delivery::Resolver;
use carteiro_mail::dkim::{DkimAlgorithm, default_selectors, generate_key};
use carteiro_mail::dns_records::{
    CheckStatus, DnsRecord, Found, PublicKeySpec, check, domain_records, names_to_look_up,
    render_text,
};
use carteiro_store::{Domain, NewDkimKey, Store};
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
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
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
            }
            let bad = results
                .iter()
                .filter(|r| matches!(r.status, CheckStatus::Missing | CheckStatus::Wrong))
                .count();
            if bad > 0 {
                bail!("{bad} record(s) of {} are missing or wrong", domain.name);
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
