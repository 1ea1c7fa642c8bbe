//! Mailbox addresses as they travel in the SMTP envelope.
//!
//! Addresses are kept as the client gave them (after the SMTP parser removed
//! quoting and source routes). The domain is always what follows the
//! rightmost `@`, so a quoted local part that itself contains `@` can never
//! make another domain look like the destination.

/// Splits `local@domain` at the rightmost `@`. `None` for the null path or an
/// address without a local part or domain.
pub fn split_address(address: &str) -> Option<(&str, &str)> {
    let at = address.rfind('@')?;
    let (local, domain) = (&address[..at], &address[at + 1..]);
    (!local.is_empty() && !domain.is_empty()).then_some((local, domain))
}

/// The domain of an address (empty for the null sender or a bare local part).
pub fn domain_of(address: &str) -> &str {
    split_address(address).map_or("", |(_, domain)| domain)
}

/// Lower-cases a domain for comparisons and routing.
pub fn normalize_domain(domain: &str) -> String {
    domain.to_ascii_lowercase()
}

/// Whether `domain` is a syntactically valid domain name (RFC 5321 `Domain`,
/// with UTF-8 labels allowed) or an address literal such as `[192.0.2.1]`.
pub fn is_valid_domain(domain: &str) -> bool {
    if let Some(literal) = domain.strip_prefix('[') {
        let Some(inner) = literal.strip_suffix(']') else {
            return false;
        };
        let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
        return inner.parse::<std::net::IpAddr>().is_ok();
    }
    if domain.is_empty() || domain.len() > 255 {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
    })
}

/// Whether a local part can be written without quotes (RFC 5321 `Dot-string`).
fn is_dot_string(local: &str) -> bool {
    !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii()
        })
}

/// Formats an address for `MAIL FROM:<…>` / `RCPT TO:<…>`, quoting the local
/// part when it is not a dot-string. The null sender stays empty.
pub fn format_path(address: &str) -> String {
    match split_address(address) {
        Some((local, domain)) if !is_dot_string(local) => {
            let mut out = String::with_capacity(address.len() + 4);
            out.push('"');
            for c in local.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push_str("\"@");
            out.push_str(domain);
            out
        }
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_after_the_rightmost_at() {
        assert_eq!(
            split_address("user@evil.test@relay.test"),
            Some(("user@evil.test", "relay.test"))
        );
        assert_eq!(domain_of("a@b.test"), "b.test");
        assert_eq!(domain_of(""), "");
        assert_eq!(split_address("@b.test"), None);
        assert_eq!(split_address("a@"), None);
    }

    #[test]
    fn domains_are_validated() {
        assert!(is_valid_domain("example.test"));
        assert!(is_valid_domain("xn--bcher-kva.example"));
        assert!(is_valid_domain("bücher.example"));
        assert!(is_valid_domain("[192.0.2.1]"));
        assert!(is_valid_domain("[IPv6:2001:db8::1]"));
        assert!(!is_valid_domain("example.test."));
        assert!(!is_valid_domain("-bad.test"));
        assert!(!is_valid_domain("a..b"));
        assert!(!is_valid_domain("[300.1.1.1]"));
        assert!(!is_valid_domain("ex ample.test"));
    }

    #[test]
    fn local_parts_that_need_quotes_are_quoted() {
        assert_eq!(
            format_path("plain.user+tag@x.test"),
            "plain.user+tag@x.test"
        );
        assert_eq!(format_path("john doe@x.test"), "\"john doe\"@x.test");
        assert_eq!(format_path("a@b@x.test"), "\"a@b\"@x.test");
        assert_eq!(format_path("q\"uote@x.test"), "\"q\\\"uote\"@x.test");
        assert_eq!(format_path(""), "");
    }
}
