//! Judging published DNS records against the ones Carteiro asks for.
//!
//! Pure: the caller looks the names up (see [`names_to_look_up`]) and passes
//! the answers in a [`Found`]. Each message says what was found, what is
//! expected and what to do, in words an operator acting on a zone
//! understands.

use super::spf::{self, SpfVerdict};
use super::{DnsRecord, RecordPurpose, RecordType, normalize_name};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Why a lookup gave no answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupFailure {
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no record of the type asked.
    NoRecords,
    /// The lookup itself failed (timeout, SERVFAIL, …): nothing can be said.
    Failed(String),
}

/// DNS answers by name (as [`names_to_look_up`] gives them; case and a
/// trailing dot are ignored). TXT answers are the records' texts, the
/// strings of each record already joined.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub txt: HashMap<String, Result<Vec<String>, LookupFailure>>,
    pub mx: HashMap<String, Result<Vec<(u16, String)>, LookupFailure>>,
}

/// The verdict on one expected record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Published as needed.
    Ok,
    /// Nothing is published where the record belongs.
    Missing,
    /// Something is published but it breaks delivery or authentication.
    Wrong,
    /// Probably fine or not decidable without more lookups (or the lookup
    /// failed): the message says what to look at.
    Warning,
}

impl CheckStatus {
    /// `ok`, `missing`, `wrong`, `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Missing => "missing",
            CheckStatus::Wrong => "wrong",
            CheckStatus::Warning => "warning",
        }
    }
}

/// The verdict on one expected record, with an explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub purpose: RecordPurpose,
    /// The type of the expected record (the return-path domain has an MX
    /// and a TXT under one name).
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub name: String,
    pub status: CheckStatus,
    /// What was found, what is expected, what to do.
    pub message: String,
}

/// The names to look up for `records`: TXT names, then MX names, each once.
pub fn names_to_look_up(records: &[DnsRecord]) -> (Vec<String>, Vec<String>) {
    let mut txt: Vec<String> = Vec::new();
    let mut mx: Vec<String> = Vec::new();
    for record in records {
        let list = match record.kind {
            RecordType::Txt => &mut txt,
            RecordType::Mx => &mut mx,
            RecordType::Cname => continue,
        };
        let name = normalize_name(&record.name);
        if !list.contains(&name) {
            list.push(name);
        }
    }
    (txt, mx)
}

/// Judges each of the `expected` records of `domain` (as
/// [`super::domain_records`] made them for `relay_hostname`) against what DNS
/// answered, in the same order.
pub fn check(
    domain: &str,
    relay_hostname: &str,
    expected: &[DnsRecord],
    found: &Found,
) -> Vec<CheckResult> {
    let domain = normalize_name(domain);
    let relay = normalize_name(relay_hostname);
    expected
        .iter()
        .map(|record| {
            let name = normalize_name(&record.name);
            let (status, message) = match (record.purpose, record.kind) {
                (RecordPurpose::Dkim, RecordType::Txt) => {
                    check_dkim(&domain, &name, &record.value, lookup(&found.txt, &name))
                }
                (RecordPurpose::Spf | RecordPurpose::ReturnPath, RecordType::Txt) => {
                    check_spf(&name, &relay, &record.value, lookup(&found.txt, &name))
                }
                (RecordPurpose::Dmarc, RecordType::Txt) => {
                    check_dmarc(&name, &record.value, lookup(&found.txt, &name))
                }
                (_, RecordType::Mx) => check_mx(&name, &relay, lookup(&found.mx, &name)),
                (_, kind) => (
                    CheckStatus::Warning,
                    format!(
                        "Carteiro does not check {} records; make sure {name} has {} {}",
                        kind.as_str(),
                        kind.as_str(),
                        record.value
                    ),
                ),
            };
            CheckResult {
                purpose: record.purpose,
                kind: record.kind,
                name,
                status,
                message,
            }
        })
        .collect()
}

type Verdict = (CheckStatus, String);

/// The answers for `name`; a name the caller did not look up counts as a
/// failed lookup rather than as an absent record.
fn lookup<'a, T>(
    answers: &'a HashMap<String, Result<Vec<T>, LookupFailure>>,
    name: &str,
) -> Result<&'a [T], LookupFailure> {
    let entry = answers
        .get(name)
        .or_else(|| {
            answers
                .iter()
                .find(|(key, _)| normalize_name(key) == name)
                .map(|(_, value)| value)
        })
        .ok_or_else(|| LookupFailure::Failed("it was not looked up".into()))?;
    match entry {
        Ok(list) if list.is_empty() => Err(LookupFailure::NoRecords),
        Ok(list) => Ok(list),
        Err(failure) => Err(failure.clone()),
    }
}

/// The verdict for a lookup that gave nothing, or `None` when it gave answers.
fn absent(name: &str, failure: &LookupFailure, what: &str, todo: &str) -> Verdict {
    match failure {
        LookupFailure::NxDomain => (
            CheckStatus::Missing,
            format!("{name} does not exist in DNS, so there is no {what}; {todo}"),
        ),
        LookupFailure::NoRecords => (
            CheckStatus::Missing,
            format!("{name} has no {what}; {todo}"),
        ),
        LookupFailure::Failed(reason) => (
            CheckStatus::Warning,
            format!("could not look up {name} ({reason}); check again later"),
        ),
    }
}

