//! Trace headers added when Carteiro accepts a message (RFC 5321 §4.4).

use std::net::IpAddr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// What the `Received:` header records about one acceptance.
pub struct ReceivedInfo<'a> {
    /// The name the client gave in EHLO/HELO.
    pub helo: &'a str,
    pub client_ip: IpAddr,
    /// Our own host name.
    pub by: &'a str,
    /// `ESMTP`, `ESMTPS`, `ESMTPA`, `ESMTPSA` (RFC 3848) or `HTTP`.
    pub protocol: &'a str,
    /// TLS version and cipher when the session used TLS.
    pub tls: Option<&'a str>,
    pub id: &'a str,
    /// The recipient, only when the message has exactly one.
    pub for_recipient: Option<&'a str>,
    pub date: OffsetDateTime,
}

/// A `Received:` header field, folded, ending with CRLF.
pub fn received_header(info: &ReceivedInfo<'_>) -> String {
    let helo: String = info
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let mut out = format!(
        "Received: from {helo} ([{ip}])\r\n\tby {by} (Carteiro) with {proto}",
        ip = info.client_ip,
        by = info.by,
        proto = info.protocol,
    );
    if let Some(tls) = info.tls {
        out.push_str(&format!("\r\n\t(using {tls})"));
    }
    out.push_str(&format!("\r\n\tid {}", info.id));
    if let Some(rcpt) = info.for_recipient {
        out.push_str(&format!("\r\n\tfor <{rcpt}>"));
    }
    let date = info
        .date
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into());
    out.push_str(&format!(";\r\n\t{date}\r\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_header_is_folded_and_complete() {
        let header = received_header(&ReceivedInfo {
            helo: "client.test\r\nX-Injected: yes",
            client_ip: "192.0.2.7".parse().unwrap(),
            by: "relay.test",
            protocol: "ESMTPSA",
            tls: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            id: "01abc",
            for_recipient: Some("a@b.test"),
            date: OffsetDateTime::from_unix_timestamp(0).unwrap(),
        });
        assert!(header.starts_with("Received: from client.testX-Injected:yes ([192.0.2.7])\r\n"));
        assert!(header.contains("\tby relay.test (Carteiro) with ESMTPSA\r\n"));
        assert!(header.contains("\tfor <a@b.test>;\r\n"));
        assert!(header.ends_with("\tThu, 01 Jan 1970 00:00:00 +0000\r\n"));
        assert_eq!(
            header.matches("\r\n").count(),
            header.matches("\r\n\t").count() + 1
        );
    }
}
