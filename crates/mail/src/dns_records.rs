//! The DNS records a sending domain publishes so that mail Carteiro sends for
//! it passes DKIM, SPF and DMARC and its bounces come back: what to publish
//! ([`domain_records`]), how an operator reads it ([`render_text`]), and
//! whether what DNS answered is right ([`check`]).
//!
//! Nothing here does a lookup: the caller resolves the names that
//! [`names_to_look_up`] lists and hands the answers to [`check`], so the
//! judgement is plain code that tests drive with tables.

mod check;
mod checklist;
mod render;
mod spf;

#[cfg(test)]
mod tests;

pub use check::{CheckResult, CheckStatus, Found, LookupFailure, check, names_to_look_up};
pub use checklist::{
    COMPLAINT_RATE_ERROR, COMPLAINT_RATE_WARNING, ChecklistItem, check_alignment,
    check_complaint_rate, check_ptr, check_tls,
};
pub use render::{render_text, split_txt_value, zone_file_entry};

use crate::dkim::DkimAlgorithm;
use serde::{Deserialize, Serialize};

/// What a record is for; the `purpose` field of `carteiro domain dns --json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordPurpose {
    /// A DKIM public key at `SELECTOR._domainkey.DOMAIN`.
    Dkim,
    /// The domain's SPF policy, naming the relay as a permitted sender.
    Spf,
    /// The domain's DMARC policy at `_dmarc.DOMAIN`.
    Dmarc,
    /// The records of the envelope-sender (bounce) domain: MX and SPF.
    ReturnPath,
}

impl RecordPurpose {
    /// The name used in the JSON form and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordPurpose::Dkim => "dkim",
            RecordPurpose::Spf => "spf",
            RecordPurpose::Dmarc => "dmarc",
            RecordPurpose::ReturnPath => "return-path",
        }
    }
}

/// The DNS record type; the `type` field of the JSON form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    Txt,
    Mx,
    Cname,
}

impl RecordType {
    /// The type as written in zone files: `TXT`, `MX`, `CNAME`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Txt => "TXT",
            RecordType::Mx => "MX",
            RecordType::Cname => "CNAME",
        }
    }
}

/// One record to publish, in the shape of `carteiro domain dns --json`.
/// `name` is fully qualified without the trailing dot; `value` is the TXT
/// text as one string (however it is split on the wire), or `PREFERENCE HOST`
/// for MX.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub purpose: RecordPurpose,
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub name: String,
    pub value: String,
}

/// One public DKIM key of the domain, as the store keeps it.
#[derive(Clone, Copy, Debug)]
pub struct PublicKeySpec<'a> {
    pub selector: &'a str,
    pub algorithm: DkimAlgorithm,
    /// The base64 `p=` value ([`crate::dkim::GeneratedKey::public_key`]).
    pub public_key: &'a str,
}

/// The records `domain` publishes when Carteiro on `relay_hostname` sends its
/// mail with envelope senders at `return_path_domain` (e.g. `bounces.DOMAIN`):
/// one DKIM TXT per key, the domain's SPF and DMARC, and the return-path
/// domain's MX and SPF. The SPF and DMARC values are suggestions for a domain
/// that has none; [`render_text`] says how to merge with existing ones.
///
/// When the return-path domain is the domain itself its SPF record is not
/// listed twice.
pub fn domain_records(
    domain: &str,
    relay_hostname: &str,
    return_path_domain: &str,
    keys: &[PublicKeySpec<'_>],
) -> Vec<DnsRecord> {
    let domain = normalize_name(domain);
    let relay = normalize_name(relay_hostname);
    let return_path = normalize_name(return_path_domain);
    let spf = format!("v=spf1 a:{relay} ~all");
    let record = |purpose, kind, name: String, value: String| DnsRecord {
        purpose,
        kind,
        name,
        value,
    };

    let mut records: Vec<DnsRecord> = keys
        .iter()
        .map(|key| {
            record(
                RecordPurpose::Dkim,
                RecordType::Txt,
                format!("{}._domainkey.{domain}", key.selector.to_ascii_lowercase()),
                format!(
                    "v=DKIM1; k={}; p={}",
                    key.algorithm.as_str(),
                    key.public_key.trim()
                ),
            )
        })
        .collect();
    records.push(record(
        RecordPurpose::Spf,
        RecordType::Txt,
        domain.clone(),
        spf.clone(),
    ));
    records.push(record(
        RecordPurpose::Dmarc,
        RecordType::Txt,
        format!("_dmarc.{domain}"),
        format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"),
    ));
    records.push(record(
        RecordPurpose::ReturnPath,
        RecordType::Mx,
        return_path.clone(),
        format!("10 {relay}"),
    ));
    if return_path != domain {
        records.push(record(
            RecordPurpose::ReturnPath,
            RecordType::Txt,
            return_path,
            spf,
        ));
    }
    records
}

/// Names compare case-insensitively and with or without the root's dot.
pub(crate) fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}
