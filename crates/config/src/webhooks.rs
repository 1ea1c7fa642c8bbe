//! The `[webhooks]` section: how events are pushed to webhook endpoints
//! (retry schedule, request timeout, and which addresses they may reach).
//! The endpoints themselves are data, kept per account through the API.
//!
//! Values only; the API checks new endpoints against `allow_private_targets`
//! and the dispatcher applies the rest (the address classification itself is
//! `carteiro_net::TargetPolicy`).

use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::Visitor;
use serde::{Deserialize, Deserializer};

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
    /// Which non-public addresses (loopback, private, link-local, CGNAT,
    /// unique local, multicast...) webhook URLs may reach: `false` (none,
    /// the default), `true` (every address), or a list of networks allowed
    /// besides the public addresses (`["10.1.0.0/16"]`).
    #[serde(deserialize_with = "private_targets")]
    pub allow_private_targets: PrivateTargets,
}

/// `webhooks.allow_private_targets`: which non-public addresses a webhook
/// may be sent to. Public addresses are always allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrivateTargets {
    /// `false`: none, so an endpoint cannot reach the host's or its
    /// network's internal services (SSRF).
    #[default]
    Refused,
    /// `true`: every address, for receivers on the same host or network.
    Allowed,
    /// A list of networks: these besides the public addresses (`[]` is the
    /// same as `false`).
    Networks(Vec<IpNet>),
}

impl PrivateTargets {
    /// Whether every address is allowed (nothing needs checking).
    pub fn allows_all(&self) -> bool {
        matches!(self, PrivateTargets::Allowed)
    }

    /// The networks allowed besides the public addresses.
    pub fn networks(&self) -> &[IpNet] {
        match self {
            PrivateTargets::Networks(networks) => networks,
            PrivateTargets::Refused | PrivateTargets::Allowed => &[],
        }
    }
}

/// Reads `webhooks.allow_private_targets`: `true`, `false`, or a list of
/// networks (each read like `de::parse_network`, reported at its position).
fn private_targets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PrivateTargets, D::Error> {
    struct PrivateTargetsVisitor;

    impl<'de> Visitor<'de> for PrivateTargetsVisitor {
        type Value = PrivateTargets;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true, false or a list of networks such as [\"10.0.0.0/8\"]")
        }

        fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<PrivateTargets, E> {
            Ok(if value {
                PrivateTargets::Allowed
            } else {
                PrivateTargets::Refused
            })
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<PrivateTargets, A::Error> {
            let mut networks = Vec::new();
            while let Some(de::Network(network)) = seq.next_element()? {
                networks.push(network);
            }
            Ok(PrivateTargets::Networks(networks))
        }
    }

    deserializer.deserialize_any(PrivateTargetsVisitor)
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            allow_private_targets: PrivateTargets::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::PrivateTargets;
    use crate::Config;

    #[test]
    fn defaults_and_values() {
        let config = Config::from_toml_str("", None).expect("defaults");
        assert_eq!(config.webhooks.retry_initial, Duration::from_secs(10));
        assert_eq!(config.webhooks.retry_max, Duration::from_secs(3600));
        assert_eq!(config.webhooks.timeout, Duration::from_secs(10));
        assert_eq!(
            config.webhooks.allow_private_targets,
            PrivateTargets::Refused
        );
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
        assert_eq!(
            every.webhooks.allow_private_targets,
            PrivateTargets::Networks(vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap()
            ])
        );
    }

    #[test]
    fn private_targets_are_a_boolean_or_networks() {
        let read = |value: &str| {
            Config::from_toml_str(
                &format!("[webhooks]\nallow_private_targets = {value}\n"),
                None,
            )
            .expect(value)
            .webhooks
            .allow_private_targets
        };
        assert_eq!(read("false"), PrivateTargets::Refused);
        assert_eq!(read("true"), PrivateTargets::Allowed);
        assert!(read("true").allows_all());
        let networks = read("[\"10.1.2.3/16\", \"fd00::/8\", \"192.0.2.7\"]");
        assert_eq!(
            networks.networks(),
            [
                "10.1.0.0/16".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap()
            ]
        );
        assert!(!networks.allows_all());
        assert_eq!(read("[]"), PrivateTargets::Networks(Vec::new()));
        assert!(read("[]").networks().is_empty());
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
            (
                "[webhooks]\nallow_private_targets = \"yes\"\n",
                "webhooks.allow_private_targets: invalid type: string \"yes\", expected true, false",
            ),
            (
                "[webhooks]\nallow_private_targets = 1\n",
                "webhooks.allow_private_targets",
            ),
            (
                "[webhooks]\nallow_private_targets = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
                "webhooks.allow_private_targets[1]: invalid network \"10.0.0.0/33\"",
            ),
            (
                "[webhooks]\nallow_private_targets = [true]\n",
                "webhooks.allow_private_targets[0]",
            ),
        ] {
            let error = Config::from_toml_str(text, None)
                .expect_err(text)
                .to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }
}
