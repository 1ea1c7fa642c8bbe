//! An in-process authoritative DNS server for tests, on 127.0.0.1 (UDP and
//! TCP on the same port), built on hickory-server.
//!
//! It serves one root zone holding every record the test gives it, so a name
//! it does not know answers NXDOMAIN (not REFUSED), and a known name asked for
//! another type answers NOERROR with no records. It must never forward or
//! recurse: tests see only the records they wrote.

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RrKey};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

pub use hickory_proto::rr::RecordType;

/// The serial every record is written with; the zone is never transferred,
/// so it only has to be constant.
const SERIAL: u32 = 1;

/// A TXT character-string holds at most 255 bytes (RFC 1035 §3.3).
const TXT_STRING_MAX: usize = 255;

/// Parses `name` as an absolute DNS name (a trailing dot is optional).
///
/// # Panics
/// When `name` is not a valid DNS name (a test bug).
fn fqdn(name: &str) -> Name {
    let mut parsed =
        Name::from_ascii(name).unwrap_or_else(|err| panic!("bad DNS name {name:?}: {err}"));
    parsed.set_fqdn(true);
    parsed
}

/// TXT data with `value` split into character-strings of at most 255 bytes,
/// as a DKIM key or a long SPF record is published.
fn txt(value: &str) -> RData {
    let chunks: Vec<&[u8]> = if value.is_empty() {
        vec![b""]
    } else {
        value.as_bytes().chunks(TXT_STRING_MAX).collect()
    };
    RData::TXT(TXT::from_bytes(chunks))
}

/// Configures a [`DnsFixture`]; see [`DnsFixture::builder`].
pub struct DnsBuilder {
    ttl: u32,
    records: Vec<(Name, RData)>,
}

impl DnsBuilder {
    /// The TTL of every record (default 0, so resolvers do not cache what a
    /// test is about to change).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = seconds;
        self
    }

    /// Any record data at `name` (TLSA, SRV, CAA...).
    pub fn record(mut self, name: &str, data: RData) -> Self {
        self.records.push((fqdn(name), data));
        self
    }

    /// `domain MX preference exchange`.
    pub fn mx(self, domain: &str, preference: u16, exchange: &str) -> Self {
        self.record(domain, RData::MX(MX::new(preference, fqdn(exchange))))
    }

    /// The null MX of RFC 7505 (`MX 0 .`): the domain accepts no mail.
    pub fn null_mx(self, domain: &str) -> Self {
        self.record(domain, RData::MX(MX::new(0, Name::root())))
    }

    /// `name A address`.
    pub fn a(self, name: &str, address: Ipv4Addr) -> Self {
        self.record(name, RData::A(A(address)))
    }

    /// `name AAAA address`.
    pub fn aaaa(self, name: &str, address: Ipv6Addr) -> Self {
        self.record(name, RData::AAAA(AAAA(address)))
    }

    /// `name TXT value`, split into 255-byte strings when longer.
    pub fn txt(self, name: &str, value: &str) -> Self {
        self.record(name, txt(value))
    }

    /// `name CNAME target`.
    pub fn cname(self, name: &str, target: &str) -> Self {
        self.record(name, RData::CNAME(CNAME(fqdn(target))))
    }

    /// The reverse record of `ip` (`in-addr.arpa` / `ip6.arpa`) pointing to `name`.
    ///
    /// hickory-resolver never asks a server about 127.0.0.0/8 or `::1` (it
    /// answers `localhost.` itself, RFC 6761), so a PTR test through it needs
    /// another address; the fixture serves loopback PTRs to other clients.
    pub fn ptr(mut self, ip: IpAddr, name: &str) -> Self {
        self.records
            .push((Name::from(ip), RData::PTR(PTR(fqdn(name)))));
        self
    }

    /// Binds UDP and TCP on one free 127.0.0.1 port and starts serving.
    ///
    /// # Panics
    /// When the sockets cannot be bound or a record is refused by the zone.
    pub async fn start(self) -> DnsFixture {
        let (udp, tcp) = bind_pair().await;
        let addr = udp
            .local_addr()
            .unwrap_or_else(|err| panic!("dns fixture local address: {err}"));

        let mut zone: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(Name::root(), ZoneType::Primary, AxfrPolicy::Deny);
        // The SOA makes the root zone valid; its minimum (the negative TTL)
        // is 0 so a name added later is not hidden by a cached NXDOMAIN.
        let soa = SOA::new(
            fqdn("ns.test"),
            fqdn("hostmaster.test"),
            SERIAL,
            60,
            60,
            60,
            0,
        );
        let soa = Record::from_rdata(Name::root(), 0, RData::SOA(soa));
        assert!(zone.upsert_mut(soa, SERIAL), "dns fixture refused its SOA");
        for (name, data) in self.records {
            let record = Record::from_rdata(name.clone(), self.ttl, data);
            assert!(
                zone.upsert_mut(record, SERIAL),
                "dns fixture refused a record at {name} (CNAME beside other data?)"
            );
        }
        let zone = Arc::new(zone);

        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&Name::root()), vec![zone.clone()]);
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 32);
        DnsFixture {
            addr,
            ttl: self.ttl,
            zone,
            _server: server,
        }
    }
}

