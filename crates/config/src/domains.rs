//! The `[domains]` section: the policy for sending domains.
//!
//! Values only; the SMTP handler and the HTTP API apply them.

use serde::Deserialize;

/// The `[domains]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainsConfig {
    /// Accounts that may send mail whose `From:` domain is not one of their
    /// sending domains (such mail is relayed unsigned). Every other account
    /// gets `550 5.7.1` over SMTP and a 4xx from the API for such mail. The
    /// default account is in the list by default, so a smarthost keeps
    /// relaying for machines on trusted networks. Default `["default"]`.
    pub allow_unowned_from: Vec<String>,
    /// Accounts whose mail is bulk mail by default: each message gets a
    /// one-click `List-Unsubscribe` (RFC 8058). Others opt in per message
    /// (`"list_unsubscribe": true` in the API, or an
    /// `X-Carteiro-List-Unsubscribe: yes` header over SMTP). Default `[]`.
    pub bulk_accounts: Vec<String>,
    /// The label put before a sending domain to make its return-path
    /// (bounce) domain: `bounces` gives `bounces.shop.example`. Default
    /// `"bounces"`.
    pub return_path_label: String,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        DomainsConfig {
            allow_unowned_from: vec!["default".to_owned()],
            bulk_accounts: Vec::new(),
            return_path_label: "bounces".to_owned(),
        }
    }
}

impl DomainsConfig {
    /// Whether `account` may send with a `From:` domain it does not own.
    pub fn allows_unowned_from(&self, account: &str) -> bool {
        self.allow_unowned_from
            .iter()
            .any(|a| a.eq_ignore_ascii_case(account))
    }

    /// Whether `account`'s mail is bulk mail by default.
    pub fn is_bulk_account(&self, account: &str) -> bool {
        self.bulk_accounts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(account))
    }

    /// The return-path domain of sending domain `domain`.
    pub fn return_path_domain(&self, domain: &str) -> String {
        format!("{}.{}", self.return_path_label, domain)
    }
}
