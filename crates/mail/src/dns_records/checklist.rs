//! The bulk-sender checklist of `carteiro domain check`: what Gmail, Yahoo
//! (2024) and Microsoft (2025) require of bulk senders beyond the records
//! themselves: DKIM and SPF aligned with the From domain under DMARC,
//! forward-confirmed reverse DNS of the sending address matching the EHLO
//! name, TLS for delivery, and a spam complaint rate below 0.3% (best below
//! 0.1%).
//!
//! Pure like the rest of this module: the caller looks things up and counts
//! events, these functions judge.

use super::check::{CheckStatus, LookupFailure};
use serde::Serialize;
use std::net::IpAddr;

/// Complaint rates above this fraction of deliveries get a warning.
pub const COMPLAINT_RATE_WARNING: f64 = 0.001;
/// Above this, an error: Gmail and Yahoo start rejecting bulk mail.
pub const COMPLAINT_RATE_ERROR: f64 = 0.003;

/// One item of the checklist, in the shape of a record check result
/// (`purpose`, `type`, `name`, `status`, `message`) so that `--json` gives
/// one array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChecklistItem {
    /// `alignment`, `ptr`, `tls`, `complaint-rate`.
    pub purpose: &'static str,
    /// `PTR` for the reverse DNS item, else `null`.
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    /// What was checked: a domain, an address, an account.
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
}

fn item(
    purpose: &'static str,
    kind: Option<&'static str>,
    name: &str,
    status: CheckStatus,
    message: String,
) -> ChecklistItem {
    ChecklistItem {
        purpose,
        kind,
        name: name.to_owned(),
        status,
        message,
    }
}

