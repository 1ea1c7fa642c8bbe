//! MX resolution (RFC 5321 §5.1, null MX RFC 7505): turns a destination
//! domain into the ordered list of hosts and addresses to try.
//!
//! This module only looks names up; it does not connect anywhere, does not
//! remember which hosts failed and does not cache beyond hickory's own
//! TTL-respecting cache.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rand::seq::SliceRandom;
use tokio::task::JoinSet;

use crate::error::ResolveError;
pub use carteiro_mail::dns_records::LookupFailure;

/// A DNS resolver for delivery. Cheap to clone: clones share one cache and
/// one set of name server connections.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

/// One mail exchanger of a domain with its addresses (IPv4 first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxTarget {
    /// The exchange's name (without the trailing dot), or the domain itself
    /// for an implicit MX or an address literal.
    pub host: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

/// What an address lookup found, keeping "no such name" apart from "the
/// name exists but has no addresses" because they lead to different replies.
enum Addrs {
    Found(Vec<IpAddr>),
    NoSuchName,
    NoRecords,
}

impl Resolver {
    /// A resolver using exactly `nameservers` (UDP, with TCP for truncated
    /// answers), or the system configuration (`/etc/resolv.conf`) when the
    /// list is empty.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Resolver, ResolveError> {
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| ResolveError::Config(e.to_string()))?
        } else {
            let servers = nameservers
                .iter()
                .map(|server| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = server.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = server.port();
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            let mut builder = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            // Explicit servers mean "exactly these": /etc/hosts must not
            // answer instead of them.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        // Both families, IPv4 first: most receiving MTAs are best reached
        // over IPv4 and IPv6 reputation is often stricter.
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let inner = builder
            .build()
            .map_err(|e| ResolveError::Config(e.to_string()))?;
        Ok(Resolver { inner })
    }

    /// The mail exchangers of `domain` in the order to try them: by
    /// preference, equal preferences shuffled, each with its addresses.
    /// Exchanges without addresses are left out.
    pub async fn mx_targets(&self, domain: &str) -> Result<Vec<MxTarget>, ResolveError> {
        let domain = domain.trim_end_matches('.');
        if domain.starts_with('[') {
            let addr = parse_literal(domain)
                .ok_or_else(|| ResolveError::InvalidName(domain.to_string()))?;
            return Ok(vec![MxTarget {
                host: domain.to_string(),
                preference: 0,
                addrs: vec![addr],
            }]);
        }
        if domain.is_empty() {
            return Err(ResolveError::InvalidName(domain.to_string()));
        }

        let mut exchanges = match self.inner.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(e) if e.is_nx_domain() => return Err(ResolveError::NoSuchDomain(domain.into())),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(temporary(&e)),
        };

        if exchanges.is_empty() {
            return self.implicit_mx(domain).await;
        }
        if exchanges.len() == 1 && exchanges[0].0 == 0 && is_root(&exchanges[0].1) {
            return Err(ResolveError::NullMx(domain.into()));
        }
        // A "." among real exchanges is a misconfiguration; it can never be
        // connected to, so it is dropped.
        exchanges.retain(|(_, host)| !is_root(host));

        // Shuffle, then a stable sort: equal preferences end up in random
        // order, spreading load as §5.1 asks.
        exchanges.shuffle(&mut rand::rng());
        exchanges.sort_by_key(|(preference, _)| *preference);

        let mut lookups = JoinSet::new();
        for (index, (_, host)) in exchanges.iter().enumerate() {
            let resolver = self.clone();
            let host = host.trim_end_matches('.').to_string();
            lookups.spawn(async move { (index, resolver.lookup_addrs(&host).await) });
        }
        let mut found: Vec<Option<Vec<IpAddr>>> = vec![None; exchanges.len()];
        let mut last_error = None;
        while let Some(joined) = lookups.join_next().await {
            match joined {
                Ok((index, Ok(Addrs::Found(addrs)))) => found[index] = Some(addrs),
                Ok((_, Ok(Addrs::NoSuchName | Addrs::NoRecords))) => {}
                Ok((_, Err(e))) => last_error = Some(e),
                Err(e) => last_error = Some(ResolveError::Temporary(e.to_string())),
            }
        }

        let targets: Vec<MxTarget> = exchanges
            .into_iter()
            .zip(found)
            .filter_map(|((preference, host), addrs)| {
                Some(MxTarget {
                    host: host.trim_end_matches('.').to_string(),
                    preference,
                    addrs: addrs?,
                })
            })
            .collect();
        if targets.is_empty() {
            // A lookup that failed temporarily says more than "no address".
            return Err(last_error.unwrap_or_else(|| ResolveError::NoAddresses(domain.into())));
        }
        Ok(targets)
    }

    /// The A and AAAA addresses of `host` (IPv4 first). An IP address or an
    /// address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) is returned as is.
    pub async fn host_addrs(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let host = host.trim_end_matches('.');
        match self.lookup_addrs(host).await? {
            Addrs::Found(addrs) => Ok(addrs),
            Addrs::NoSuchName => Err(ResolveError::NoSuchDomain(host.into())),
            Addrs::NoRecords => Err(ResolveError::NoAddresses(host.into())),
        }
    }

    /// The TXT records at `name`, each record's strings joined into one
    /// (RFC 7208 §3.3: a record split into several strings is one text).
    pub async fn txt_records(&self, name: &str) -> Result<Vec<String>, LookupFailure> {
        let name = name.trim_end_matches('.');
        match self.inner.txt_lookup(fqdn(name)).await {
            Ok(lookup) => {
                let texts: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part))
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect();
                if texts.is_empty() {
                    Err(LookupFailure::NoRecords)
                } else {
                    Ok(texts)
                }
            }
            Err(e) if e.is_nx_domain() => Err(LookupFailure::NxDomain),
            Err(e) if e.is_no_records_found() => Err(LookupFailure::NoRecords),
            Err(e) => Err(LookupFailure::Failed(e.to_string())),
        }
    }

    /// The MX records at `name` as (preference, exchange without the
    /// trailing dot), in no particular order.
    pub async fn mx_records(&self, name: &str) -> Result<Vec<(u16, String)>, LookupFailure> {
        let name = name.trim_end_matches('.');
        match self.inner.mx_lookup(fqdn(name)).await {
            Ok(lookup) => {
                let records: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange.to_ascii().trim_end_matches('.').to_string(),
                        )),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    Err(LookupFailure::NoRecords)
                } else {
                    Ok(records)
                }
            }
            Err(e) if e.is_nx_domain() => Err(LookupFailure::NxDomain),
            Err(e) if e.is_no_records_found() => Err(LookupFailure::NoRecords),
            Err(e) => Err(LookupFailure::Failed(e.to_string())),
        }
    }

    /// The PTR names of `ip` (without the trailing dot): the reverse DNS
    /// receivers compare with the EHLO name.
    pub async fn ptr_names(&self, ip: IpAddr) -> Result<Vec<String>, LookupFailure> {
        match self.inner.reverse_lookup(ip).await {
            Ok(lookup) => {
                let names: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::PTR(ptr) => {
                            Some(ptr.0.to_ascii().trim_end_matches('.').to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect();
                if names.is_empty() {
                    Err(LookupFailure::NoRecords)
                } else {
                    Ok(names)
                }
            }
            Err(e) if e.is_nx_domain() => Err(LookupFailure::NxDomain),
            Err(e) if e.is_no_records_found() => Err(LookupFailure::NoRecords),
            Err(e) => Err(LookupFailure::Failed(e.to_string())),
        }
    }

    /// §5.1: no MX records but the domain exists, so the domain itself is
    /// the only exchange, with preference 0.
    async fn implicit_mx(&self, domain: &str) -> Result<Vec<MxTarget>, ResolveError> {
        match self.lookup_addrs(domain).await? {
            Addrs::Found(addrs) => Ok(vec![MxTarget {
                host: domain.to_string(),
                preference: 0,
                addrs,
            }]),
            Addrs::NoSuchName => Err(ResolveError::NoSuchDomain(domain.into())),
            Addrs::NoRecords => Err(ResolveError::NoMailHost(domain.into())),
        }
    }

    async fn lookup_addrs(&self, host: &str) -> Result<Addrs, ResolveError> {
        if let Some(addr) = parse_literal(host) {
            return Ok(Addrs::Found(vec![addr]));
        }
        if host.is_empty() {
            return Err(ResolveError::InvalidName(host.to_string()));
        }
        match self.inner.lookup_ip(fqdn(host)).await {
            Ok(lookup) => {
                let mut addrs: Vec<IpAddr> = Vec::new();
                for addr in lookup.iter() {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                Ok(if addrs.is_empty() {
                    Addrs::NoRecords
                } else {
                    Addrs::Found(addrs)
                })
            }
            Err(e) if e.is_nx_domain() => Ok(Addrs::NoSuchName),
            Err(e) if e.is_no_records_found() => Ok(Addrs::NoRecords),
            Err(e) => Err(temporary(&e)),
        }
    }
}

/// The absolute form of a name, so resolv.conf search domains never apply.
fn fqdn(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    out.push_str(name);
    out.push('.');
    out
}

fn is_root(exchange: &str) -> bool {
    exchange.is_empty() || exchange == "."
}

fn temporary(e: &NetError) -> ResolveError {
    ResolveError::Temporary(e.to_string())
}

/// An IP address given directly, bare or as an RFC 5321 address literal.
fn parse_literal(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        return match inner.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
            None => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
        };
    }
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use carteiro_testkit::dns::DnsFixture;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, last)
    }

    async fn fixture() -> DnsFixture {
        DnsFixture::builder()
            .mx("example.test", 20, "mx3.example.test")
            .mx("example.test", 10, "mx1.example.test")
            .mx("example.test", 10, "mx2.example.test")
            .mx("example.test", 30, "gone.example.test")
            .a("mx1.example.test", v4(11))
            .aaaa("mx1.example.test", Ipv6Addr::LOCALHOST)
            .a("mx2.example.test", v4(12))
            .a("mx3.example.test", v4(13))
            .a("implicit.test", v4(20))
            .null_mx("nomail.test")
            .txt("nohost.test", "v=spf1 -all")
            .mx("broken.test", 10, "nowhere.test")
            .start()
            .await
    }

    fn resolver(dns: &DnsFixture) -> Resolver {
        Resolver::new(&[dns.addr()]).expect("resolver")
    }

    #[tokio::test]
    async fn txt_and_mx_records_are_returned_as_published() {
        let long = format!("v=DKIM1; k=rsa; p={}", "A".repeat(400));
        let dns = DnsFixture::builder()
            .txt("sel._domainkey.shop.test", &long)
            .txt("shop.test", "v=spf1 a:relay.test ~all")
            .txt("shop.test", "google-site-verification=x")
            .mx("bounces.shop.test", 10, "relay.test")
            .start()
            .await;
        let r = resolver(&dns);
        // The long value arrives split in strings of 255 and is joined again.
        assert_eq!(
            r.txt_records("sel._domainkey.shop.test").await,
            Ok(vec![long])
        );
        let mut spf = r.txt_records("shop.test").await.unwrap();
        spf.sort();
        assert_eq!(
            spf,
            ["google-site-verification=x", "v=spf1 a:relay.test ~all"]
        );
        assert_eq!(
            r.mx_records("bounces.shop.test").await,
            Ok(vec![(10, "relay.test".to_string())])
        );
        assert_eq!(
            r.txt_records("absent.shop.test").await,
            Err(LookupFailure::NxDomain)
        );
        assert_eq!(
            r.mx_records("shop.test").await,
            Err(LookupFailure::NoRecords)
        );
    }

    #[tokio::test]
    async fn mx_targets_are_ordered_by_preference_with_addresses() {
        let dns = fixture().await;
        let targets = resolver(&dns)
            .mx_targets("example.test")
            .await
            .expect("targets");
        let preferences: Vec<u16> = targets.iter().map(|t| t.preference).collect();
        // gone.example.test has no address and is left out.
        assert_eq!(preferences, [10, 10, 20]);
        assert_eq!(targets[2].host, "mx3.example.test");
        assert_eq!(targets[2].addrs, [IpAddr::V4(v4(13))]);
        let mx1 = targets
            .iter()
            .find(|t| t.host == "mx1.example.test")
            .expect("mx1");
        assert_eq!(
            mx1.addrs,
            [IpAddr::V4(v4(11)), IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
    }

    #[tokio::test]
    async fn equal_preferences_come_in_both_orders() {
        let dns = fixture().await;
        let resolver = resolver(&dns);
        let mut firsts = std::collections::HashSet::new();
        // 2^-39 odds that one order shows up 40 times in a row.
        for _ in 0..40 {
            let targets = resolver.mx_targets("example.test").await.expect("targets");
            firsts.insert(targets[0].host.clone());
            if firsts.len() == 2 {
                break;
            }
        }
        assert_eq!(firsts.len(), 2, "{firsts:?}");
    }

    #[tokio::test]
    async fn implicit_mx_is_the_domain_itself() {
        let dns = fixture().await;
        let targets = resolver(&dns)
            .mx_targets("implicit.test")
            .await
            .expect("implicit mx");
        assert_eq!(
            targets,
            [MxTarget {
                host: "implicit.test".into(),
                preference: 0,
                addrs: vec![IpAddr::V4(v4(20))],
            }]
        );
    }

    #[tokio::test]
    async fn negative_answers_become_typed_errors() {
        let dns = fixture().await;
        let resolver = resolver(&dns);
        let err = resolver
            .mx_targets("nomail.test")
            .await
            .expect_err("null mx");
        assert!(matches!(err, ResolveError::NullMx(_)), "{err}");
        assert_eq!(err.reply().code, 556);
        let err = resolver.mx_targets("missing.test").await.expect_err("nx");
        assert!(matches!(err, ResolveError::NoSuchDomain(_)), "{err}");
        assert!(err.is_permanent());
        let err = resolver
            .mx_targets("nohost.test")
            .await
            .expect_err("no host");
        assert!(matches!(err, ResolveError::NoMailHost(_)), "{err}");
        assert!(err.is_permanent());
        let err = resolver
            .mx_targets("broken.test")
            .await
            .expect_err("no addr");
        assert!(matches!(err, ResolveError::NoAddresses(_)), "{err}");
        assert!(!err.is_permanent());
        let err = resolver.host_addrs("missing.test").await.expect_err("nx");
        assert!(matches!(err, ResolveError::NoSuchDomain(_)), "{err}");
    }

    #[tokio::test]
    async fn literals_skip_dns() {
        let dns = fixture().await;
        let resolver = resolver(&dns);
        let targets = resolver.mx_targets("[192.0.2.1]").await.expect("literal");
        assert_eq!(targets[0].addrs, [IpAddr::from([192, 0, 2, 1])]);
        assert_eq!(
            resolver.host_addrs("[IPv6:::1]").await.expect("v6"),
            [IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
        assert_eq!(
            resolver.host_addrs("mx2.example.test").await.expect("name"),
            [IpAddr::V4(v4(12))]
        );
        let err = resolver.mx_targets("[300.0.0.1]").await.expect_err("bad");
        assert!(matches!(err, ResolveError::InvalidName(_)), "{err}");
    }

    /// A name server that answers every query with SERVFAIL.
    async fn servfail_server() -> SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if n < 12 {
                    continue;
                }
                // Same id and question; QR set, RCODE 2 (SERVFAIL).
                buf[2] |= 0x80;
                buf[3] = (buf[3] & 0xf0) | 2;
                let _ = socket.send_to(&buf[..n], peer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn servfail_is_temporary() {
        let resolver = Resolver::new(&[servfail_server().await]).expect("resolver");
        let err = resolver
            .mx_targets("example.test")
            .await
            .expect_err("servfail");
        assert!(matches!(err, ResolveError::Temporary(_)), "{err}");
        assert_eq!(err.reply().status, Some(carteiro_mail::Status(4, 4, 3)));
    }

    #[test]
    fn literals_parse() {
        assert_eq!(
            parse_literal("[192.0.2.1]"),
            Some(IpAddr::from([192, 0, 2, 1]))
        );
        assert_eq!(
            parse_literal("[IPv6:2001:db8::1]"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(parse_literal("[2001:db8::1]"), None);
        assert_eq!(
            parse_literal("192.0.2.1"),
            Some(IpAddr::from([192, 0, 2, 1]))
        );
        assert_eq!(parse_literal("mx.example.test"), None);
    }
}
