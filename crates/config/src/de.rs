//! Serde helpers for the value types of the file: durations, sizes, listen
//! addresses, nameservers, networks, the webhooks' private targets and
//! optional paths.
//!
//! Each helper reads one value and explains a bad one in words; it does not
//! know the key name (the caller maps the error's position to the key).
//! List elements are read one by one so a bad element is reported at its own
//! position (`smtp.relay_listen[1]`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::units::{parse_duration, parse_size};

/// A string value turned into `T` by a parser whose error is a sentence.
struct StrVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for StrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.parse)(value).map_err(E::custom)
    }
}

fn from_str<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    deserializer.deserialize_str(StrVisitor { expecting, parse })
}

/// Reads a duration string such as `"5m"` (see [`parse_duration`]).
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    from_str(
        deserializer,
        "a duration such as \"30s\", \"5m\", \"4h\" or \"5d\"",
        |text| parse_duration(text).map_err(|why| format!("invalid duration {text:?}: {why}")),
    )
}

/// Reads a size: a string with a unit (`"50MB"`) or a plain number of bytes.
pub(crate) fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as \"50MB\", \"512KiB\" or a number of bytes")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::custom(format!("invalid size {value}: negative")))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            parse_size(text).map_err(|why| E::custom(format!("invalid size {text:?}: {why}")))
        }
    }

    deserializer.deserialize_any(SizeVisitor)
}

/// Reads `"IP:PORT"` for an address to listen on.
pub(crate) fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "invalid listen address {text:?} (expected IP:PORT, such as \"127.0.0.1:2525\" or \"[::1]:2525\")"
        )
    })
}

/// Reads one listen address.
pub(crate) fn listen_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    from_str(
        deserializer,
        "an address such as \"127.0.0.1:2525\"",
        parse_listen_addr,
    )
}

/// One element of a list of listen addresses.
struct ListenAddr(SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        listen_addr(deserializer).map(ListenAddr)
    }
}

/// Reads a list of listen addresses.
pub(crate) fn listen_addrs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SocketAddr>, D::Error> {
    let list = Vec::<ListenAddr>::deserialize(deserializer)?;
    Ok(list.into_iter().map(|a| a.0).collect())
}

/// Reads a nameserver: `"IP:PORT"`, or a bare IP meaning port 53.
pub(crate) fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // A bare IPv6 address may come with or without brackets.
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!(
                "invalid nameserver {text:?} (expected IP or IP:PORT, such as \"127.0.0.1:53\")"
            )
        })
}

/// One element of the nameserver list.
struct Nameserver(SocketAddr);

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_str(
            deserializer,
            "a nameserver such as \"127.0.0.1:53\"",
            parse_nameserver,
        )
        .map(Nameserver)
    }
}

/// Reads the nameserver list.
pub(crate) fn nameservers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SocketAddr>, D::Error> {
    let list = Vec::<Nameserver>::deserialize(deserializer)?;
    Ok(list.into_iter().map(|n| n.0).collect())
}

/// Reads a network in CIDR notation; a bare IP is a /32 (IPv4) or /128
/// (IPv6) network. Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub(crate) fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("invalid network {text:?} (expected CIDR such as \"10.0.0.0/8\" or a single IP)")
    })
}

/// One element of a network list.
pub(crate) struct Network(pub(crate) IpNet);

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_str(
            deserializer,
            "a network such as \"10.0.0.0/8\"",
            parse_network,
        )
        .map(Network)
    }
}

/// Reads a list of networks.
pub(crate) fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let list = Vec::<Network>::deserialize(deserializer)?;
    Ok(list.into_iter().map(|n| n.0).collect())
}

/// Reads an optional listen address where the empty string means "not set".
pub(crate) fn optional_listen_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    from_str(
        deserializer,
        "an address such as \"127.0.0.1:9090\", or \"\"",
        |text| {
            if text.trim().is_empty() {
                Ok(None)
            } else {
                parse_listen_addr(text).map(Some)
            }
        },
    )
}

/// Reads an optional path where the empty string means "not set", so the
/// example file can show the key with `""`.
pub(crate) fn optional_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<PathBuf>, D::Error> {
    from_str(deserializer, "a file path", |text| {
        Ok((!text.is_empty()).then(|| PathBuf::from(text)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_accept_bare_ips_and_clear_host_bits() {
        assert_eq!(
            parse_network("10.1.2.3/8"),
            Ok("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            parse_network("192.0.2.7"),
            Ok("192.0.2.7/32".parse().unwrap())
        );
        assert_eq!(
            parse_network("2001:db8::1"),
            Ok("2001:db8::1/128".parse().unwrap())
        );
        assert_eq!(parse_network("::/0"), Ok("::/0".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0", "example.com", "", "10.0.0.0/"] {
            assert!(parse_network(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nameservers_default_to_port_53() {
        assert_eq!(
            parse_nameserver("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_nameserver("9.9.9.9"),
            Ok("9.9.9.9:53".parse().unwrap())
        );
        assert_eq!(parse_nameserver("::1"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(parse_nameserver("[::1]"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_nameserver("[::1]:54"),
            Ok("[::1]:54".parse().unwrap())
        );
        assert!(parse_nameserver("dns.example:53").is_err());
    }

    #[test]
    fn listen_addresses_need_ip_and_port() {
        assert_eq!(
            parse_listen_addr("0.0.0.0:25"),
            Ok("0.0.0.0:25".parse().unwrap())
        );
        assert_eq!(parse_listen_addr("[::]:25"), Ok("[::]:25".parse().unwrap()));
        for bad in [
            "127.0.0.1",
            "localhost:25",
            ":25",
            "127.0.0.1:70000",
            "::1:25",
        ] {
            assert!(parse_listen_addr(bad).is_err(), "{bad:?}");
        }
    }
}
