//! The `[smtp]` section: listeners, limits and authentication policy of the
//! SMTP server.
//!
//! Values only; the SMTP server crate applies them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::de;

/// The `[smtp]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Addresses for the port-25 role: clients on `trusted_networks` relay
    /// without AUTH, everyone else may only send to Carteiro's own domains
    /// (bounces, complaints). An empty list disables the listener.
    /// Default `["127.0.0.1:2525"]`.
    #[serde(deserialize_with = "de::listen_addrs")]
    pub relay_listen: Vec<SocketAddr>,
    /// Addresses for message submission (port-587 role): STARTTLS, then AUTH
    /// is required to relay. Default `["127.0.0.1:2587"]`.
    #[serde(deserialize_with = "de::listen_addrs")]
    pub submission_listen: Vec<SocketAddr>,
    /// Addresses for submission over implicit TLS (port-465 role), AUTH
    /// required to relay. Default `["127.0.0.1:2465"]`.
    #[serde(deserialize_with = "de::listen_addrs")]
    pub submissions_listen: Vec<SocketAddr>,
    /// Networks whose clients may relay on `relay_listen` without AUTH, as
    /// CIDRs; a bare IP is a /32 or /128 network. Host bits are cleared
    /// (`10.1.2.3/8` is stored as `10.0.0.0/8`). Default: none.
    #[serde(deserialize_with = "de::networks")]
    pub trusted_networks: Vec<IpNet>,
    /// Largest message accepted, in bytes (advertised with SIZE). Written as
    /// a size: `"50MB"` (= 50 000 000, powers of 1000), `"50MiB"`
    /// (= 52 428 800, powers of 1024) or a plain number of bytes.
    /// Default `"50MB"`; at most `"1GiB"`.
    #[serde(deserialize_with = "de::size")]
    pub max_message_size: u64,
    /// PEM certificate chain for STARTTLS and implicit TLS. Empty or absent:
    /// a self-signed certificate kept in `data_dir`. Relative paths are kept
    /// as written. Must be given together with `tls_key`.
    #[serde(deserialize_with = "de::optional_path")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    #[serde(deserialize_with = "de::optional_path")]
    pub tls_key: Option<PathBuf>,
    /// Most recipients accepted in one transaction. Default 1000.
    pub max_recipients: usize,
    /// Longest DATA line accepted, in octets without the CRLF (RFC 5321
    /// allows 998). Default 998.
    pub max_line_length: usize,
    /// Most simultaneous SMTP connections over all listeners. Default 2000.
    pub max_connections: usize,
    /// Most simultaneous SMTP connections from one client IP. Default 200.
    pub max_connections_per_ip: usize,
    /// Most simultaneous SMTP connections from one network prefix: a /24
    /// for IPv4, a /64 for IPv6 (usually one site or subscriber, however
    /// many addresses it rotates through). Clients on `trusted_networks` are
    /// not counted. Default 200, as much as one address may have: one
    /// network can take at most a tenth of the default `max_connections`.
    pub max_connections_per_prefix: usize,
    /// Connections of `max_connections` kept for clients on
    /// `trusted_networks`: other clients may only use the rest. Absent: a
    /// tenth of `max_connections`; nothing is reserved when there are no
    /// trusted networks. Read it through [`SmtpConfig::reserved_trusted`].
    pub reserved_trusted_connections: Option<usize>,
    /// Most commands outside a mail transaction (EHLO, NOOP, RSET, VRFY,
    /// HELP...) before the server closes a connection that sends no mail.
    /// Default 50.
    pub max_commands_before_mail: usize,
    /// Bad commands tolerated in one session before the server answers 421
    /// and closes. Default 20.
    pub max_errors: usize,
    /// How long a client may stay silent before it is disconnected.
    /// Default `"5m"`.
    #[serde(deserialize_with = "de::duration")]
    pub idle_timeout: Duration,
    /// Time allowed for one command line, from its first byte to its CRLF
    /// (a client dripping a line byte by byte is cut there), and the most a
    /// client may fall behind `min_data_rate`. Default `"60s"`.
    #[serde(deserialize_with = "de::duration")]
    pub command_timeout: Duration,
    /// Slowest average rate, in bytes per second, at which DATA and BDAT
    /// content must arrive once the client has used up `command_timeout` of
    /// slack. Written as a size (`"1KB"`); 0 turns the check off.
    /// Default `"1KB"`.
    #[serde(deserialize_with = "de::size")]
    pub min_data_rate: u64,
    /// Failed AUTH attempts allowed per client IP within
    /// `auth_failure_window`; further attempts are refused. Default 5.
    pub auth_max_failures: u32,
    /// The window over which `auth_max_failures` is counted. Default `"15m"`.
    #[serde(deserialize_with = "de::duration")]
    pub auth_failure_window: Duration,
    /// Failed AUTH attempts for one username, from any IP, before each
    /// further failure blocks that username for a growing time (1 s,
    /// doubling up to `auth_user_max_delay`). Counted over
    /// `auth_failure_window` from the last failure. Default 5.
    pub auth_user_max_failures: u32,
    /// The longest a username is blocked after a failure. Default `"1m"`.
    #[serde(deserialize_with = "de::duration")]
    pub auth_user_max_delay: Duration,
    /// Account that owns mail relayed from `trusted_networks` without AUTH.
    /// Default `"default"`.
    pub default_account: String,
    /// Domains Carteiro receives mail for (bounces, complaints) besides
    /// `hostname`. Stored lowercased. Default: none.
    pub local_domains: Vec<String>,
    /// Offer AUTH on connections that are not encrypted. Only for tests and
    /// trusted links: passwords would cross the network in clear.
    /// Default `false`.
    pub allow_auth_without_tls: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            relay_listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            submission_listen: vec![SocketAddr::from(([127, 0, 0, 1], 2587))],
            submissions_listen: vec![SocketAddr::from(([127, 0, 0, 1], 2465))],
            trusted_networks: Vec::new(),
            max_message_size: 50_000_000,
            tls_cert: None,
            tls_key: None,
            max_recipients: 1000,
            max_line_length: 998,
            max_connections: 2000,
            max_connections_per_ip: 200,
            max_connections_per_prefix: 200,
            reserved_trusted_connections: None,
            max_commands_before_mail: 50,
            max_errors: 20,
            idle_timeout: Duration::from_secs(5 * 60),
            command_timeout: Duration::from_secs(60),
            min_data_rate: 1000,
            auth_max_failures: 5,
            auth_failure_window: Duration::from_secs(15 * 60),
            auth_user_max_failures: 5,
            auth_user_max_delay: Duration::from_secs(60),
            default_account: "default".to_owned(),
            local_domains: Vec::new(),
            allow_auth_without_tls: false,
        }
    }
}

