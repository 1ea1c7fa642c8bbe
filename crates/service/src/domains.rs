//! Sending domains as the CLI and the dashboard handle them: a new domain's
//! DKIM keys, the DNS records to publish, and the live check of what is
//! published (records, then the bulk-sender checklist).

use carteiro_config::Config;
use carteiro_delivery::Resolver;
use carteiro_mail::dkim::{DkimAlgorithm, default_selectors, generate_key};
use carteiro_mail::dns_records::{
    CheckResult, ChecklistItem, DnsRecord, Found, PublicKeySpec, check, check_alignment,
    check_complaint_rate, check_ptr, check_tls, domain_records, names_to_look_up,
};
use carteiro_store::{Domain, EventKind, NewDkimKey, Store, StoreError};
use time::OffsetDateTime;

/// Why a domain could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A key could not be made or read back.
    #[error("{0}")]
    Key(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `domain check` finds: each expected record, then the checklist.
#[derive(Clone, Debug)]
pub struct DomainReport {
    pub records: Vec<CheckResult>,
    pub checklist: Vec<ChecklistItem>,
}

/// Two new DKIM keys for a domain, RSA-2048 and Ed25519, with this month's
/// selectors (`crtYYYYMMr`, `crtYYYYMMe`). RSA generation takes a moment:
/// call it off the async workers.
pub fn new_keys(now: OffsetDateTime) -> Result<Vec<NewDkimKey>, DomainError> {
    keys_with(default_selectors(now))
}

/// A rotation's two new keys, with selectors naming the minute they were
/// made (`crtYYYYMMDDHHMMr`, `…e`), so that they differ from the domain's
/// first keys and from another rotation in the same month.
pub fn rotation_keys(now: OffsetDateTime) -> Result<Vec<NewDkimKey>, DomainError> {
    let stamp = format!(
        "crt{:04}{:02}{:02}{:02}{:02}",
        // The clamp keeps the label free of a sign for years no clock shows.
        now.year().clamp(0, 9999),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    );
    keys_with((format!("{stamp}r"), format!("{stamp}e")))
}

fn keys_with(
    (rsa_selector, ed_selector): (String, String),
) -> Result<Vec<NewDkimKey>, DomainError> {
    let mut keys = Vec::new();
    for (selector, algorithm) in [
        (rsa_selector, DkimAlgorithm::Rsa),
        (ed_selector, DkimAlgorithm::Ed25519),
    ] {
        let key = generate_key(algorithm)
            .map_err(|e| DomainError::Key(format!("cannot generate a {algorithm} key: {e}")))?;
        keys.push(NewDkimKey {
            selector,
            algorithm: algorithm
                .as_str()
                .parse()
                .map_err(|e| DomainError::Key(format!("{e}")))?,
            private_key: key.private_key,
            public_key: key.public_key,
        });
    }
    Ok(keys)
}

/// The records a domain needs, from its stored public keys: those of the
/// keys that sign and of the keys waiting to (a retired key's record may go
/// once mail signed with it has arrived, a few days).
pub fn records(config: &Config, domain: &Domain) -> Result<Vec<DnsRecord>, DomainError> {
    let published: Vec<&carteiro_store::DkimKey> = domain
        .keys
        .iter()
        .filter(|k| k.state != carteiro_store::KeyState::Retired)
        .collect();
    let algorithms: Vec<DkimAlgorithm> = published
        .iter()
        .map(|k| k.algorithm.as_str().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| DomainError::Key(format!("{e}")))?;
    let keys: Vec<PublicKeySpec<'_>> = published
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

/// Looks up what is published for `domain` and judges it.
pub async fn check_domain(
    config: &Config,
    store: &Store,
    resolver: &Resolver,
    domain: &Domain,
) -> Result<DomainReport, DomainError> {
    let expected = records(config, domain)?;
    let found = look_up(resolver, &expected).await;
    let records = check(&domain.name, &config.hostname, &expected, &found);
    let checklist = bulk_checklist(config, store, resolver, domain).await?;
    Ok(DomainReport { records, checklist })
}

/// The bulk-sender checklist: DMARC alignment, reverse DNS of the EHLO
/// name's addresses, TLS on delivery, and the owning account's complaint
/// rate over the last day.
async fn bulk_checklist(
    config: &Config,
    store: &Store,
    resolver: &Resolver,
    domain: &Domain,
) -> Result<Vec<ChecklistItem>, DomainError> {
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

/// Looks up every name the check needs, one after the other (a handful).
async fn look_up(resolver: &Resolver, expected: &[DnsRecord]) -> Found {
    let (txt_names, mx_names) = names_to_look_up(expected);
    let mut txt = Vec::new();
    for name in txt_names {
        let answer = resolver.txt_records(&name).await;
        txt.push((name, answer));
    }
    let mut mx = Vec::new();
    for name in mx_names {
        let answer = resolver.mx_records(&name).await;
        mx.push((name, answer));
    }
    Found {
        txt: txt.into_iter().collect(),
        mx: mx.into_iter().collect(),
    }
}
