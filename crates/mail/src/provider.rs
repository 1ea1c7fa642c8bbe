//! Mailbox providers for statistics: recipient domains grouped by the MX
//! host that serves them, so that all of Google (gmail.com and every Google
//! Workspace domain, served by `*.google.com`) or all of Microsoft 365
//! (`*.mail.protection.outlook.com`) is one row.
//!
//! The key is the "registrable-ish" domain of the MX host: its last two
//! labels (`aspmx.l.google.com` → `google.com`), or three when the last two
//! are a second-level public suffix from a small table (`mx.example.co.uk` →
//! `example.co.uk`). This is deliberately not the Public Suffix List: the
//! list is large, changes, and would be one more thing to ship, while MX
//! hosts of big providers sit under plain `name.tld` domains; a host under a
//! suffix missing from the table groups a little too widely (by
//! `suffix.tld`), which only merges small providers of one country. An IP
//! literal stays as it is. Pure, no I/O.

/// Second-level suffixes under which names are registered one level deeper
/// (`example.co.uk`, not `co.uk`). Common mail markets only; see the module
/// documentation for what a missing entry does.
const SECOND_LEVEL_SUFFIXES: &[&str] = &[
    "ac.jp", "ac.nz", "ac.uk", "co.id", "co.il", "co.in", "co.jp", "co.kr", "co.nz", "co.th",
    "co.uk", "co.za", "com.ar", "com.au", "com.br", "com.cn", "com.co", "com.hk", "com.mx",
    "com.my", "com.pe", "com.ph", "com.pl", "com.sg", "com.tr", "com.tw", "com.ua", "com.vn",
    "edu.au", "gov.br", "gov.uk", "ltd.uk", "me.uk", "ne.jp", "net.au", "net.br", "net.cn",
    "or.jp", "org.au", "org.br", "org.uk", "plc.uk",
];

/// The provider key of an MX host name: lower case, without a trailing dot,
/// cut to its registrable-ish domain (see the module documentation). An IP
/// address (bracketed or not) or a single label is returned as it is.
pub fn provider_of_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return bare.to_owned();
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() <= 2 {
        return host;
    }
    let last_two = labels[labels.len() - 2..].join(".");
    let keep = if SECOND_LEVEL_SUFFIXES
        .binary_search(&last_two.as_str())
        .is_ok()
    {
        3
    } else {
        2
    };
    labels[labels.len() - keep..].join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_table_is_sorted_for_binary_search() {
        assert!(SECOND_LEVEL_SUFFIXES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn big_providers_group_under_one_key() {
        for (host, provider) in [
            ("gmail-smtp-in.l.google.com", "google.com"),
            ("ASPMX.L.GOOGLE.COM.", "google.com"),
            ("alt1.aspmx.l.google.com", "google.com"),
            ("example-com.mail.protection.outlook.com", "outlook.com"),
            ("mta5.am0.yahoodns.net", "yahoodns.net"),
            ("mx.example.co.uk", "example.co.uk"),
            ("mx1.mail.provedor.com.br", "provedor.com.br"),
            ("mx.example.test", "example.test"),
            ("example.test", "example.test"),
            ("localhost", "localhost"),
            ("127.0.0.2", "127.0.0.2"),
            ("[192.0.2.1]", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            assert_eq!(provider_of_host(host), provider, "{host}");
        }
    }
}