/// A UDP socket and a TCP listener on the same free loopback port; another
/// process may take the TCP port between the two binds, so it retries.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|err| panic!("dns fixture cannot bind udp: {err}"));
        let addr = udp
            .local_addr()
            .unwrap_or_else(|err| panic!("dns fixture local address: {err}"));
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp),
            Err(err) => last_error = Some(err),
        }
    }
    panic!("dns fixture found no port free for both udp and tcp: {last_error:?}")
}

/// A running DNS server; stops when dropped.
pub struct DnsFixture {
    addr: SocketAddr,
    ttl: u32,
    zone: Arc<InMemoryZoneHandler>,
    /// Owns the serving tasks: dropping it aborts them.
    _server: Server<Catalog>,
}

impl DnsFixture {
    /// Starts configuring a fixture with no records but the root SOA.
    pub fn builder() -> DnsBuilder {
        DnsBuilder {
            ttl: 0,
            records: Vec::new(),
        }
    }

    /// The address it serves on, UDP and TCP (for a `nameservers` config
    /// entry: `addr().to_string()`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A resolver configuration that asks only this server, over UDP then TCP.
    pub fn resolver_config(&self) -> ResolverConfig {
        let mut server = NameServerConfig::udp_and_tcp(self.addr.ip());
        for connection in &mut server.connections {
            connection.port = self.addr.port();
        }
        ResolverConfig::from_name_servers(vec![server])
    }

    /// A resolver asking only this server (not `/etc/hosts`), without a
    /// cache, so a test sees its record changes at once.
    ///
    /// # Panics
    /// When hickory cannot build the resolver.
    pub fn resolver(&self) -> TokioResolver {
        let mut builder = TokioResolver::builder_with_config(
            self.resolver_config(),
            TokioRuntimeProvider::default(),
        );
        let options = builder.options_mut();
        options.cache_size = 0;
        // Only the fixture answers: not /etc/hosts, whose loopback names
        // would shadow the test's PTR and A records.
        options.use_hosts_file = ResolveHosts::Never;
        builder
            .build()
            .unwrap_or_else(|err| panic!("resolver for the dns fixture: {err}"))
    }

    /// Adds record data at `name` (beside any records already there).
    ///
    /// # Panics
    /// When the zone refuses the record (e.g. a CNAME beside other data).
    pub async fn add(&self, name: &str, data: RData) {
        let name = fqdn(name);
        let record = Record::from_rdata(name.clone(), self.ttl, data);
        assert!(
            self.zone.upsert(record, SERIAL).await,
            "dns fixture refused a record at {name}"
        );
    }

    /// Replaces every TXT record at `name` with `value`.
    pub async fn set_txt(&self, name: &str, value: &str) {
        self.remove(name, RecordType::TXT).await;
        self.add(name, txt(value)).await;
    }

    /// Replaces every MX record of `domain` with one `preference exchange`.
    pub async fn set_mx(&self, domain: &str, preference: u16, exchange: &str) {
        self.remove(domain, RecordType::MX).await;
        self.add(domain, RData::MX(MX::new(preference, fqdn(exchange))))
            .await;
    }

    /// Removes every record of `record_type` at `name`; the name answers
    /// NXDOMAIN once nothing is left at or below it.
    pub async fn remove(&self, name: &str, record_type: RecordType) {
        let key = RrKey::new(LowerName::new(&fqdn(name)), record_type);
        self.zone.records_mut().await.remove(&key);
    }
}

#[cfg(test)]
mod tests;
