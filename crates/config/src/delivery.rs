//! The `[delivery]` section: how queued mail leaves, with retry schedule,
//! connection limits, timeouts and per-domain routes to smarthosts.
//!
//! Values and route matching only; the delivery crate makes the connections.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::de as values;

/// The `[delivery]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Remote port for MX delivery; tests point it at a local sink.
    /// Default 25.
    pub smtp_port: u16,
    /// How long a message is retried before it bounces as expired.
    /// Default `"5d"`.
    #[serde(deserialize_with = "values::duration")]
    pub max_age: Duration,
    /// Delay before the first retry; each later delay doubles, up to
    /// `retry_max`. Default `"1m"`.
    #[serde(deserialize_with = "values::duration")]
    pub retry_initial: Duration,
    /// Longest delay between two attempts (the cap of the doubling).
    /// Default `"4h"`.
    #[serde(deserialize_with = "values::duration")]
    pub retry_max: Duration,
    /// Most simultaneous connections to one destination (MX host or relay).
    /// Default 20.
    pub max_connections_per_destination: usize,
    /// Most messages sent over one connection before it is closed.
    /// Default 1000.
    pub max_messages_per_connection: usize,
    /// Most recipients in one transaction; more recipients for the same
    /// destination are split over several transactions. Default 100.
    pub max_recipients_per_transaction: usize,
    /// Time allowed to open a TCP connection and read the greeting.
    /// Default `"30s"`.
    #[serde(deserialize_with = "values::duration")]
    pub connect_timeout: Duration,
    /// Time allowed for the reply to each command. Default `"5m"`.
    #[serde(deserialize_with = "values::duration")]
    pub command_timeout: Duration,
    /// Time allowed to send the message data and read the final reply.
    /// Default `"10m"`.
    #[serde(deserialize_with = "values::duration")]
    pub data_timeout: Duration,
    /// How long an idle outbound connection is kept open for reuse by the
    /// next message to the same destination; `"0s"` closes it at once.
    /// Default `"5s"`.
    #[serde(deserialize_with = "values::duration")]
    pub idle_connection_timeout: Duration,
    /// TLS policy for MX delivery (routes have their own `tls`).
    /// Default `"opportunistic"`.
    pub tls: TlsMode,
    /// Routes tried in order; the first whose `domains` match the recipient
    /// domain decides. No match: MX delivery. Default: none.
    pub routes: Vec<Route>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            smtp_port: 25,
            max_age: Duration::from_secs(5 * 86_400),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(4 * 3600),
            max_connections_per_destination: 20,
            max_messages_per_connection: 1000,
            max_recipients_per_transaction: 100,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            idle_connection_timeout: Duration::from_secs(5),
            tls: TlsMode::Opportunistic,
            routes: Vec::new(),
        }
    }
}

impl DeliveryConfig {
    /// The route for mail to `domain`: the first route that matches, or
    /// `None` for MX delivery.
    pub fn route_for(&self, domain: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.matches(domain))
    }
}