/// Parses a `tag=value; tag=value` list (DKIM key records, DMARC records):
/// tag names lower-cased, values trimmed.
fn tags(record: &str) -> Vec<(String, &str)> {
    record
        .split(';')
        .filter_map(|part| {
            let (tag, value) = part.split_once('=')?;
            Some((tag.trim().to_ascii_lowercase(), value.trim()))
        })
        .collect()
}

fn tag<'a>(tags: &[(String, &'a str)], name: &str) -> Option<&'a str> {
    tags.iter().find(|(tag, _)| tag == name).map(|(_, v)| *v)
}

fn without_whitespace(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A found value short enough to quote in a message.
fn quoted(value: &str) -> String {
    const MAX: usize = 60;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("\"{}…\"", &value[..cut]),
        None => format!("\"{value}\""),
    }
}

fn check_dkim(
    domain: &str,
    name: &str,
    expected: &str,
    found: Result<&[String], LookupFailure>,
) -> Verdict {
    let selector = name.split("._domainkey.").next().unwrap_or(name);
    let publish =
        format!("publish the TXT record for {name} that `carteiro domain dns {domain}` prints");
    let records = match found {
        Ok(records) => records,
        Err(failure) => {
            let what = format!("DKIM key for selector {selector}");
            return absent(name, &failure, &what, &publish);
        }
    };
    let keys: Vec<Vec<(String, &str)>> = records
        .iter()
        .map(|record| tags(record))
        .filter(|tags| tag(tags, "p").is_some())
        .collect();
    let key = match keys.as_slice() {
        [] => {
            return (
                CheckStatus::Wrong,
                format!(
                    "the TXT record at {name} is not a DKIM key (found {}); replace it: {publish}",
                    quoted(records.first().map(String::as_str).unwrap_or_default())
                ),
            );
        }
        [key] => key,
        _ => {
            return (
                CheckStatus::Wrong,
                format!(
                    "{} DKIM keys are published at {name}: receivers may pick any of them; \
                     keep only the one Carteiro signs with ({publish})",
                    keys.len()
                ),
            );
        }
    };
    let wanted = tags(expected);
    let wanted_kind = tag(&wanted, "k").unwrap_or("rsa");
    let wanted_key = without_whitespace(tag(&wanted, "p").unwrap_or_default());
    let version = tag(key, "v");
    let kind = tag(key, "k").unwrap_or("rsa");
    let public = without_whitespace(tag(key, "p").unwrap_or_default());
    if version.is_some_and(|v| v != "DKIM1") {
        return (
            CheckStatus::Wrong,
            format!(
                "the record at {name} starts with v={} instead of v=DKIM1, so receivers ignore it; {publish}",
                version.unwrap_or_default()
            ),
        );
    }
    if public.is_empty() {
        return (
            CheckStatus::Wrong,
            format!(
                "the key for selector {selector} is revoked (its p= is empty): mail signed with it fails DKIM; {publish}"
            ),
        );
    }
    if !kind.eq_ignore_ascii_case(wanted_kind) {
        return (
            CheckStatus::Wrong,
            format!(
                "the record for selector {selector} says k={kind} but Carteiro's key for it is k={wanted_kind}; {publish}"
            ),
        );
    }
    if public != wanted_key {
        return (
            CheckStatus::Wrong,
            format!(
                "the published key for selector {selector} is not the one Carteiro signs with, \
                 so mail fails DKIM; replace the value at {name}: {publish}"
            ),
        );
    }
    if tag(key, "t").is_some_and(|flags| flags.split(':').any(|f| f.trim() == "y")) {
        return (
            CheckStatus::Warning,
            format!(
                "the key for selector {selector} is right but marked as a test (t=y): \
                 receivers may ignore DKIM results; remove t=y once mail verifies"
            ),
        );
    }
    (
        CheckStatus::Ok,
        format!("the DKIM key for selector {selector} is published and matches"),
    )
}