impl SmtpConfig {
    /// Whether a client at `ip` is on one of the `trusted_networks`. An
    /// IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack
    /// listener reports for an IPv4 client) counts as its IPv4 address.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_networks.iter().any(|net| net.contains(&ip))
    }

    /// Connections kept for trusted clients: `reserved_trusted_connections`,
    /// else a tenth of `max_connections`; none without trusted networks,
    /// since nobody could use them.
    pub fn reserved_trusted(&self) -> usize {
        if self.trusted_networks.is_empty() {
            return 0;
        }
        self.reserved_trusted_connections
            .unwrap_or(self.max_connections / 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_networks_match_mapped_addresses() {
        let smtp = SmtpConfig {
            trusted_networks: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            ..SmtpConfig::default()
        };
        assert!(smtp.is_trusted("10.1.2.3".parse().unwrap()));
        assert!(smtp.is_trusted("::ffff:10.1.2.3".parse().unwrap()));
        assert!(smtp.is_trusted("2001:db8::25".parse().unwrap()));
        assert!(!smtp.is_trusted("11.0.0.1".parse().unwrap()));
        assert!(!smtp.is_trusted("::ffff:11.0.0.1".parse().unwrap()));
        assert!(!smtp.is_trusted("2001:db9::1".parse().unwrap()));
        assert!(!SmtpConfig::default().is_trusted("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_trusted_reserve_defaults_to_a_tenth_and_needs_trusted_networks() {
        let mut smtp = SmtpConfig {
            max_connections: 500,
            ..SmtpConfig::default()
        };
        assert_eq!(smtp.reserved_trusted(), 0, "no trusted networks");
        smtp.trusted_networks = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(smtp.reserved_trusted(), 50);
        smtp.reserved_trusted_connections = Some(7);
        assert_eq!(smtp.reserved_trusted(), 7);
        smtp.trusted_networks.clear();
        assert_eq!(smtp.reserved_trusted(), 0);
    }
}