/// One `[[delivery.routes]]` entry.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Recipient domains this route is for, stored lowercased; `"*"` matches
    /// every domain. At least one is required.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Smarthost as `"host:port"` (`"[::1]:25"` for IPv6). Absent: MX
    /// delivery for these domains, with this route's `tls`.
    #[serde(default)]
    pub relay: Option<RelayTarget>,
    /// Login for the smarthost (AUTH PLAIN/LOGIN); needs `relay` and
    /// `auth_password`.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// Password for `auth_username`. Never shown by `Debug`.
    #[serde(default)]
    pub auth_password: Option<String>,
    /// TLS policy on this route. Default `"opportunistic"`.
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file of the CA certificates (or the self-signed certificate)
    /// trusted for this route's `tls = "verify"`, instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Route {
    /// Whether this route is for `domain`: `"*"` matches every domain,
    /// otherwise the domain must equal one of `domains`, ignoring ASCII case.
    /// The match is exact: `example.com` does not match `mx.example.com`.
    pub fn matches(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .any(|d| d == "*" || d.eq_ignore_ascii_case(domain))
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("domains", &self.domains)
            .field("relay", &self.relay)
            .field("auth_username", &self.auth_username)
            .field(
                "auth_password",
                &self.auth_password.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A smarthost to relay through, written `"host:port"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayTarget {
    /// Host name or IP address; an IPv6 address is kept without brackets so
    /// it can be passed to a resolver or socket as is.
    pub host: String,
    /// TCP port, never 0.
    pub port: u16,
}

impl RelayTarget {
    /// Parses `"host:port"` or `"[ipv6]:port"`.
    pub(crate) fn parse(text: &str) -> Result<RelayTarget, String> {
        const EXPECTED: &str =
            "expected host:port, such as \"smtp.example.com:587\" or \"[::1]:25\"";
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("invalid relay {text:?}: missing \"]\" ({EXPECTED})"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(format!(
                    "invalid relay {text:?}: {host:?} is not an IPv6 address"
                ));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("invalid relay {text:?}: missing port ({EXPECTED})"))?;
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| format!("invalid relay {text:?}: missing port ({EXPECTED})"))?;
            if host.contains(':') {
                return Err(format!(
                    "invalid relay {text:?}: an IPv6 address needs brackets, such as \"[::1]:25\""
                ));
            }
            let valid_host = host.parse::<IpAddr>().is_ok()
                || (!host.starts_with('[') && carteiro_mail::address::is_valid_domain(host));
            if !valid_host {
                return Err(format!(
                    "invalid relay {text:?}: {host:?} is not a host name ({EXPECTED})"
                ));
            }
            (host, port)
        };
        let port = match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                return Err(format!(
                    "invalid relay {text:?}: bad port {port:?} ({EXPECTED})"
                ));
            }
        };
        Ok(RelayTarget {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for RelayTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for RelayTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RelayVisitor;

        impl Visitor<'_> for RelayVisitor {
            type Value = RelayTarget;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a relay as \"host:port\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RelayTarget, E> {
                RelayTarget::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(RelayVisitor)
    }
}

/// TLS policy for an outbound connection, written `"none"`,
/// `"opportunistic"`, `"required"` or `"verify"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    /// Never start TLS, even when offered.
    None,
    /// Use STARTTLS when the server offers it; send in plain text when it
    /// does not.
    #[default]
    Opportunistic,
    /// Send only over TLS; a server without STARTTLS (or a failed
    /// handshake) makes the attempt fail temporarily. The certificate is
    /// not checked (like Postfix's `encrypt` level).
    Required,
    /// Like `Required`, and the server's certificate must be valid for its
    /// host name (the route's `relay` host, or the MX host) under the
    /// system's trusted CAs, or the route's `ca_file`. Use it for a
    /// smarthost that gets credentials.
    Verify,
}

impl TlsMode {
    const NAMES: &'static str = "\"none\", \"opportunistic\", \"required\", \"verify\"";

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Required => "required",
            TlsMode::Verify => "verify",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Written by hand rather than derived so that a bad value lists every mode
// and a number gets "expected one of ..." instead of serde's enum wording.
impl<'de> Deserialize<'de> for TlsMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;

        impl Visitor<'_> for ModeVisitor {
            type Value = TlsMode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "one of {}", TlsMode::NAMES)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TlsMode, E> {
                match text {
                    "none" => Ok(TlsMode::None),
                    "opportunistic" => Ok(TlsMode::Opportunistic),
                    "required" => Ok(TlsMode::Required),
                    "verify" => Ok(TlsMode::Verify),
                    other => Err(E::custom(format!(
                        "expected one of {}, got {other:?}",
                        TlsMode::NAMES
                    ))),
                }
            }
        }

        deserializer.deserialize_str(ModeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(domains: &[&str]) -> Route {
        Route {
            domains: domains.iter().map(|d| d.to_string()).collect(),
            relay: None,
            auth_username: None,
            auth_password: None,
            tls: TlsMode::default(),
            ca_file: None,
        }
    }

    #[test]
    fn relay_targets() {
        let ok = |text: &str, host: &str, port: u16| {
            let target = RelayTarget::parse(text).unwrap();
            assert_eq!((target.host.as_str(), target.port), (host, port), "{text}");
        };
        ok("smtp.example.com:587", "smtp.example.com", 587);
        ok("127.0.0.1:2526", "127.0.0.1", 2526);
        ok("[::1]:25", "::1", 25);
        ok("relay:25", "relay", 25);
        for bad in [
            "smtp.example.com",
            "::1:25",
            "[::1]",
            "[::1]25",
            "[x]:25",
            "host:0",
            "host:http",
            ":25",
            "a b:25",
            "[1.2.3.4]:25",
        ] {
            assert!(RelayTarget::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            RelayTarget::parse("smtp.example.com")
                .unwrap_err()
                .contains("missing port")
        );
        assert_eq!(
            RelayTarget::parse("[::1]:25").unwrap().to_string(),
            "[::1]:25"
        );
        assert_eq!(
            RelayTarget::parse("a.test:25").unwrap().to_string(),
            "a.test:25"
        );
    }

    #[test]
    fn routes_match_exact_domains_and_star() {
        let delivery = DeliveryConfig {
            routes: vec![route(&["sink.test", "other.test"]), route(&["*"])],
            ..DeliveryConfig::default()
        };
        assert!(delivery.routes[0].matches("SINK.test"));
        assert!(!delivery.routes[0].matches("sub.sink.test"));
        let first = |domain: &str| delivery.route_for(domain).map(|r| r.domains[0].clone());
        assert_eq!(first("other.test").as_deref(), Some("sink.test"));
        assert_eq!(first("example.com").as_deref(), Some("*"));
        assert_eq!(DeliveryConfig::default().route_for("example.com"), None);
    }

    #[test]
    fn debug_hides_the_password() {
        let mut with_password = route(&["a.test"]);
        with_password.auth_password = Some("hunter2".into());
        let shown = format!("{with_password:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