fn check_spf(
    name: &str,
    relay: &str,
    expected: &str,
    found: Result<&[String], LookupFailure>,
) -> Verdict {
    let publish = format!("publish the TXT record \"{expected}\" at {name}");
    let records = match found {
        Ok(records) => records,
        Err(failure) => return absent(name, &failure, "SPF record", &publish),
    };
    let spf: Vec<&String> = records.iter().filter(|r| spf::is_spf(r)).collect();
    let record = match spf.as_slice() {
        [] => {
            return (
                CheckStatus::Missing,
                format!("{name} has TXT records but none is an SPF record (v=spf1); {publish}"),
            );
        }
        [record] => record.as_str(),
        _ => {
            let count = if spf.len() == 2 {
                "two".to_string()
            } else {
                spf.len().to_string()
            };
            return (
                CheckStatus::Wrong,
                format!(
                    "{count} SPF records at {name}: receivers treat that as an error (permerror); \
                     merge them into one that also contains a:{relay}"
                ),
            );
        }
    };
    let found = quoted(record);
    match spf::judge(record, relay) {
        SpfVerdict::Authorised => (
            CheckStatus::Ok,
            format!("the SPF record at {name} authorises {relay}"),
        ),
        SpfVerdict::PlusAll => (
            CheckStatus::Wrong,
            format!(
                "the SPF record at {name} ({found}) ends in +all: anyone may send mail as {name}; \
                 replace +all with ~all and make sure a:{relay} is in the record"
            ),
        ),
        SpfVerdict::PermError(term) => (
            CheckStatus::Wrong,
            format!(
                "the SPF record at {name} has the unknown term \"{term}\": receivers treat the \
                 whole record as an error (permerror); fix it and make sure a:{relay} is in it"
            ),
        ),
        SpfVerdict::Excluded(term) => (
            CheckStatus::Wrong,
            format!(
                "the SPF record at {name} rejects {relay} (\"{term}\"); change it to a:{relay}"
            ),
        ),
        SpfVerdict::CannotTell(terms) => (
            CheckStatus::Warning,
            format!(
                "the SPF record at {name} ({found}) does not name {relay}; Carteiro cannot tell \
                 whether {} cover {relay}'s addresses: if they do not, add a:{relay} before the \
                 all term",
                terms.join(", ")
            ),
        ),
        SpfVerdict::NotAuthorised => (
            CheckStatus::Wrong,
            format!(
                "the SPF record at {name} ({found}) does not authorise {relay}, so mail sent \
                 through it fails SPF; add a:{relay} before the all term"
            ),
        ),
    }
}

fn check_dmarc(name: &str, expected: &str, found: Result<&[String], LookupFailure>) -> Verdict {
    let publish = format!(
        "publish the TXT record \"{expected}\" at {name} (p=none only asks receivers for reports)"
    );
    let records = match found {
        Ok(records) => records,
        Err(failure) => return absent(name, &failure, "DMARC record", &publish),
    };
    let dmarc: Vec<Vec<(String, &str)>> = records
        .iter()
        .map(|record| tags(record))
        .filter(|tags| {
            tags.first()
                .is_some_and(|(tag, value)| tag == "v" && value.eq_ignore_ascii_case("DMARC1"))
        })
        .collect();
    let record = match dmarc.as_slice() {
        [] => {
            return (
                CheckStatus::Missing,
                format!("{name} has TXT records but none is a DMARC record (v=DMARC1); {publish}"),
            );
        }
        [record] => record,
        _ => {
            return (
                CheckStatus::Wrong,
                format!(
                    "{} DMARC records at {name}: receivers then ignore DMARC for the domain; \
                     keep only one",
                    dmarc.len()
                ),
            );
        }
    };
    match tag(record, "p") {
        None => (
            CheckStatus::Wrong,
            format!(
                "the DMARC record at {name} has no p= tag, so receivers ignore it; add p=none \
                 (or quarantine/reject once reports show all mail passes)"
            ),
        ),
        Some(policy)
            if !["none", "quarantine", "reject"]
                .iter()
                .any(|p| policy.eq_ignore_ascii_case(p)) =>
        {
            (
                CheckStatus::Wrong,
                format!(
                    "the DMARC record at {name} has p={policy}, which is not none, quarantine or \
                     reject, so receivers ignore it; fix the p= tag"
                ),
            )
        }
        Some(policy) => (
            CheckStatus::Ok,
            format!("the DMARC record at {name} is published (policy p={policy})"),
        ),
    }
}

fn check_mx(name: &str, relay: &str, found: Result<&[(u16, String)], LookupFailure>) -> Verdict {
    let publish = format!("publish the record \"{name} MX 10 {relay}\"");
    let exchanges = match found {
        Ok(exchanges) => exchanges,
        Err(failure) => {
            let todo = format!("bounces sent to {name} cannot reach Carteiro; {publish}");
            return absent(name, &failure, "MX record", &todo);
        }
    };
    let others: Vec<String> = exchanges
        .iter()
        .map(|(_, host)| normalize_name(host))
        .filter(|host| host != relay)
        .map(|host| {
            if host.is_empty() {
                "\".\" (a null MX: the domain accepts no mail)".to_string()
            } else {
                host
            }
        })
        .collect();
    if others.is_empty() {
        (
            CheckStatus::Ok,
            format!("the MX of {name} points to {relay}"),
        )
    } else if others.len() < exchanges.len() {
        (
            CheckStatus::Warning,
            format!(
                "the MX records of {name} name {relay} but also {}: bounces delivered there do \
                 not reach Carteiro; remove them",
                others.join(", ")
            ),
        )
    } else {
        (
            CheckStatus::Wrong,
            format!(
                "the MX of {name} points to {}, not to {relay}: bounces would not reach Carteiro; \
                 change it to \"MX 10 {relay}\"",
                others.join(", ")
            ),
        )
    }
}
