//! Reading one SPF record far enough to say whether it lets the relay send.
//!
//! This is not an SPF evaluator: it resolves nothing (no `include:`, no
//! addresses), so every mechanism whose outcome depends on a lookup is
//! reported as "cannot tell" rather than guessed.

use super::normalize_name;

/// What an SPF record says about the relay host.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SpfVerdict {
    /// `a:RELAY` (pass qualifier) is evaluated before the `all` term.
    Authorised,
    /// `+all` (or a bare `all`): every host on the Internet passes.
    PlusAll,
    /// A term that is no SPF mechanism: receivers return permerror.
    PermError(String),
    /// `-a:RELAY`, `~a:RELAY` or `?a:RELAY` matches first.
    Excluded(String),
    /// The relay is not named, but these terms may cover its addresses.
    CannotTell(Vec<String>),
    /// Nothing in the record can match the relay.
    NotAuthorised,
}

/// Whether `record` is an SPF record (`v=spf1` followed by a space or nothing).
pub(super) fn is_spf(record: &str) -> bool {
    let record = record.trim_start();
    record.len() >= 6
        && record.is_char_boundary(6)
        && record[..6].eq_ignore_ascii_case("v=spf1")
        && record[6..].chars().next().is_none_or(|c| c == ' ')
}

/// Judges an SPF record (one for which [`is_spf`] holds) for `relay`.
pub(super) fn judge(record: &str, relay: &str) -> SpfVerdict {
    let relay = normalize_name(relay);
    let mut relay_match: Option<(bool, &str)> = None;
    let mut plus_all = false;
    let mut cannot_tell = Vec::new();
    // Terms after the first `all` are never evaluated, but a bad one
    // still makes the whole record a permerror.
    let mut after_all = false;

    for term in record.split_ascii_whitespace().skip(1) {
        let Some(mechanism) = parse_term(term) else {
            return SpfVerdict::PermError(term.to_string());
        };
        let Term::Mechanism { pass, name, domain } = mechanism else {
            if let Term::Redirect = mechanism
                && !after_all
            {
                cannot_tell.push(term.to_string());
            }
            continue;
        };
        if after_all {
            continue;
        }
        match name.as_str() {
            "all" => {
                plus_all = pass;
                after_all = true;
            }
            "a" if domain.is_some_and(|d| normalize_name(d) == relay) => {
                relay_match.get_or_insert((pass, term));
            }
            // `a:other.host` names some other host: it only covers the relay
            // by coincidence of addresses, and adding `a:RELAY` costs nothing.
            "a" if domain.is_some() => {}
            "a" | "mx" | "include" | "ip4" | "ip6" | "exists" | "ptr" if pass => {
                cannot_tell.push(term.to_string());
            }
            _ => {}
        }
    }

    if plus_all {
        return SpfVerdict::PlusAll;
    }
    match relay_match {
        Some((true, _)) => SpfVerdict::Authorised,
        Some((false, term)) => SpfVerdict::Excluded(term.to_string()),
        None if !cannot_tell.is_empty() => SpfVerdict::CannotTell(cannot_tell),
        None => SpfVerdict::NotAuthorised,
    }
}

enum Term<'a> {
    Mechanism {
        /// The qualifier is `+` (or absent).
        pass: bool,
        /// Lower-cased mechanism name.
        name: String,
        /// The `:domain` argument without any `/cidr` suffix.
        domain: Option<&'a str>,
    },
    Redirect,
    OtherModifier,
}

