//! Which addresses a request made on a user's behalf (a webhook POST) may
//! connect to: public addresses, plus whatever the operator allows. Without
//! this, whoever can register a URL can make Carteiro reach the services of
//! its own host and network (server-side request forgery): a loopback admin
//! port, an internal API, the cloud metadata service at 169.254.169.254.
//!
//! Plain values and a classification of addresses; no I/O. Resolving names
//! and refusing connections is the callers' part (the API when an endpoint
//! is made, the webhook dispatcher's DNS resolver when it connects), so both
//! judge an address the same way.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// `0.0.0.0/8` ("this network") and `::`.
    Unspecified,
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    Private,
    /// `100.64.0.0/10`, the shared address space of carrier-grade NAT
    /// (RFC 6598).
    SharedNat,
    /// `169.254.0.0/16` (with the cloud metadata service at
    /// 169.254.169.254) and `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`, IPv6's private addresses (RFC 4193), and the deprecated
    /// site-local `fec0::/10`.
    UniqueLocal,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `240.0.0.0/4`, with the broadcast address 255.255.255.255.
    Reserved,
}

impl AddressClass {
    /// The class in words, with its article: "a link-local address".
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::SharedNat => "a carrier-grade NAT address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::UniqueLocal => "a unique local (private) address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The class of an address that is not public, or `None` for a public one.
///
/// An IPv6 address that carries an IPv4 address (IPv4-mapped
/// `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`)
/// is judged by the IPv4 address: the kernel or a NAT64 gateway connects to
/// that one.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, ..] = ip.octets();
    Some(match (a, b) {
        (0, _) => AddressClass::Unspecified,
        (127, _) => AddressClass::Loopback,
        (10, _) | (172, 16..=31) | (192, 168) => AddressClass::Private,
        (100, 64..=127) => AddressClass::SharedNat,
        (169, 254) => AddressClass::LinkLocal,
        (224..=239, _) => AddressClass::Multicast,
        (240..=255, _) => AddressClass::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let first = ip.segments()[0];
    if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        Some(AddressClass::UniqueLocal)
    } else if first & 0xffc0 == 0xfe80 {
        Some(AddressClass::LinkLocal)
    } else if first & 0xff00 == 0xff00 {
        Some(AddressClass::Multicast)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-compatible (`::/96`, deprecated but still
/// parsed), NAT64's well-known prefix (`64:ff9b::/96`). `::` and `::1` are
/// not IPv4-compatible addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = ip.segments();
    let last_two = [segments[6], segments[7]];
    let v4 = Ipv4Addr::from((u32::from(last_two[0]) << 16) | u32::from(last_two[1]));
    match segments[..6] {
        [0, 0, 0, 0, 0, 0] if !ip.is_unspecified() && !ip.is_loopback() => Some(v4),
        [0x64, 0xff9b, 0, 0, 0, 0] => Some(v4),
        _ => None,
    }
}

/// Which addresses may be connected to: the public ones, and either every
/// other one or those in a list of networks. The default allows only
/// public addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allow_all: bool,
    allowed: Vec<IpNet>,
}

/// An address a [`TargetPolicy`] refuses, and why. Displays as
/// `"169.254.169.254, a link-local address"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The address as it was given.
    pub ip: IpAddr,
    /// What kind of address that is.
    pub class: AddressClass,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}", self.ip, self.class)
    }
}

impl std::error::Error for Refused {}

impl TargetPolicy {
    /// Public addresses only.
    pub fn public_only() -> TargetPolicy {
        TargetPolicy::default()
    }

    /// Every address: nothing is refused.
    pub fn allow_all() -> TargetPolicy {
        TargetPolicy {
            allow_all: true,
            allowed: Vec::new(),
        }
    }

    /// Public addresses and those in `networks`.
    pub fn public_and(networks: &[IpNet]) -> TargetPolicy {
        TargetPolicy {
            allow_all: false,
            allowed: networks.to_vec(),
        }
    }

    /// `allow_all` as [`TargetPolicy::allow_all`], else
    /// [`TargetPolicy::public_and`] `networks`: the shape of the
    /// configuration key.
    pub fn new(allow_all: bool, networks: &[IpNet]) -> TargetPolicy {
        if allow_all {
            TargetPolicy::allow_all()
        } else {
            TargetPolicy::public_and(networks)
        }
    }

    /// Whether every address is allowed, so a name need not even be
    /// resolved to judge it.
    pub fn allows_all(&self) -> bool {
        self.allow_all
    }

