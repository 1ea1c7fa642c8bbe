//! The `[webhooks]` section: how events are pushed to webhook endpoints
//! (retry schedule and request timeout). The endpoints themselves are data,
//! kept per account through the API.
//!
//! Values only; the binary's dispatcher applies them.

use std::time::Duration;

use serde::Deserialize;

use crate::de;

/// The `[webhooks]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Delay before retrying an endpoint whose POST failed; each further
    /// failure in a row doubles it, up to `retry_max`. Default `"10s"`.
    #[serde(deserialize_with = "de::duration")]
    pub retry_initial: Duration,
    /// Longest delay between two attempts at a failing endpoint.
    /// Default `"1h"`.
    #[serde(deserialize_with = "de::duration")]
    pub retry_max: Duration,
    /// Time one POST may take, connection included, before it counts as
    /// failed. Default `"10s"`.
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::Config;

    #[test]
    fn defaults_and_values() {
        let config = Config::from_toml_str("", None).expect("defaults");
        assert_eq!(config.webhooks.retry_initial, Duration::from_secs(10));
        assert_eq!(config.webhooks.retry_max, Duration::from_secs(3600));
        assert_eq!(config.webhooks.timeout, Duration::from_secs(10));
        let config = Config::from_toml_str(
            "[webhooks]\nretry_initial = \"1s\"\nretry_max = \"2s\"\ntimeout = \"3s\"\n",
            None,
        )
        .expect("values");
        assert_eq!(config.webhooks.retry_initial, Duration::from_secs(1));
        assert_eq!(config.webhooks.retry_max, Duration::from_secs(2));
        assert_eq!(config.webhooks.timeout, Duration::from_secs(3));
        let every = Config::from_toml_str(include_str!("../testdata/every-key.toml"), None)
            .expect("every key");
        assert_eq!(every.webhooks.retry_initial, Duration::from_secs(5));
        assert_eq!(every.webhooks.retry_max, Duration::from_secs(1800));
        assert_eq!(every.webhooks.timeout, Duration::from_secs(4));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            (
                "[webhooks]\nretry_initial = \"0s\"\n",
                "webhooks.retry_initial",
            ),
            ("[webhooks]\ntimeout = \"0s\"\n", "webhooks.timeout"),
            (
                "[webhooks]\nretry_initial = \"2h\"\nretry_max = \"1h\"\n",
                "webhooks.retry_max",
            ),
            ("[webhooks]\nretry = \"1s\"\n", "webhooks.retry"),
        ] {
            let error = Config::from_toml_str(text, None)
                .expect_err(text)
                .to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }
}