/// DMARC alignment (RFC 7489 §3.1). Carteiro signs with the From domain
/// (DKIM always aligned) and sends from `return_path_domain`, a subdomain of
/// `domain`: SPF aligns under relaxed alignment (the default) and not under
/// `aspf=s`. `dmarc` is the lookup of `_dmarc.<domain>`.
pub fn check_alignment(
    domain: &str,
    return_path_domain: &str,
    dmarc: &Result<Vec<String>, LookupFailure>,
) -> ChecklistItem {
    let name = format!("_dmarc.{domain}");
    let record = match dmarc {
        Ok(records) => records
            .iter()
            .find(|r| r.trim_start().to_ascii_lowercase().starts_with("v=dmarc1")),
        Err(_) => None,
    };
    let Some(record) = record else {
        return item(
            "alignment",
            None,
            &name,
            CheckStatus::Missing,
            format!(
                "No DMARC policy at {name}, so receivers cannot judge alignment; bulk senders \
                 need one (publish the DMARC record above)."
            ),
        );
    };
    let tag = |wanted: &str| {
        record
            .split(';')
            .filter_map(|t| t.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let strict_spf = tag("aspf").as_deref() == Some("s");
    let strict_dkim = tag("adkim").as_deref() == Some("s");
    let mut notes = vec![format!(
        "DKIM is signed with d={domain}, the From domain: aligned{}.",
        if strict_dkim { " (strict)" } else { "" }
    )];
    let status = if strict_spf && !return_path_domain.eq_ignore_ascii_case(domain) {
        notes.push(format!(
            "SPF is checked on the return path {return_path_domain}, which does not align \
             with {domain} under aspf=s; DMARC still passes through DKIM. Use relaxed SPF \
             alignment (remove aspf=s) to have both."
        ));
        CheckStatus::Warning
    } else {
        notes.push(format!(
            "SPF is checked on the return path {return_path_domain}, a subdomain of {domain}: \
             aligned under relaxed alignment."
        ));
        CheckStatus::Ok
    };
    item("alignment", None, &name, status, notes.join(" "))
}

/// Forward-confirmed reverse DNS: each address of `hostname` (the EHLO name)
/// must have a PTR naming `hostname`. `addrs` is the lookup of hostname's
/// A/AAAA records, `ptrs` the PTR lookup of each of them.
pub fn check_ptr(
    hostname: &str,
    addrs: &Result<Vec<IpAddr>, String>,
    ptrs: &[(IpAddr, Result<Vec<String>, LookupFailure>)],
) -> Vec<ChecklistItem> {
    let addrs = match addrs {
        Ok(addrs) if !addrs.is_empty() => addrs,
        Ok(_) | Err(_) => {
            let why = addrs.as_ref().err().cloned().unwrap_or_default();
            return vec![item(
                "ptr",
                Some("PTR"),
                hostname,
                CheckStatus::Missing,
                format!(
                    "The EHLO name {hostname} (the `hostname` setting) has no A or AAAA record{}. \
                     Receivers compare the sending address's reverse DNS with it: publish an \
                     A record for {hostname} pointing at the relay's public address and a PTR \
                     for that address naming {hostname}.",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    }
                ),
            )];
        }
    };
    addrs
        .iter()
        .map(|ip| {
            let found = ptrs.iter().find(|(a, _)| a == ip).map(|(_, r)| r);
            let name = ip.to_string();
            match found {
                Some(Ok(names)) if names.iter().any(|n| n.eq_ignore_ascii_case(hostname)) => item(
                    "ptr",
                    Some("PTR"),
                    &name,
                    CheckStatus::Ok,
                    format!("{ip} points back to {hostname}, the EHLO name."),
                ),
                Some(Ok(names)) => item(
                    "ptr",
                    Some("PTR"),
                    &name,
                    CheckStatus::Wrong,
                    format!(
                        "The reverse DNS of {ip} is {}, not the EHLO name {hostname}. Ask the \
                         owner of the address (your hosting provider) to set its PTR to \
                         {hostname}, or set `hostname` to the PTR name.",
                        names.join(", ")
                    ),
                ),
                Some(Err(LookupFailure::Failed(why))) => item(
                    "ptr",
                    Some("PTR"),
                    &name,
                    CheckStatus::Warning,
                    format!("The reverse lookup of {ip} failed ({why}); try again later."),
                ),
                Some(Err(_)) | None => item(
                    "ptr",
                    Some("PTR"),
                    &name,
                    CheckStatus::Missing,
                    format!(
                        "{ip} (an address of {hostname}) has no reverse DNS. Large receivers \
                         refuse or junk mail from addresses without a PTR: ask the owner of the \
                         address to set it to {hostname}."
                    ),
                ),
            }
        })
        .collect()
}

/// TLS on delivery: the configured policy and, when there were deliveries
/// in the last day, the share made over TLS.
pub fn check_tls(policy: &str, tls_deliveries: Option<(u64, u64)>) -> ChecklistItem {
    let observed = match tls_deliveries {
        Some((tls, total)) if total > 0 => format!(
            " In the last day {tls} of {total} deliveries ({:.1}%) used TLS.",
            tls as f64 * 100.0 / total as f64
        ),
        _ => String::new(),
    };
    let (status, text) = match policy {
        "none" => (
            CheckStatus::Wrong,
            "delivery.tls is \"none\": mail leaves in clear text. Gmail marks such mail with a \
             red lock and bulk-sender rules expect TLS; use \"opportunistic\" (the default)."
                .to_owned(),
        ),
        "required" | "verify" => (
            CheckStatus::Ok,
            format!("delivery.tls is \"{policy}\": every delivery uses TLS."),
        ),
        _ => (
            CheckStatus::Ok,
            "delivery.tls is \"opportunistic\": STARTTLS whenever the receiver offers it (all \
             large providers do)."
                .to_owned(),
        ),
    };
    let status = match tls_deliveries {
        Some((tls, total)) if total > 0 && tls < total && status == CheckStatus::Ok => {
            CheckStatus::Warning
        }
        _ => status,
    };
    item("tls", None, "delivery", status, format!("{text}{observed}"))
}

/// The account's spam complaint rate over the last day: complaints per
/// delivered message. Warning above 0.1%, error above 0.3%.
pub fn check_complaint_rate(account: &str, complaints: u64, delivered: u64) -> ChecklistItem {
    if delivered == 0 {
        let status = if complaints == 0 {
            CheckStatus::Ok
        } else {
            CheckStatus::Warning
        };
        return item(
            "complaint-rate",
            None,
            account,
            status,
            format!(
                "No deliveries for account {account} in the last day ({complaints} complaints): \
                 no rate to judge."
            ),
        );
    }
    let rate = complaints as f64 / delivered as f64;
    let figure = format!(
        "{complaints} {} for {delivered} delivered messages in the last day: {:.3}%.",
        if complaints == 1 {
            "complaint"
        } else {
            "complaints"
        },
        rate * 100.0
    );
    let (status, advice) = if rate > COMPLAINT_RATE_ERROR {
        (
            CheckStatus::Wrong,
            " Above 0.3%: Gmail and Yahoo reject or junk bulk mail from senders at this rate. \
             Send only to people who asked for the mail, make unsubscribing easy, and stop \
             sending to inactive addresses.",
        )
    } else if rate > COMPLAINT_RATE_WARNING {
        (
            CheckStatus::Warning,
            " Above 0.1%: keep it lower (Gmail's guideline); 0.3% is the limit.",
        )
    } else {
        (CheckStatus::Ok, " Below 0.1%.")
    };
    item(
        "complaint-rate",
        None,
        account,
        status,
        format!("Account {account}: {figure}{advice}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmarc(text: &str) -> Result<Vec<String>, LookupFailure> {
        Ok(vec![text.to_owned()])
    }

    #[test]
    fn alignment_relaxed_is_ok_strict_spf_warns_missing_dmarc_is_missing() {
        let relaxed = check_alignment("shop.test", "bounces.shop.test", &dmarc("v=DMARC1; p=none"));
        assert_eq!(relaxed.status, CheckStatus::Ok, "{}", relaxed.message);
        let strict = check_alignment(
            "shop.test",
            "bounces.shop.test",
            &dmarc("v=DMARC1; p=reject; aspf=s"),
        );
        assert_eq!(strict.status, CheckStatus::Warning, "{}", strict.message);
        assert!(strict.message.contains("aspf=s"));
        let none = check_alignment(
            "shop.test",
            "bounces.shop.test",
            &Err(LookupFailure::NxDomain),
        );
        assert_eq!(none.status, CheckStatus::Missing);
        let other = check_alignment("shop.test", "bounces.shop.test", &dmarc("v=spf1 -all"));
        assert_eq!(other.status, CheckStatus::Missing);
    }

    #[test]
    fn ptr_must_name_the_ehlo_host() {
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let b: IpAddr = "2001:db8::10".parse().unwrap();
        let items = check_ptr(
            "relay.shop.test",
            &Ok(vec![a, b]),
            &[
                (a, Ok(vec!["relay.shop.test".into()])),
                (b, Ok(vec!["host-10.isp.test".into()])),
            ],
        );
        let statuses: Vec<CheckStatus> = items.iter().map(|i| i.status).collect();
        assert_eq!(statuses, [CheckStatus::Ok, CheckStatus::Wrong]);
        assert!(items[1].message.contains("host-10.isp.test"));

        let missing = check_ptr(
            "relay.shop.test",
            &Ok(vec![a]),
            &[(a, Err(LookupFailure::NxDomain))],
        );
        assert_eq!(missing[0].status, CheckStatus::Missing);
        let no_host = check_ptr("relay.shop.test", &Err("no such domain".into()), &[]);
        assert_eq!(no_host.len(), 1);
        assert_eq!(no_host[0].status, CheckStatus::Missing);
        assert!(no_host[0].message.contains("no such domain"));
    }

    #[test]
    fn complaint_rate_thresholds() {
        let status = |c, d| check_complaint_rate("shop", c, d).status;
        assert_eq!(status(0, 0), CheckStatus::Ok);
        assert_eq!(status(0, 10_000), CheckStatus::Ok);
        assert_eq!(status(10, 10_000), CheckStatus::Ok); // exactly 0.1%
        assert_eq!(status(11, 10_000), CheckStatus::Warning);
        assert_eq!(status(30, 10_000), CheckStatus::Warning); // exactly 0.3%
        assert_eq!(status(31, 10_000), CheckStatus::Wrong);
        assert_eq!(status(3, 0), CheckStatus::Warning);
    }

    #[test]
    fn tls_policy_and_observed_share() {
        assert_eq!(check_tls("none", None).status, CheckStatus::Wrong);
        assert_eq!(check_tls("opportunistic", None).status, CheckStatus::Ok);
        assert_eq!(check_tls("required", Some((5, 5))).status, CheckStatus::Ok);
        let partial = check_tls("opportunistic", Some((9, 10)));
        assert_eq!(partial.status, CheckStatus::Warning);
        assert!(partial.message.contains("9 of 10"), "{}", partial.message);
    }
}