    /// `Ok` when `ip` may be connected to. An allowed network matches an
    /// IPv6 address that carries an IPv4 one by either form, so
    /// `127.0.0.0/8` allows `::ffff:127.0.0.1` too.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_all {
            return Ok(());
        }
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let listed = |candidate: IpAddr| self.allowed.iter().any(|net| net.contains(&candidate));
        if listed(ip) || v4.is_some_and(listed) {
            return Ok(());
        }
        Err(Refused { ip, class })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("{text:?} is an address"))
    }

    #[test]
    fn every_non_public_range_is_classified() {
        for (text, class) in [
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("10.255.255.255", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::SharedNat),
            ("100.127.255.255", AddressClass::SharedNat),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("169.254.0.1", AddressClass::LinkLocal),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("240.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("::", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("fc00::1", AddressClass::UniqueLocal),
            ("fd00:ec2::254", AddressClass::UniqueLocal),
            ("fdff:ffff::1", AddressClass::UniqueLocal),
            ("fec0::1", AddressClass::UniqueLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf::1", AddressClass::LinkLocal),
            ("ff02::1", AddressClass::Multicast),
        ] {
            assert_eq!(classify(ip(text)), Some(class), "{text}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_judged_as_ipv4() {
        for (text, class) in [
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:7f00:1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:192.168.0.1", AddressClass::Private),
            ("::ffff:100.64.0.1", AddressClass::SharedNat),
            ("::ffff:0.0.0.0", AddressClass::Unspecified),
            ("::127.0.0.1", AddressClass::Loopback),
            ("::10.0.0.1", AddressClass::Private),
            ("::169.254.169.254", AddressClass::LinkLocal),
            ("64:ff9b::10.0.0.1", AddressClass::Private),
            ("64:ff9b::127.0.0.1", AddressClass::Loopback),
        ] {
            assert_eq!(classify(ip(text)), Some(class), "{text}");
        }
        for public in ["::ffff:93.184.216.34", "::8.8.8.8", "64:ff9b::1.1.1.1"] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        let policy = TargetPolicy::public_only();
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "169.253.255.255",
            "223.255.255.255",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2001:db8::1",
            "fbff::1",
            "fe00::1",
            "::2:0:1",
        ] {
            assert_eq!(classify(ip(text)), None, "{text}");
            assert_eq!(policy.check(ip(text)), Ok(()), "{text}");
        }
    }

    #[test]
    fn refusals_name_the_address_and_its_class() {
        let policy = TargetPolicy::public_only();
        let refused = policy.check(ip("169.254.169.254")).unwrap_err();
        assert_eq!(refused.to_string(), "169.254.169.254, a link-local address");
        let refused = policy.check(ip("::ffff:127.0.0.1")).unwrap_err();
        assert_eq!(refused.to_string(), "::ffff:127.0.0.1, a loopback address");
        assert_eq!(
            policy.check(ip("::1")).unwrap_err().class,
            AddressClass::Loopback
        );
        assert!(!policy.allows_all());
    }

    #[test]
    fn allow_all_allows_everything() {
        let policy = TargetPolicy::allow_all();
        assert!(policy.allows_all());
        for text in ["127.0.0.1", "169.254.169.254", "::1", "fe80::1", "10.0.0.1"] {
            assert_eq!(policy.check(ip(text)), Ok(()), "{text}");
        }
        assert_eq!(TargetPolicy::new(true, &[]), policy);
        assert_eq!(TargetPolicy::new(false, &[]), TargetPolicy::public_only());
    }

    #[test]
    fn listed_networks_are_allowed_besides_public_addresses() {
        let networks: Vec<IpNet> = ["127.0.0.0/8", "10.1.0.0/16", "fd12::/16"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let policy = TargetPolicy::public_and(&networks);
        assert!(!policy.allows_all());
        for allowed in [
            "127.0.0.1",
            "127.9.9.9",
            "::ffff:127.0.0.1",
            "10.1.200.3",
            "::ffff:10.1.0.1",
            "fd12:3456::1",
            "8.8.8.8",
        ] {
            assert_eq!(policy.check(ip(allowed)), Ok(()), "{allowed}");
        }
        for (refused, class) in [
            ("10.2.0.1", AddressClass::Private),
            ("::1", AddressClass::Loopback),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fd13::1", AddressClass::UniqueLocal),
            ("192.168.0.1", AddressClass::Private),
        ] {
            assert_eq!(
                policy.check(ip(refused)).map_err(|r| r.class),
                Err(class),
                "{refused}"
            );
        }
        assert_eq!(TargetPolicy::new(false, &networks), policy);
    }
}
