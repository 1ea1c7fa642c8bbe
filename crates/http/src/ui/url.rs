//! Building dashboard URLs: query values escaped.

/// A value for a URL's query string: unreserved characters as they are, the
/// rest percent-encoded.
pub(crate) fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("acme"), "acme");
        assert_eq!(
            query_escape("/ui/messages?x=1&y"),
            "/ui/messages%3Fx%3D1%26y"
        );
        assert_eq!(query_escape("a b+é"), "a%20b%2B%C3%A9");
    }
}