/// Parses one term; `None` for something that is neither a known mechanism
/// nor a modifier (RFC 7208 §4.6.1 and §5).
fn parse_term(term: &str) -> Option<Term<'_>> {
    let (pass, rest) = match term.as_bytes().first()? {
        b'+' => (true, &term[1..]),
        b'-' | b'~' | b'?' => (false, &term[1..]),
        _ => (true, term),
    };
    let end = rest.find([':', '/', '=']).unwrap_or(rest.len());
    let (name, tail) = rest.split_at(end);
    if tail.starts_with('=') {
        // A modifier: `redirect=` hands the decision to another domain,
        // others (`exp=`, unknown ones) do not change the result.
        let valid = term.len() == rest.len()
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        return valid.then(|| {
            if name.eq_ignore_ascii_case("redirect") {
                Term::Redirect
            } else {
                Term::OtherModifier
            }
        });
    }
    let name = name.to_ascii_lowercase();
    let domain = tail
        .strip_prefix(':')
        .map(|spec| spec.split('/').next().unwrap_or(spec));
    let known = match name.as_str() {
        "all" => tail.is_empty(),
        "include" | "exists" => domain.is_some_and(|d| !d.is_empty()),
        "ip4" | "ip6" => domain.is_some_and(|d| !d.is_empty()),
        "a" | "mx" | "ptr" => domain.is_none_or(|d| !d.is_empty()),
        _ => false,
    };
    known.then_some(Term::Mechanism { pass, name, domain })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "relay.carteiro.test";

    #[test]
    fn verdicts() {
        let cases: &[(&str, SpfVerdict)] = &[
            ("v=spf1 a:relay.carteiro.test ~all", SpfVerdict::Authorised),
            (
                "v=spf1 +a:Relay.Carteiro.Test. -all",
                SpfVerdict::Authorised,
            ),
            (
                "v=spf1 a:relay.carteiro.test/24 -all",
                SpfVerdict::Authorised,
            ),
            (
                "v=spf1 mx a:relay.carteiro.test -a:relay.carteiro.test -all",
                SpfVerdict::Authorised,
            ),
            ("v=spf1 a:relay.carteiro.test +all", SpfVerdict::PlusAll),
            ("v=spf1 all", SpfVerdict::PlusAll),
            (
                "v=spf1 -a:relay.carteiro.test a:relay.carteiro.test ~all",
                SpfVerdict::Excluded("-a:relay.carteiro.test".into()),
            ),
            (
                "v=spf1 -all a:relay.carteiro.test",
                SpfVerdict::NotAuthorised,
            ),
            ("v=spf1 a:mail.other.test -all", SpfVerdict::NotAuthorised),
            ("v=spf1 -all", SpfVerdict::NotAuthorised),
            (
                "v=spf1 include:_spf.google.com ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all",
                SpfVerdict::CannotTell(vec![
                    "include:_spf.google.com".into(),
                    "ip4:192.0.2.0/24".into(),
                    "ip6:2001:db8::/32".into(),
                ]),
            ),
            (
                "v=spf1 a mx -ip4:192.0.2.1 ~all",
                SpfVerdict::CannotTell(vec!["a".into(), "mx".into()]),
            ),
            (
                "v=spf1 redirect=_spf.example.test",
                SpfVerdict::CannotTell(vec!["redirect=_spf.example.test".into()]),
            ),
            (
                "v=spf1 a:relay.carteiro.test exp=explain.example.test ~all",
                SpfVerdict::Authorised,
            ),
            (
                "v=spf1 inlcude:_spf.google.com ~all",
                SpfVerdict::PermError("inlcude:_spf.google.com".into()),
            ),
            // Grammatically an unknown modifier, which receivers ignore.
            (
                "v=spf1 a=relay.carteiro.test ~all",
                SpfVerdict::NotAuthorised,
            ),
            (
                "v=spf1 ~all include:",
                SpfVerdict::PermError("include:".into()),
            ),
        ];
        for (record, verdict) in cases {
            assert!(is_spf(record), "{record}");
            assert_eq!(&judge(record, RELAY), verdict, "{record}");
        }
    }

    #[test]
    fn spf_records_are_recognised() {
        assert!(is_spf("v=spf1"));
        assert!(is_spf("V=SPF1 -all"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=abc"));
        assert!(!is_spf("v=spf"));
        assert!(!is_spf("v=spé1"));
    }
}
