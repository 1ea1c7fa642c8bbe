//! The fixture asked by hickory-resolver over real UDP and TCP sockets.

use super::*;
use hickory_proto::op::ResponseCode;
use hickory_resolver::config::ConnectionConfig;
use hickory_resolver::net::{DnsError, NetError, NoRecords};

async fn fixture() -> DnsFixture {
    DnsFixture::builder()
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 20, "mx2.example.test")
        .a("mx1.example.test", Ipv4Addr::new(127, 0, 0, 2))
        .aaaa("mx1.example.test", Ipv6Addr::LOCALHOST)
        .txt("example.test", "v=spf1 -all")
        .txt("sel._domainkey.example.test", &"k".repeat(600))
        .cname("www.example.test", "mx1.example.test")
        .ptr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), "mx1.example.test")
        .null_mx("nomail.test")
        .start()
        .await
}

/// The response code of a lookup that found nothing.
fn negative_code(err: &NetError) -> Option<ResponseCode> {
    match err {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
            Some(*response_code)
        }
        _ => None,
    }
}

fn mx_of(lookup: &hickory_resolver::lookup::Lookup) -> Vec<(u16, String)> {
    let mut mxs: Vec<(u16, String)> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_string())),
            _ => None,
        })
        .collect();
    mxs.sort();
    mxs
}

fn txt_strings(lookup: &hickory_resolver::lookup::Lookup) -> Vec<Vec<Vec<u8>>> {
    lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn answers_mx_a_aaaa_cname_and_ptr() {
    let dns = fixture().await;
    let resolver = dns.resolver();
    let mx = resolver.mx_lookup("example.test.").await.unwrap();
    assert_eq!(
        mx_of(&mx),
        [
            (10, "mx1.example.test.".into()),
            (20, "mx2.example.test.".into())
        ]
    );
    let ips = resolver.lookup_ip("mx1.example.test.").await.unwrap();
    let mut ips: Vec<IpAddr> = ips.iter().collect();
    ips.sort();
    assert_eq!(
        ips,
        [
            IpAddr::from([127, 0, 0, 2]),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
    let via_cname = resolver.ipv4_lookup("www.example.test.").await.unwrap();
    assert!(
        via_cname
            .answers()
            .iter()
            .any(|r| r.data == RData::A(A(Ipv4Addr::new(127, 0, 0, 2))))
    );
    // Not 127/8: hickory-resolver answers "localhost." for those itself.
    let ptr = resolver
        .reverse_lookup(IpAddr::from([192, 0, 2, 7]))
        .await
        .unwrap();
    let names: Vec<String> = ptr.answers().iter().map(|r| r.data.to_string()).collect();
    assert_eq!(names, ["mx1.example.test."]);
    let null = resolver.mx_lookup("nomail.test.").await.unwrap();
    assert_eq!(mx_of(&null), [(0, ".".into())]);
}

#[tokio::test]
async fn long_txt_is_split_into_255_byte_strings() {
    let dns = fixture().await;
    let lookup = dns
        .resolver()
        .txt_lookup("sel._domainkey.example.test.")
        .await
        .unwrap();
    let records = txt_strings(&lookup);
    assert_eq!(records.len(), 1);
    let lengths: Vec<usize> = records[0].iter().map(Vec::len).collect();
    assert_eq!(lengths, [255, 255, 90]);
    assert_eq!(records[0].concat(), "k".repeat(600).into_bytes());
}

#[tokio::test]
async fn unknown_name_is_nxdomain_and_other_type_is_noerror_empty() {
    let dns = fixture().await;
    let resolver = dns.resolver();
    let err = resolver
        .txt_lookup("_dmarc.nowhere.test.")
        .await
        .unwrap_err();
    assert_eq!(negative_code(&err), Some(ResponseCode::NXDomain), "{err:?}");
    assert!(err.is_nx_domain());
    let err = resolver.txt_lookup("mx1.example.test.").await.unwrap_err();
    assert_eq!(negative_code(&err), Some(ResponseCode::NoError), "{err:?}");
    // A name that exists only as the parent of others is not NXDOMAIN either.
    let err = resolver
        .txt_lookup("_domainkey.example.test.")
        .await
        .unwrap_err();
    assert_eq!(negative_code(&err), Some(ResponseCode::NoError), "{err:?}");
}

#[tokio::test]
async fn answers_over_tcp_too() {
    let dns = fixture().await;
    let mut server = NameServerConfig::tcp(dns.addr().ip());
    server.connections = vec![{
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = dns.addr().port();
        tcp
    }];
    let resolver = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        TokioRuntimeProvider::default(),
    )
    .build()
    .unwrap();
    let lookup = resolver
        .txt_lookup("sel._domainkey.example.test.")
        .await
        .unwrap();
    assert_eq!(txt_strings(&lookup)[0].concat().len(), 600);
}

#[tokio::test]
async fn records_change_while_running_even_for_a_caching_resolver() {
    let dns = fixture().await;
    // A default resolver keeps a cache: TTL 0 and a zero negative TTL must
    // keep it from hiding the changes.
    let cached =
        TokioResolver::builder_with_config(dns.resolver_config(), TokioRuntimeProvider::default())
            .build()
            .unwrap();
    let spf = |lookup: &hickory_resolver::lookup::Lookup| txt_strings(lookup)[0].concat();
    let first = cached.txt_lookup("example.test.").await.unwrap();
    assert_eq!(spf(&first), b"v=spf1 -all");

    dns.set_txt("example.test", "v=spf1 ip4:127.0.0.1 -all")
        .await;
    let second = cached.txt_lookup("example.test.").await.unwrap();
    assert_eq!(spf(&second), b"v=spf1 ip4:127.0.0.1 -all");

    let err = cached.txt_lookup("_dmarc.example.test.").await.unwrap_err();
    assert!(err.is_nx_domain());
    dns.set_txt("_dmarc.example.test", "v=DMARC1; p=reject")
        .await;
    let dmarc = cached.txt_lookup("_dmarc.example.test.").await.unwrap();
    assert_eq!(spf(&dmarc), b"v=DMARC1; p=reject");

    dns.remove("_dmarc.example.test", RecordType::TXT).await;
    let err = cached.txt_lookup("_dmarc.example.test.").await.unwrap_err();
    assert!(err.is_nx_domain(), "{err:?}");

    dns.set_mx("example.test", 5, "mx9.example.test").await;
    let mx = cached.mx_lookup("example.test.").await.unwrap();
    assert_eq!(mx_of(&mx), [(5, "mx9.example.test.".into())]);
}
