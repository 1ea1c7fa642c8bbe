//! The `[tracking]` section: which accounts' mail is tracked by default.
//!
//! Values only; the intake applies them. A message sent through the API
//! overrides either default with `track_opens` / `track_clicks`.

use serde::Deserialize;

/// The `[tracking]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingConfig {
    /// Accounts whose HTML mail gets an open-tracking pixel by default.
    /// Default `[]`.
    pub open_accounts: Vec<String>,
    /// Accounts whose HTML mail gets its links rewritten for click tracking
    /// by default. Default `[]`.
    pub click_accounts: Vec<String>,
}

impl TrackingConfig {
    /// Whether `account`'s mail is open-tracked by default.
    pub fn tracks_opens(&self, account: &str) -> bool {
        self.open_accounts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(account))
    }

    /// Whether `account`'s mail is click-tracked by default.
    pub fn tracks_clicks(&self, account: &str) -> bool {
        self.click_accounts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(account))
    }
}
